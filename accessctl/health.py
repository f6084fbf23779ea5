"""Liveness and readiness for load balancers and Kubernetes probes.

``/healthz``: the process answers (no dependency is touched, so a database outage does
not make every web process restart). ``/readyz``: checks the database, the broker and
artifact storage and reports each. Only the database decides readiness (503): requests
are decided from it, while a broker outage must not stop downloads or revocations (the
work waits in the database) and downloads in s3 mode never touch storage from the web
process. A failed broker or storage check answers 200 with ``"status": "degraded"``;
``?strict=1`` makes any failure a 503, for monitoring. Neither needs authentication nor
says more than ok/failed and the exception's type per check.

Both are answered by ``ProbeMiddleware``, the first middleware: before Django validates
the ``Host`` header (a Kubernetes ``httpGet`` probe and the image's ``HEALTHCHECK`` send
the pod's address, which ``DJANGO_ALLOWED_HOSTS`` does not list: a 400) and before the
HTTPS redirect (probes speak plain HTTP to the pod: a 301).
"""

import time
from collections.abc import Callable

from django.core.files.storage import storages
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

from accessctl.middleware import request_ids

__all__ = ["ProbeMiddleware", "healthz", "readyz"]


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
REQUIRED = {"database"}


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, dict[str, object]] = {}
    failed = set()
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:  # say which check failed and how, not the details
            failed.add(name)
            results[name] = {"status": "failed", "error": type(exc).__name__}
        else:
            results[name] = {"status": "ok"}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    blocking = failed if request.GET.get("strict") else failed & REQUIRED
    status = "failed" if blocking else "degraded" if failed else "ok"
    return JsonResponse({"status": status, "checks": results}, status=503 if blocking else 200)


class ProbeMiddleware:
    """``GET``/``HEAD`` ``/healthz`` and ``/readyz``, whatever the ``Host``: answered here,
    before any other middleware (see the module's docstring). Every other request goes on."""

    PROBES: dict[str, Callable[[HttpRequest], JsonResponse]] = {
        "/healthz": healthz,
        "/readyz": readyz,
    }

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = self.PROBES.get(request.path_info)
        if probe is not None and request.method in ("GET", "HEAD"):
            response = probe(request)
            response["X-Request-ID"] = request_ids(request)[0]  # as every answer has
            return response
        return self.get_response(request)
