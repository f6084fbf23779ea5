"""Liveness and readiness for load balancers and Kubernetes probes.

``/healthz``: the process answers (no dependency is touched, so a database outage does
not make every web process restart). ``/readyz``: the database answers a query, the
broker accepts a connection, artifact storage is reachable; 503 with the failing checks
otherwise. Neither needs authentication nor says more than ok/failed per check.
"""

import time
from collections.abc import Callable

from django.core.files.storage import storages
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

__all__ = ["healthz", "readyz"]


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker() -> None:
    from accessctl.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def _storage() -> None:
    storages["artifacts"].exists("readyz-probe")


CHECKS: dict[str, Callable[[], None]] = {
    "database": _database,
    "broker": _broker,
    "storage": _storage,
}


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, dict[str, object]] = {}
    ready = True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:  # any failure means not ready; say which, not the details
            ready = False
            results[name] = {"status": "failed", "error": type(exc).__name__}
        else:
            results[name] = {"status": "ok"}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return JsonResponse(
        {"status": "ok" if ready else "failed", "checks": results}, status=200 if ready else 503
    )
