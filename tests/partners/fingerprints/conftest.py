import os

import pytest
import redis

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def broker() -> str:
    """This run's Redis database, emptied: the broker the live tests' workers use."""
    redis.Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL
