"""The Celery application, configured from Django settings (``CELERY_*``)."""

import os
import time
from typing import Any

from celery import Celery, signals
from django.db import InterfaceError, OperationalError

__all__ = ["RETRY", "app"]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "accessctl.settings")

app = Celery("accessctl")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

_started_at: dict[str, float] = {}

# What every accessctl task declares: acknowledged after the work (a killed worker's task
# runs again; the tasks are idempotent), retried with exponential backoff and jitter when
# the database is unavailable.
RETRY: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


@signals.task_prerun.connect
def _started(task_id: str, task: Any, **kwargs: Any) -> None:
    _started_at[task_id] = time.monotonic()


@signals.task_postrun.connect
def _finished(task_id: str, task: Any, **kwargs: Any) -> None:
    from accessctl.metrics import TASK_SECONDS

    started = _started_at.pop(task_id, None)
    if started is not None:
        TASK_SECONDS.labels(task.name).observe(time.monotonic() - started)


@signals.task_failure.connect
def _failed(sender: Any = None, **kwargs: Any) -> None:
    from accessctl.metrics import TASK_FAILURES

    TASK_FAILURES.labels(getattr(sender, "name", "unknown")).inc()


@signals.worker_ready.connect
def _resume_on_start(sender: Any = None, **kwargs: Any) -> None:
    """A worker that comes up (after a crash, a deploy, an OOM kill) asks at once for every
    unfinished revocation fan-out, whatever its age: a killed worker's message would only
    come back after the broker's visibility timeout (15 min), and the periodic sweeper
    runs every few seconds only where beat runs. Running a fan-out twice is safe."""
    from accessctl.dispatch import send

    send("partners.tasks.resume_revocations", 0)


@signals.worker_init.connect
def _serve_metrics(**kwargs: Any) -> None:
    """Workers have no web server: serve their metrics on a port, if one is configured."""
    port = os.environ.get("ACCESSCTL_WORKER_METRICS_PORT")
    if port:
        import prometheus_client

        from accessctl.metrics import registry

        prometheus_client.start_http_server(int(port), registry=registry())
