"""The API rate limit holds in ANY interval of its period, across window boundaries and
across processes, against the real Redis (issue #12). Refused requests count toward it,
and a flood of them, refused or throttled, writes a bounded number of audit rows."""

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LIMIT, PERIOD, RUN = 20, 1.0, 3.5  # 20 a second, hammered for 3.5 s by two processes

# One hammering process: a Django process with the Redis cache, as a web worker has.
HAMMER = """
import json, os, sys, time
import django
django.setup()
from partners.api import ratelimit
ident, limit, period, run = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
allowed, refused, end = [], 0, time.monotonic() + run
while time.monotonic() < end:
    ok, wait, now = ratelimit.hit(ident, limit, period)
    if ok:
        allowed.append(now)
    else:
        refused += 1
print(json.dumps({"allowed": allowed, "refused": refused}))
"""


def redis_url() -> str:
    return os.environ.get("TEST_REDIS_URL") or os.environ.get(
        "REDIS_URL", "redis://127.0.0.1:6379/7"
    )


def test_limit_holds_in_every_interval_across_boundaries_and_processes():
    ident = f"test-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        "CACHE_URL": redis_url(),
        "DJANGO_SETTINGS_MODULE": "accessctl.settings",
        "PYTHONPATH": str(ROOT),
    }
    args = [sys.executable, "-c", HAMMER, ident, str(LIMIT), str(PERIOD), str(RUN)]
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, cwd=ROOT) for _ in range(2)]
    results = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    allowed = sorted(t for r in results for t in r["allowed"])
    refused = sum(r["refused"] for r in results)
    assert refused > 10 * LIMIT  # the processes really pushed past the limit
    assert all(r["allowed"] for r in results)  # both were served: one shared limit
    # The Redis clock stamps every allowed request: no interval of one period, wherever it
    # starts (so across every boundary of a fixed window too), holds more than LIMIT.
    busiest = max(
        sum(1 for t in allowed[i:] if t < start + PERIOD) for i, start in enumerate(allowed)
    )
    assert busiest == LIMIT
    # Over the whole run: at most LIMIT per started period, and the rate was reached.
    span = allowed[-1] - allowed[0]
    assert len(allowed) <= LIMIT * (int(span / PERIOD) + 1)
    assert len(allowed) >= LIMIT * int(span / PERIOD)


@pytest.fixture
def redis_cache(settings):
    """The real Redis as the cache, with keys of this test's own."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url(),
            "KEY_PREFIX": uuid.uuid4().hex,
        }
    }
    settings.ACCESSCTL_API_RATE = "3/min"


def _written(before):
    from accessctl.audit.models import AuditEvent

    return list(
        AuditEvent.objects.filter(id__gt=before)
        .exclude(action="token.used")
        .order_by("id")
        .values_list("action", "reason")
    )


def assert_throttled(response):
    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "throttled"
    assert 0 < int(response.headers["Retry-After"]) <= 60


@pytest.mark.django_db
def test_the_api_throttle_uses_it(redis_cache):
    from rest_framework.test import APIClient

    from tests import factories as f
    from tests.evidence import last_event_id

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {f.token(f.partner_user(f.partner()))}")
    before = last_event_id()
    codes = [client.get("/api/v1/me").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    assert_throttled(client.get("/api/v1/me"))
    # Three 429s, one event: at most one a period per token.
    assert _written(before) == [("api.denied", "throttled")]


# name -> (how the flood is sent, what each refusal writes, what the 429s write)
REFUSED_FLOODS = {
    "a suspended partner's token": (
        "suspended",
        ("api.denied", "partner_suspended"),
        ("api.denied", "throttled"),
    ),
    "unknown tokens": (
        "unknown",
        ("token.rejected", "token_malformed"),
        ("api.denied", "throttled"),
    ),
    "a NUL in a file path": (
        "nul",
        ("download.denied", "path_invalid"),
        ("download.denied", "throttled"),
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(REFUSED_FLOODS))
def test_a_flood_of_refused_requests_is_throttled_with_bounded_evidence(redis_cache, name):
    from django.test import Client

    from partners import actions
    from tests import factories as f
    from tests.evidence import last_event_id

    how, each, throttled = REFUSED_FLOODS[name]
    partner = f.partner()
    secret = f.token(f.partner_user(partner))
    address = f"2001:db8::{uuid.uuid4().hex[:4]}"  # the flood's own address
    path, authorization = "/api/v1/releases/", f"Bearer {secret}"
    if how == "suspended":
        actions.suspend_partner(actor=None, partner=partner, reason="flood")
    elif how == "unknown":
        authorization = "Bearer acx_" + "Q" * 36
    else:
        path = "/api/v1/grants/1/files/a%00b.bin"
    client = Client(REMOTE_ADDR=address, HTTP_AUTHORIZATION=authorization)
    before = last_event_id()
    answers = [client.get(path) for _ in range(10)]
    refused = answers[0].status_code
    assert 400 <= refused < 429
    assert [a.status_code for a in answers] == [refused] * 3 + [429] * 7
    assert_throttled(answers[-1])
    # One event per refusal within the rate, and one for all the 429s of the period.
    assert _written(before) == [each] * 3 + [throttled]


@pytest.mark.parametrize("backend", ["redis", "memory"])
@pytest.mark.parametrize("cost", [1, 2, 3, 5, 6])
def test_a_cost_is_counted_all_or_nothing_and_waits_for_its_room(settings, backend, cost):
    """``hit(..., cost)`` logs ``cost`` requests or none; refused, it names the wait until
    ``cost`` fit (the oldest entries that must leave), in Redis and in memory alike."""
    from partners.api import ratelimit

    if backend == "redis":
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_url(),
                "KEY_PREFIX": uuid.uuid4().hex,
            }
        }
    who, limit, period = f"cost-{uuid.uuid4().hex}", 6, 4.0
    assert ratelimit.hit(who, limit, period)[0]  # 1 of 6 logged
    time.sleep(1.0)
    assert ratelimit.hit(who, limit, period, 3)[0]  # 4 of 6, three of them 1 s later
    allowed, wait, _ = ratelimit.hit(who, limit, period, cost)
    assert allowed == (4 + cost <= limit)
    if not allowed:
        # Room for ``cost`` once 4 + cost - 6 of the oldest left: the first (3 s from
        # now) for 3, the first of the three logged 1 s later (4 s from now) for more.
        assert (2.0 if cost == 3 else 3.0) < wait <= (3.0 if cost == 3 else 4.0), wait
        assert ratelimit.hit(who, limit, period, 2)[0]  # the refused cost logged nothing
