"""Celery tasks: fetch what is due, call an action. Idempotent, acks_late, retried."""

from celery import shared_task
from django.db import OperationalError

from partners import actions

__all__ = ["expire_grants"]


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
    soft_time_limit=120,
)
def expire_grants() -> int:
    """Expire every grant past its expiry, in batches; returns how many."""
    total = 0
    while done := actions.expire_grants():
        total += done
    return total
