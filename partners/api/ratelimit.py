"""A sliding-window rate limit: at most ``limit`` allowed requests in ANY interval of
``period`` seconds, not just within each fixed window (a fixed minute lets twice the
rate through across its boundary: a full minute's worth at 0:59, another at 1:00).

With a Redis cache (``CACHE_URL=redis://...``) the log of allowed requests is a sorted
set in Redis, trimmed and checked by one Lua script (atomic, and timed by Redis's own
clock), so the limit holds across every web process and host. Without one (the embedded
default, one process) the same algorithm runs in memory.

Requests over the limit are not logged: a client that keeps hammering is refused until its
oldest allowed request leaves the window, never longer.

One limit per caller (``ident``): its token once authenticated, else its address. Every
request under ``/api/`` counts once (``count``): the ones DRF's throttle lets through, and
the ones refused before it (at the edge, by authentication or by a permission), which the
refusal-evidence middleware counts (``partners.api.evidence``), so a flood of refused
requests is answered 429 like any other flood, without an audit row each.
"""

import threading
import time
import uuid
from collections import deque
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest

__all__ = ["count", "counted", "first_in_period", "hit", "ident", "rate"]

# Set on a request once it has been counted, so nothing counts it twice.
_COUNTED = "accessctl_rate_counted"

_SCRIPT = """
pcall(redis.replicate_commands)  -- Redis < 5: allow TIME before writes; a no-op after
local limit, period = tonumber(ARGV[1]), tonumber(ARGV[2])
local cost = tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local logged = redis.call('ZCARD', KEYS[1])
if logged + cost <= limit then
    for n = 1, cost do
        redis.call('ZADD', KEYS[1], now, ARGV[3] .. ':' .. n)
    end
    redis.call('PEXPIRE', KEYS[1], math.ceil(period / 1000) + 1000)
    return {1, 0, now}
end
-- Room for ``cost`` once this many of the oldest have left the window.
local leaving = logged + cost - limit
local last = redis.call('ZRANGE', KEYS[1], leaving - 1, leaving - 1, 'WITHSCORES')
return {0, tonumber(last[2]) + period - now, now}
"""

_local: dict[str, deque[float]] = {}
_marks: dict[str, float] = {}  # first_in_period without Redis: key -> when the mark expires
_lock = threading.Lock()


def rate() -> tuple[int, int]:
    """``ACCESSCTL_API_RATE`` (``"1200/min"``) as (requests, period in seconds)."""
    number, _, unit = str(settings.ACCESSCTL_API_RATE).partition("/")
    return int(number), {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit[0]]


def ident(token_id: int | None, address: str | None) -> str:
    """Whose limit a request counts toward: its token's, else its address's (the client
    address ``accessctl.middleware`` settled, never a header the client wrote)."""
    return f"t{token_id}" if token_id is not None else f"a{address or ''}"


def count(request: HttpRequest, who: str, cost: int = 1) -> tuple[bool, float]:
    """Count ``request`` toward ``who``'s API rate as ``cost`` requests (a batch counts
    once per file it names beyond the first: ``partners.api.batch``): (allowed, seconds
    to wait if not). All or nothing: refused, none of ``cost`` is logged. A cost above
    the limit counts as the limit (it would never be let through otherwise)."""
    setattr(request, _COUNTED, True)
    limit, period = rate()
    allowed, wait, _ = hit(who, limit, period, min(cost, limit))
    return allowed, wait


def counted(request: HttpRequest) -> bool:
    return bool(getattr(request, _COUNTED, False))


def first_in_period(who: str) -> bool:
    """True for the first call per period of the API rate for ``who``, False for the
    others: what lets a flood of 429s leave one audit event a period, not one each."""
    _, period = rate()
    key = cache.make_key(f"accessctl:rate-noted:{who}")
    client = _redis_client(key)
    if client is not None:
        return bool(client.set(key, 1, nx=True, px=period * 1000))
    now = time.monotonic()
    with _lock:
        if _marks.get(key, 0.0) > now:
            return False
        _marks[key] = now + period
        return True


def _redis_client(key: str) -> Any:
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    return backend._cache.get_client(key, write=True)


def _in_memory(key: str, limit: int, period: float, cost: int) -> tuple[bool, float, float]:
    now = time.monotonic()
    with _lock:
        log = _local.setdefault(key, deque())
        while log and log[0] <= now - period:
            log.popleft()
        if len(log) + cost <= limit:
            log.extend([now] * cost)
            return True, 0.0, now
        return False, log[len(log) + cost - limit - 1] + period - now, now


def hit(ident: str, limit: int, period: float, cost: int = 1) -> tuple[bool, float, float]:
    """Count ``cost`` requests (1 to ``limit``) of ``ident``, all or none: (allowed,
    seconds to wait until there is room for them if not, the limiter's clock in
    seconds)."""
    key = cache.make_key(f"accessctl:rate:{ident}")
    client = _redis_client(key)
    if client is None:
        return _in_memory(key, limit, period, cost)
    allowed, wait, now = client.eval(
        _SCRIPT, 1, key, limit, int(period * 1_000_000), uuid.uuid4().hex, cost
    )
    return bool(allowed), int(wait) / 1_000_000, int(now) / 1_000_000
