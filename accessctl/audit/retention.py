"""The one way audit events leave the database: an audited retention procedure.

Only sealed events are deleted, and only a prefix of the log (every leaf below an
index), so what remains is exactly the leaves from that index on. The leaves, tree nodes
and checkpoints stay: proofs for the remaining events still work, and an export says
which leaves were purged. Nothing younger than ``ACCESSCTL_AUDIT_RETENTION_MIN_DAYS`` is
ever deleted, whoever calls (the command only parses and confirms). The deletion runs in a transaction that sets
``accessctl.audit_retention``, the one thing the database trigger lets through, and
records ``audit.retention_applied`` in the same transaction.
"""

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .events import AuditAction, record
from .models import AuditEvent, AuditLeaf, AuditRetention
from .sealing import seal

__all__ = ["RetentionError", "apply_retention", "minimum_age"]


class RetentionError(Exception):
    pass


def minimum_age() -> timedelta:
    """The youngest events retention may delete: the one reader of the setting."""
    return timedelta(days=settings.ACCESSCTL_AUDIT_RETENTION_MIN_DAYS)


def apply_retention(*, older_than: timedelta, operator: str) -> AuditRetention:
    if older_than < minimum_age():
        raise RetentionError(
            f"Retention keeps at least {minimum_age().days} days of events: "
            f"--older-than-days must be at least {minimum_age().days}."
        )
    seal()
    cutoff = timezone.now() - older_than
    with transaction.atomic():
        # The first leaf whose event is recent enough stays, and everything after it.
        keep = (
            AuditLeaf.objects.filter(
                event_id__in=AuditEvent.objects.filter(occurred_at__gte=cutoff).values("pk")
            )
            .order_by("index")
            .values_list("index", flat=True)
            .first()
        )
        if keep is None:
            raise RetentionError("Every sealed event is older than the cutoff: refusing.")
        doomed = AuditEvent.objects.filter(
            pk__in=AuditLeaf.objects.filter(index__lt=keep).values("event_id")
        )
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL accessctl.audit_retention = 'on'")
        deleted, _ = doomed.delete()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL accessctl.audit_retention = 'off'")
        retention = AuditRetention.objects.create(
            purged_below=keep,
            cutoff=cutoff,
            events_deleted=deleted,
            applied_at=timezone.now(),
            applied_by=operator[:200],
        )
        record(
            AuditAction.AUDIT_RETENTION_APPLIED,
            actor=None,
            target=retention,
            changes={
                "operator": operator,
                "cutoff": cutoff.isoformat(),
                "purged_below_leaf": keep,
                "events_deleted": deleted,
            },
        )
    return retention
