"""Revocation cascades: the root change now, the fan-out in Celery.

``start_revocation`` is called by every revoking action (revoke a token or a grant,
suspend or terminate a partner, pull a checkpoint, withdraw a release) inside that
action's transaction, after it changed the root row: from that commit every download is
refused, whatever the state of the broker or the workers. It records a ``Revocation``
and queues ``cascade_revocation`` (the ``urgent`` queue) after commit.

``cascade_revocation`` does the rest in short transactions of at most ``batch`` rows,
never holding a lock for long: revoke the dependent grants issued up to the revocation's
``effective_at``, reject pending requests, revoke a terminated partner's tokens, queue
the notifications, then mark the revocation done (one ``revocation.completed`` event
with the counts). Each step touches only rows still in their old state, so a cascade
interrupted anywhere (a killed worker) or run twice at once finishes with every row
changed, and audited, exactly once.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet

from accessctl.actors import Actor
from accessctl.audit.events import AuditAction, event, record
from accessctl.audit.models import AuditEvent
from partners import notify
from partners.authority import Operation, authorize
from partners.dispatch import after_commit
from partners.errors import ActionError
from partners.models import (
    AccessToken,
    Checkpoint,
    EmbargoWindow,
    Grant,
    GrantRequest,
    Notification,
    Partner,
    Release,
    Revocation,
)

from ._common import now

__all__ = [
    "cascade_revocation",
    "start_revocation",
    "withdraw_release",
]

BATCH = 1000


def start_revocation(
    scope: Revocation.Scope,
    target: Partner | Release | Checkpoint | Grant | AccessToken,
    *,
    actor: Actor,
    reason: str,
    at: datetime,
) -> Revocation:
    """Record the revocation of ``target`` (already changed by the caller) and queue its
    fan-out after commit."""
    # A grant or token revoked here is counted here: its cascade has no dependents, and
    # "Grants revoked: 0" for a revoked grant was wrong in the list, the page and emails.
    counter = Revocation.ROOT_COUNTERS.get(str(scope))
    revocation = Revocation.objects.create(
        scope=scope,
        reason=reason,
        requested_by=actor,
        effective_at=at,
        **{str(scope): target},
        **({counter: 1} if counter else {}),
    )
    # By name: the task calls this module (accessctl.dispatch.send).
    after_commit("partners.tasks.cascade_revocation", revocation.pk)
    return revocation


@transaction.atomic
def withdraw_release(*, actor: Actor, release: Release, reason: str) -> Release:
    """The kill switch: every download of every checkpoint of the release stops now.

    Only the security officer role holds ``withdraw_release``. There is no way back:
    a withdrawn release stays withdrawn (register a new one).
    """
    authorize(actor, Operation.RELEASE_WITHDRAW, release)
    if not reason.strip():
        raise ActionError("reason_required", "Say why: the reason is kept in the audit trail.")
    release = Release.objects.select_for_update().get(pk=release.pk)
    if release.status == Release.Status.WITHDRAWN:
        return release
    at = now()
    old = release.status
    release.status, release.withdrawn_at, release.withdrawn_reason = (
        Release.Status.WITHDRAWN,
        at,
        reason,
    )
    release.save(update_fields=["status", "withdrawn_at", "withdrawn_reason"])
    revocation = start_revocation(
        Revocation.Scope.RELEASE, release, actor=actor, reason=reason, at=at
    )
    record(
        AuditAction.RELEASE_WITHDRAWN,
        actor=actor,
        target=release,
        changes={"reason": reason, "status": [old, release.status], "revocation": revocation.pk},
        at=at,
    )
    return release


# What a revocation's dependent rows are, per scope: (lookup on the row, revocation field).
# A token or a grant has none: the root change was the whole of it.
_DEPENDENTS = {
    Revocation.Scope.PARTNER: ("partner_id", "partner_id"),
    Revocation.Scope.CHECKPOINT: ("checkpoint_id", "checkpoint_id"),
    Revocation.Scope.RELEASE: ("checkpoint__release_id", "release_id"),
}


def _in_scope(revocation: Revocation) -> dict[str, Any] | None:
    if revocation.scope not in _DEPENDENTS:
        return None
    lookup, field = _DEPENDENTS[Revocation.Scope(revocation.scope)]
    return {lookup: getattr(revocation, field)}


def _grants_in_scope(revocation: Revocation) -> QuerySet[Grant]:
    scope = _in_scope(revocation)
    if scope is None:
        return Grant.objects.none()
    return Grant.objects.filter(
        status=Grant.Status.ACTIVE, issued_at__lte=revocation.effective_at, **scope
    )


def _requests_in_scope(revocation: Revocation) -> QuerySet[GrantRequest]:
    scope = _in_scope(revocation)
    if scope is None:
        return GrantRequest.objects.none()
    return GrantRequest.objects.filter(
        status=GrantRequest.Status.PENDING, requested_at__lte=revocation.effective_at, **scope
    )


def _tokens_in_scope(revocation: Revocation) -> QuerySet[AccessToken]:
    """A terminated partner's tokens end with it; a suspended partner keeps them (they
    are refused while it is suspended, and work again if it is reinstated)."""
    partner = revocation.partner
    if partner is None or partner.status != Partner.Status.TERMINATED:
        return AccessToken.objects.none()
    return AccessToken.objects.filter(
        partner_id=partner.pk,
        revoked_at__isnull=True,
        created_at__lte=revocation.effective_at,
    )


@dataclass(frozen=True, slots=True)
class _Dependents:
    """One kind of row a cascade ends: which rows (still in their old state), how they
    change, the event each gets, and the revocation's counter."""

    rows: Callable[[Revocation], QuerySet[Any]]
    change: Callable[[Revocation, str], dict[str, Any]]
    action: AuditAction
    changes: dict[str, Any]
    counter: str


_CASCADE = (
    _Dependents(
        rows=_grants_in_scope,
        change=lambda r, cause: {
            "status": Grant.Status.REVOKED,
            "revoked_at": r.effective_at,
            "revoked_by": r.requested_by,
            "revoke_reason": cause,
            "revocation": r,
        },
        action=AuditAction.GRANT_REVOKED,
        changes={"status": ["active", "revoked"]},
        counter="grants_revoked",
    ),
    _Dependents(
        rows=_requests_in_scope,
        change=lambda r, cause: {
            "status": GrantRequest.Status.REJECTED,
            "decided_at": r.effective_at,
            "rejected_by": r.requested_by,
            "rejection_reason": cause,
        },
        action=AuditAction.GRANT_REQUEST_REJECTED,
        changes={"status": ["pending", "rejected"]},
        counter="requests_rejected",
    ),
    _Dependents(
        rows=_tokens_in_scope,
        change=lambda r, cause: {"revoked_at": r.effective_at, "revoked_by": r.requested_by},
        action=AuditAction.TOKEN_REVOKED,
        changes={},
        counter="tokens_revoked",
    ),
)


def _step(revocation: Revocation, batch: int) -> bool:
    """One short transaction: end up to ``batch`` dependent rows, one event each.
    False when none is left."""
    cause = f"revocation #{revocation.pk} ({revocation.scope}): {revocation.reason}"[:300]
    for dependents in _CASCADE:
        with transaction.atomic():
            pending = dependents.rows(revocation)
            # The rows themselves, not their ids: each event names its row ("grant #3").
            rows = list(pending.select_for_update(of=("self",)).order_by("pk")[:batch])
            if not rows:
                continue
            pending.filter(pk__in=[row.pk for row in rows]).update(
                **dependents.change(revocation, cause)
            )
            AuditEvent.objects.bulk_create(
                event(
                    dependents.action,
                    actor=revocation.requested_by,
                    target=row,
                    partner_id=row.partner_id,
                    changes={
                        "reason": revocation.reason,
                        **dependents.changes,
                        "revocation": revocation.pk,
                    },
                )
                for row in rows
            )
            Revocation.objects.filter(pk=revocation.pk).update(
                **{dependents.counter: F(dependents.counter) + len(rows)}
            )
            return True
    return False


def _affected_partners(revocation: Revocation) -> list[int]:
    if revocation.scope in _DEPENDENTS and revocation.scope != Revocation.Scope.PARTNER:
        grants = Grant.objects.filter(revocation=revocation)
        partners = set(grants.order_by().values_list("partner_id", flat=True))
        if revocation.scope == Revocation.Scope.RELEASE:
            # A withdrawal ends every window of the release: partners with one still to
            # come or still open are told too, grants or not.
            partners |= set(
                EmbargoWindow.objects.filter(
                    release=revocation.release, closes_at__gt=revocation.effective_at
                ).values_list("partner_id", flat=True)
            )
        return sorted(partners)
    target = revocation.target
    partner_id = target.pk if revocation.scope == Revocation.Scope.PARTNER else None
    partner_id = partner_id or getattr(target, "partner_id", None)
    return [partner_id] if partner_id else []


def _notify(revocation: Revocation) -> int:
    """Tell the affected partners' contacts what they lost (not the internal reason) and
    the security staff what happened; once per revocation and address."""
    target = str(revocation.target)
    queued = 0
    for partner_id in _affected_partners(revocation):
        lost = Grant.objects.filter(revocation=revocation, partner_id=partner_id)
        checkpoints = sorted(
            f"{slug}:{tag}"
            for slug, tag in lost.values_list("checkpoint__release__slug", "checkpoint__tag")
            .order_by()
            .distinct()
        )
        queued += notify.queue(
            Notification.Kind.GRANT_REVOKED,
            f"revocation:{revocation.pk}:partner:{partner_id}",
            notify.partner_recipients([partner_id]),
            {
                "scope": revocation.scope,
                "target": target,
                "grants": lost.count(),
                "checkpoints": checkpoints[:20],
                "more_checkpoints": max(len(checkpoints) - 20, 0),
                "at": notify.when(revocation.effective_at),
            },
        )
    summary = Revocation.objects.get(pk=revocation.pk)
    queued += notify.queue(
        Notification.Kind.REVOCATION_SUMMARY,
        f"revocation:{revocation.pk}:staff",
        notify.staff_recipients("partners.revoke_grant"),
        {
            "revocation": revocation.pk,
            "scope": revocation.get_scope_display(),
            "target": revocation.target_label,
            "reason": revocation.reason,
            "by": str(revocation.requested_by or "system"),
            "at": notify.when(revocation.effective_at),
            "grants_revoked": summary.grants_revoked,
            "requests_rejected": summary.requests_rejected,
            "tokens_revoked": summary.tokens_revoked,
            "url": f"{settings.ACCESSCTL_PUBLIC_URL}/admin/partners/revocation/{revocation.pk}/",
        },
    )
    return queued


def cascade_revocation(revocation_id: int, *, batch: int = BATCH) -> Revocation | None:
    """Finish a revocation's fan-out; safe to run again, late, or twice at once.

    Returns the revocation (done), or None if it does not exist.
    """
    revocation = (
        Revocation.objects.select_related("requested_by", "partner", "grant", "token")
        .filter(pk=revocation_id)
        .first()
    )
    if revocation is None:
        return None
    if revocation.status == Revocation.Status.DONE:
        return revocation
    Revocation.objects.filter(pk=revocation.pk).update(attempts=F("attempts") + 1)
    while _step(revocation, batch):
        pass
    with transaction.atomic():
        queued = _notify(revocation)
        finished_at = now()
        finished = Revocation.objects.filter(
            pk=revocation.pk, status=Revocation.Status.PENDING
        ).update(
            status=Revocation.Status.DONE, completed_at=finished_at, notifications_queued=queued
        )
        revocation.refresh_from_db()
        if finished:
            record(
                AuditAction.REVOCATION_COMPLETED,
                actor=revocation.requested_by,
                target=revocation,
                partner_id=revocation.partner_id,
                changes={
                    "scope": revocation.scope,
                    "target": str(revocation.target),
                    "grants_revoked": revocation.grants_revoked,
                    "requests_rejected": revocation.requests_rejected,
                    "tokens_revoked": revocation.tokens_revoked,
                    "notifications_queued": queued,
                    "seconds": round((finished_at - revocation.effective_at).total_seconds(), 3),
                },
            )
    return revocation
