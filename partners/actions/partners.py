from datetime import datetime
from typing import Any

from django.db import transaction

from accessctl.audit.events import AuditAction, record
from partners.authority import Operation, authorize
from partners.errors import ActionError
from partners.models import Partner, Revocation

from ._common import now, save_changes, validate
from .revocations import partner_cascade_pending, start_revocation

__all__ = [
    "create_partner",
    "reinstate_partner",
    "suspend_partner",
    "terminate_partner",
    "update_partner",
]

EDITABLE_FIELDS = (
    "legal_name",
    "kind",
    "jurisdiction",
    "nda_reference",
    "nda_expires_at",
    "allowed_networks",
)


@transaction.atomic
def create_partner(
    *,
    actor: Any,
    slug: str,
    legal_name: str,
    kind: str,
    jurisdiction: str,
    nda_reference: str,
    nda_expires_at: datetime,
    allowed_networks: list[str] | None = None,
) -> Partner:
    authorize(actor, Operation.PARTNER_CREATE)
    if Partner.objects.filter(slug=slug).exists():
        raise ActionError("partner_exists", f"A partner with the slug {slug!r} already exists.")
    partner = Partner(
        slug=slug,
        legal_name=legal_name,
        kind=kind,
        jurisdiction=jurisdiction,
        nda_reference=nda_reference,
        nda_expires_at=nda_expires_at,
        allowed_networks=allowed_networks or [],
    )
    validate(partner)
    partner.save()
    record(
        AuditAction.PARTNER_CREATED,
        actor=actor,
        target=partner,
        partner=partner,
        changes={name: [None, str(getattr(partner, name))] for name in EDITABLE_FIELDS},
    )
    return partner


@transaction.atomic
def update_partner(*, actor: Any, partner: Partner, **values: Any) -> Partner:
    """Change a partner's details. Status changes go through suspend/reinstate/terminate."""
    authorize(actor, Operation.PARTNER_CHANGE, partner)
    partner, changes = save_changes(Partner, partner.pk, values, EDITABLE_FIELDS)
    if changes:
        record(
            AuditAction.PARTNER_UPDATED,
            actor=actor,
            target=partner,
            partner=partner,
            changes=changes,
        )
    return partner


def _set_status(
    operation: Operation,
    *,
    actor: Any,
    partner: Partner,
    status: str,
    allowed_from: set[str],
    reason: str,
) -> tuple[Partner, str]:
    authorize(actor, operation, partner)
    if not reason.strip():
        raise ActionError("reason_required", "Say why: the reason is kept in the audit trail.")
    partner = Partner.objects.select_for_update().get(pk=partner.pk)
    old = partner.status
    if old not in allowed_from:
        raise ActionError(
            "partner_status_conflict",
            f"Partner {partner.slug} is {old}; it cannot become {status}.",
        )
    partner.status = status
    partner.status_reason = reason
    partner.save(update_fields=["status", "status_reason"])
    return partner, old


@transaction.atomic
def suspend_partner(*, actor: Any, partner: Partner, reason: str, reason_code: str = "") -> Partner:
    """Stop every download of the partner at once; its grants are revoked by the cascade.

    The status change is the enforcement (every request reads it); the fan-out that
    revokes the grants, rejects pending requests and tells people runs in Celery.
    ``reason_code`` marks a system suspension (``nda_expired``) in the audit event.
    """
    partner, old = _set_status(
        Operation.PARTNER_SUSPEND,
        actor=actor,
        partner=partner,
        status=Partner.Status.SUSPENDED,
        allowed_from={Partner.Status.ACTIVE},
        reason=reason,
    )
    at = now()
    revocation = start_revocation(
        Revocation.Scope.PARTNER, partner, actor=actor, reason=reason, at=at
    )
    record(
        AuditAction.PARTNER_SUSPENDED,
        actor=actor,
        target=partner,
        partner=partner,
        reason=reason_code,
        changes={"reason": reason, "status": [old, partner.status], "revocation": revocation.pk},
        at=at,
    )
    return partner


@transaction.atomic
def reinstate_partner(*, actor: Any, partner: Partner, reason: str) -> Partner:
    """Let a suspended partner back in. Revoked grants stay revoked: issue new ones.

    Refused while the suspension's fan-out is still running, so no grant it is about to
    revoke is usable in between.
    """
    partner, old = _set_status(
        Operation.PARTNER_REINSTATE,
        actor=actor,
        partner=partner,
        status=Partner.Status.ACTIVE,
        allowed_from={Partner.Status.SUSPENDED},
        reason=reason,
    )
    if partner_cascade_pending(partner):  # raising rolls the status change back
        raise ActionError(
            "revocation_in_progress",
            f"Partner {partner.slug}'s grants are still being revoked; try again in a minute.",
        )
    record(
        AuditAction.PARTNER_REINSTATED,
        actor=actor,
        target=partner,
        partner=partner,
        changes={"reason": reason, "status": [old, partner.status]},
    )
    return partner


@transaction.atomic
def terminate_partner(*, actor: Any, partner: Partner, reason: str) -> Partner:
    """End the relationship for good: no way back; the cascade revokes every grant and
    token."""
    partner, old = _set_status(
        Operation.PARTNER_TERMINATE,
        actor=actor,
        partner=partner,
        status=Partner.Status.TERMINATED,
        allowed_from={Partner.Status.ACTIVE, Partner.Status.SUSPENDED},
        reason=reason,
    )
    at = now()
    revocation = start_revocation(
        Revocation.Scope.PARTNER, partner, actor=actor, reason=reason, at=at
    )
    record(
        AuditAction.PARTNER_TERMINATED,
        actor=actor,
        target=partner,
        partner=partner,
        changes={"reason": reason, "status": [old, partner.status], "revocation": revocation.pk},
        at=at,
    )
    return partner
