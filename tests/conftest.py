import fcntl
import hashlib
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from accessctl.celery import app
from tests.servers import seaweedfs

# ``tests/accessctl/test_embedded.py`` runs the database-rule tests again on SQLite (the
# embedded default), in a subprocess that sets ACCESSCTL_TESTS_ON_SQLITE.
if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql" and not (
    os.environ.get("ACCESSCTL_TESTS_ON_SQLITE")
):
    pytest.exit(
        "The tests run on PostgreSQL: run scripts/test, or set DATABASE_URL to a PostgreSQL server.",
        returncode=2,
    )

# Live-server threads must not keep connections open past a test, or the test database
# cannot be dropped at the end.
settings.DATABASES["default"]["CONN_MAX_AGE"] = 0

# The Redis URLs the tests and the processes they start use (broker, cache, their flushdb).
REDIS_VARIABLES = ("TEST_REDIS_URL", "REDIS_URL", "CELERY_BROKER_URL")


def worker_redis_url(url: str, index: int) -> str:
    """``url`` on its database number plus ``index`` (modulo Redis's 16 databases): each
    pytest-xdist worker's own database, so one worker's FLUSHDB, queues and counters never
    meet another's. ``index`` 0 keeps the URL as it is."""
    parts = urlsplit(url)
    if index == 0 or parts.scheme not in {"redis", "rediss"}:
        return url
    number = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(number + index) % 16}"))


def pytest_configure(config):
    """Under pytest-xdist (``-n``), give this worker its own Redis database. pytest-django
    gives it its own test database already (``test_<name>_gw<index>``), which the
    processes the tests start receive through ``tests.workers.database_url()``; ports are
    free ones, files the tests' own temporary directories."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return
    index = int(workerinput["workerid"].removeprefix("gw"))
    for name in REDIS_VARIABLES:
        if name in os.environ:
            os.environ[name] = worker_redis_url(os.environ[name], index)
    settings.CELERY_BROKER_URL = worker_redis_url(settings.CELERY_BROKER_URL, index)
    # What ``transaction.on_commit`` sends through in this process (tests.workers.use_broker).
    app.conf.broker_url = app.conf.broker_write_url = app.conf.broker_read_url = (
        settings.CELERY_BROKER_URL
    )
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def many_connections():
    """Held by a test that opens dozens of database connections at once (the 64-way quota
    races): one such test at a time per PostgreSQL server, across pytest-xdist workers
    and test runs on this machine, so together they never pass the server's
    ``max_connections`` (100 here) and refuse another test's connection. A file lock in
    the temporary directory, named after the server (host and port)."""
    database = settings.DATABASES["default"]
    server = f"{database.get('HOST') or 'local'}:{database.get('PORT') or 5432}"
    name = hashlib.sha256(server.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"accessctl-many-connections-{name}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def _artifact_root(settings, tmp_path):
    """Each test gets its own artifact storage, and a fast password hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    root = tmp_path / "artifacts"
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "exports")},
        },
    }
    return root


# A real S3-compatible server (SeaweedFS) for the s3 download mode, one per module.
@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_mode(settings, s3_server):
    settings.ACCESSCTL_DOWNLOAD_MODE = "s3"
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": s3_server.bucket,
                "endpoint_url": s3_server.endpoint,
                "access_key": s3_server.access_key,
                "secret_key": s3_server.secret_key,
                "region_name": "us-east-1",
                "signature_version": "s3v4",
                "addressing_style": "path",
                "file_overwrite": False,
                "default_acl": None,
            },
        },
    }
    return s3_server
