"""Celery tasks: thin wrappers that fetch what is due and call an action.

Every task is idempotent (the actions change only rows still in their old state),
``acks_late`` (a message is acknowledged after the work, so a killed worker's task runs
again), retried with exponential backoff on database errors, and time-limited. The
periodic ones are scheduled in the database (django-celery-beat, migrations 0006 and
0008), so staff can change or pause them in the portal.
"""

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from celery import shared_task, signals
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from accessctl.celery import RETRY
from partners import actions, notify, queries
from partners.dispatch import send

log = logging.getLogger(__name__)

__all__ = [
    "announce_deadlines",
    "cascade_revocation",
    "close_windows",
    "expire_grants",
    "expire_ndas",
    "lift_embargoes",
    "open_windows",
    "remind_pending_requests",
    "resume_revocations",
    "run_detection",
    "send_notifications",
    "send_staff_digest",
    "write_variants",
]


def _drain(step: Callable[[], int]) -> int:
    """Run a batched action until it finds nothing more to do; how many rows it changed."""
    total = 0
    while done := step():
        total += done
    return total


@shared_task(**RETRY, soft_time_limit=120, time_limit=180)
def expire_grants() -> int:
    """Expire every grant past its expiry."""
    return _drain(actions.expire_grants)


@shared_task(**RETRY, soft_time_limit=120, time_limit=180)
def open_windows() -> int:
    return _drain(actions.open_windows)


@shared_task(**RETRY, soft_time_limit=120, time_limit=180)
def close_windows() -> int:
    return _drain(actions.close_windows)


@shared_task(**RETRY, soft_time_limit=120, time_limit=180)
def lift_embargoes() -> int:
    return _drain(actions.lift_embargoes)


@shared_task(**RETRY, soft_time_limit=120, time_limit=180)
def expire_ndas() -> int:
    return _drain(actions.expire_ndas)


@shared_task(**RETRY, soft_time_limit=120, time_limit=180)
def remind_pending_requests() -> int:
    return _drain(actions.remind_pending_requests)


@shared_task(**RETRY, soft_time_limit=120, time_limit=180)
def announce_deadlines() -> int:
    return actions.announce_deadlines()


@shared_task(**RETRY, soft_time_limit=240, time_limit=300)
def cascade_revocation(revocation_id: int) -> dict[str, int] | None:
    """The fan-out of one revocation (queue ``urgent``)."""
    revocation = actions.cascade_revocation(revocation_id)
    if revocation is None:
        return None
    return {
        "grants_revoked": revocation.grants_revoked,
        "requests_rejected": revocation.requests_rejected,
        "tokens_revoked": revocation.tokens_revoked,
        "notifications_queued": revocation.notifications_queued,
    }


@shared_task(**RETRY, soft_time_limit=60, time_limit=90)
def resume_revocations(settled_seconds: int | None = None) -> list[int]:
    """Queue again every fan-out not finished in time (its message was lost with a killed
    worker, or the broker was down when the revocation committed): those effective for
    ``settled_seconds`` (default ``ACCESSCTL_REVOCATION_RESUME_SECONDS``; 0 when a worker
    starts, see ``_resume_on_start``)."""
    if settled_seconds is None:
        settled_seconds = settings.ACCESSCTL_REVOCATION_RESUME_SECONDS
    older_than = timezone.now() - timedelta(seconds=settled_seconds)
    pending = queries.unfinished_revocations(older_than=older_than)
    for revocation_id in pending:
        send(cascade_revocation, revocation_id)
    return pending


@shared_task(**RETRY, soft_time_limit=240, time_limit=300)
def send_notifications() -> dict[str, int]:
    """Send every due email (queue ``slow``); failures back off per message."""
    sent = failed = 0
    while True:
        done, bad = notify.send_due()
        sent, failed = sent + done, failed + bad
        if not done + bad:
            return {"sent": sent, "failed": failed}


@shared_task(**RETRY, soft_time_limit=120, time_limit=180)
def send_staff_digest() -> int:
    """Queue today's digest for staff (once a day), then send it."""
    queued = actions.queue_staff_digest()
    send(send_notifications)
    return queued


# Below the broker's visibility timeout (900 s), so a running detection's message is not
# handed to a second worker meanwhile (running twice would be safe, only wasted).
@shared_task(**RETRY, soft_time_limit=780, time_limit=840)
def run_detection(detection_id: int) -> str | None:
    """Run one leak-attribution detection (queue ``slow``): its verdict (or ``failed``), or
    ``None`` when it was finished already (a redelivered message)."""
    try:
        detection = actions.run_detection(detection_id)
    except SoftTimeLimitExceeded:
        actions.fail_detection(detection_id, "The detection took longer than 13 minutes.")
        return "failed"
    except (OperationalError, InterfaceError):
        raise  # the database: retried with backoff (RETRY)
    except Exception:
        # Anything else would leave it "running" for ever: it fails, saying where to look
        # (the exception's text stays in the log: it may name storage paths).
        log.exception("detection %s failed", detection_id)
        actions.fail_detection(
            detection_id, "The detection failed unexpectedly; the worker's log has the details."
        )
        return "failed"
    return None if detection is None else detection.verdict or detection.status


# Below the broker's visibility timeout (900 s), so a message is never handed to a second
# worker while the first still writes; one message is one shard (``prepare_variants``).
@shared_task(bind=True, **RETRY, soft_time_limit=840, time_limit=870)
def write_variants(self: Any, variant_ids: list[int] | None = None) -> dict[str, int]:
    """Write partners' marked copies (queue ``slow``): the variants ``variant_ids``, or
    every pending one. A failed variant is tried again with exponential backoff (30 s,
    doubling, at most ``RETRY``'s retries); downloads of it answer ``variant_not_ready``
    meanwhile."""
    done = actions.write_variants(variant_ids)
    if done["failed"]:
        failed = queries.unready_variants(variant_ids)
        if failed and self.request.retries < RETRY["max_retries"]:
            raise self.retry(args=(failed,), countdown=min(30 * 2**self.request.retries, 1800))
    return done


@signals.worker_ready.connect
def _resume_on_start(sender: Any = None, **kwargs: Any) -> None:
    """A worker that comes up (after a crash, a deploy, an OOM kill) asks at once for every
    unfinished revocation fan-out, whatever its age: a killed worker's message would only
    come back after the broker's visibility timeout (15 min), and the periodic sweeper
    runs every few seconds only where beat runs. Running a fan-out twice is safe."""
    send(resume_revocations, 0)
    # Variants whose message was lost (the broker was down when the grant committed).
    send(write_variants)
