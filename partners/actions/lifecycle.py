from datetime import datetime

from django.db import transaction

from accessctl.audit.events import AuditAction, event
from accessctl.audit.models import AuditEvent
from partners.models import Grant

from ._common import now

__all__ = ["expire_grants"]

BATCH = 1000


@transaction.atomic
def expire_grants(*, at: datetime | None = None, batch: int = BATCH) -> int:
    """Mark active grants past their expiry as expired, one audit event each.

    Idempotent and safe to run late or twice at once: only grants still active are
    changed (rows locked, ``SKIP LOCKED`` so two runs split the work), so each grant is
    expired, and audited, exactly once. Downloads never wait for this: ``decide`` already
    refuses a grant past its expiry; this makes the state and the evidence say so.
    Returns how many grants it expired (at most ``batch``; callers loop).
    """
    at = at or now()
    due = list(
        Grant.objects.select_for_update(skip_locked=True)
        .filter(status=Grant.Status.ACTIVE, expires_at__lte=at)
        .order_by("expires_at")
        .values_list("pk", "partner_id")[:batch]
    )
    if not due:
        return 0
    Grant.objects.filter(pk__in=[pk for pk, _ in due]).update(status=Grant.Status.EXPIRED)
    AuditEvent.objects.bulk_create(
        event(
            AuditAction.GRANT_EXPIRED,
            actor=None,
            target_type="partners.grant",
            target_id=str(pk),
            partner_id=partner_id,
            changes={"status": ["active", "expired"]},
            at=at,
        )
        for pk, partner_id in due
    )
    return len(due)
