from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Least
from django.utils.translation import ngettext

from accessctl.actors import Actor
from accessctl.audit.events import AuditAction, record
from partners import notify, queries, rules
from partners.authority import Operation, authorize
from partners.errors import ActionError
from partners.models import EmbargoWindow, Grant, Notification, Partner, Revocation

from ._common import country_name, integrity_as_action_error, now, save_changes, validate
from .grants import end_grant
from .revocations import start_revocation

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
    actor: Actor,
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
    with integrity_as_action_error():
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
def update_partner(
    *,
    actor: Actor,
    partner: Partner,
    confirm_ended_windows: Collection[int] | None = None,
    **values: Any,
) -> Partner:
    """Change a partner's details. Status changes go through suspend/reinstate/terminate.

    Export control: moving the partner to a jurisdiction that an open or upcoming window's
    release blocks ends that access. The caller must have shown what ends
    (``queries.access_ended_by_move``) and pass exactly those windows' ids as
    ``confirm_ended_windows``; otherwise nothing is saved (``confirmation_required``), so
    a window set meanwhile cannot end unseen. Confirmed, the same transaction closes the
    windows now and revokes their grants.
    """
    authorize(actor, Operation.PARTNER_CHANGE, partner)
    at = now()
    ended = queries.EndedAccess()
    if "jurisdiction" in values:
        locked = Partner.objects.select_for_update().get(pk=partner.pk)
        ended = queries.access_ended_by_move(locked, values["jurisdiction"], at)
        if set(confirm_ended_windows or ()) != set(ended.window_ids):
            raise ActionError(
                "confirmation_required",
                f"Moving {partner.slug} to {country_name(values['jurisdiction'])} ends "
                f"{len(ended.windows)} {ngettext('window', 'windows', len(ended.windows))} and "
                f"{len(ended.grants)} {ngettext('grant', 'grants', len(ended.grants))} that its "
                "releases' export policies block: confirm exactly these windows "
                f"({', '.join(f'#{pk}' for pk in ended.window_ids)}).",
            )
    partner, changes = save_changes(Partner, partner.pk, values, EDITABLE_FIELDS)
    if ended.windows:
        changes["ended"] = _end_access(actor=actor, partner=partner, ended=ended, at=at)
    if changes:
        record(
            AuditAction.PARTNER_UPDATED,
            actor=actor,
            target=partner,
            partner=partner,
            changes=changes,
            at=at,
        )
    return partner


def _end_access(
    *, actor: Actor, partner: Partner, ended: queries.EndedAccess, at: datetime
) -> dict[str, list[Any]]:
    """Close the windows now and revoke their grants (each through the revocation
    machinery: a ``Revocation`` and its notification), one ``window.ended`` event each.

    An open window closes now. An upcoming one cannot close before it opens (the database
    keeps ``opens_at < closes_at``, and moving its opening would overlap another window),
    so it ends the instant it opens: it never gives access. Its moments are marked as
    recorded, so the lifecycle tasks neither record nor announce them again.
    """
    reason = (
        f"export control: partner moved to {partner.jurisdiction}, which the release's "
        "policy does not allow"
    )
    ended_windows = []
    for window in (
        EmbargoWindow.objects.select_for_update()
        .filter(pk__in=ended.window_ids)
        .order_by("opens_at", "pk")
    ):
        revoked = [
            end_grant(actor=actor, grant=g, reason=reason, at=at).pk
            for g in Grant.objects.filter(window=window, status=Grant.Status.ACTIVE).order_by("pk")
        ]
        closes_at = max(at, window.opens_at + timedelta(microseconds=1))
        # Clip first: no grant outlives its window (a database rule) at any statement.
        Grant.objects.filter(window=window, expires_at__gt=closes_at).update(
            expires_at=Least(F("expires_at"), closes_at)
        )
        old_close = window.closes_at
        window.closes_at = closes_at
        window.opened_at = window.opened_at or at
        window.closed_at = at
        window.save(update_fields=["closes_at", "opened_at", "closed_at"])
        record(
            AuditAction.WINDOW_ENDED,
            actor=actor,
            target=window,
            partner=partner,
            reason="jurisdiction_blocked",
            changes={
                "release": window.release.slug,
                "jurisdiction": str(partner.jurisdiction),
                "closes_at": [old_close.isoformat(), closes_at.isoformat()],
                "grants_revoked": revoked,
            },
            at=at,
        )
        notify.queue(
            Notification.Kind.WINDOW_CLOSED,
            f"window.ended:{window.pk}:{at.isoformat()}",
            notify.partner_recipients([partner.pk]),
            {
                "partner": partner.legal_name,
                "release": window.release.name,
                "release_slug": window.release.slug,
                "closes_at": notify.when(at),
                "grants_ended": len(revoked),
            },
        )
        ended_windows.append(window.pk)
    return {"windows": ended_windows, "grants": [g.pk for g in ended.grants]}


def _set_status(
    operation: Operation,
    *,
    actor: Actor,
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
def suspend_partner(
    *, actor: Actor, partner: Partner, reason: str, reason_code: str = ""
) -> Partner:
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
def reinstate_partner(*, actor: Actor, partner: Partner, reason: str) -> Partner:
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
    refused = queries.reinstate_refusal(partner)
    if isinstance(refused, rules.Failure):  # raising rolls the status change back
        raise refused.error()
    record(
        AuditAction.PARTNER_REINSTATED,
        actor=actor,
        target=partner,
        partner=partner,
        changes={"reason": reason, "status": [old, partner.status]},
    )
    return partner


@transaction.atomic
def terminate_partner(*, actor: Actor, partner: Partner, reason: str) -> Partner:
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
