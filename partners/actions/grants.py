from datetime import datetime, timedelta
from typing import cast

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Sum

from accessctl.actors import Actor
from accessctl.audit.events import AuditAction, record
from partners import notify, rules
from partners.authority import Operation, authorize
from partners.errors import ActionError
from partners.models import (
    Checkpoint,
    EmbargoWindow,
    Grant,
    GrantApproval,
    GrantRequest,
    Notification,
    Partner,
    Revocation,
)
from partners.queries import approval_refusal, current_window
from partners.rules import MAX_QUOTA_BYTES

from ._common import (
    approvals_given,
    approvals_needed,
    early_access_approvals,
    integrity_as_action_error,
    now,
)
from .fingerprints import prepare_variants
from .revocations import start_revocation

__all__ = [
    "MAX_QUOTA_BYTES",
    "approve_grant_request",
    "check_grant",
    "default_expiry",
    "issue_grant",
    "quota_limit",
    "reject_grant_request",
    "request_grant",
    "revoke_grant",
]


def _size(checkpoint: Checkpoint) -> int:
    return int(checkpoint.artifacts.aggregate(total=Sum("size"))["total"] or 1)


def quota_limit(checkpoint: Checkpoint) -> int:
    """The largest quota a partner may ask for: the release's ``quota_factor`` times the
    checkpoint's total size."""
    return min(checkpoint.release.quota_factor * _size(checkpoint), MAX_QUOTA_BYTES)


def _check(result: rules.Result) -> None:
    if isinstance(result, rules.Failure):
        raise result.error()


def _current(partner: Partner, checkpoint: Checkpoint) -> tuple[Partner, Checkpoint]:
    """The committed rows, locked: a grant cannot slip in beside a suspension or a pull."""
    return (
        Partner.objects.select_for_update().get(pk=partner.pk),
        Checkpoint.objects.select_for_update().select_related("release").get(pk=checkpoint.pk),
    )


def _check_eligible(partner: Partner, checkpoint: Checkpoint, at: datetime) -> EmbargoWindow:
    """``rules.grant_eligible`` on the rows; returns the grant's window."""
    release = checkpoint.release
    window = current_window(partner=partner, release=release, at=at)
    _check(
        rules.grant_eligible(
            rules.GrantEligibility(
                now=at,
                partner_slug=partner.slug,
                partner_status=partner.status,
                partner_jurisdiction=str(partner.jurisdiction),
                nda_expires_at=partner.nda_expires_at,
                release_slug=release.slug,
                release_status=release.status,
                release_policy=release.policy,
                release_jurisdictions=frozenset(str(c) for c in release.policy_jurisdictions),
                checkpoint_label=str(checkpoint),
                checkpoint_status=checkpoint.status,
                has_window=window is not None,
            )
        )
    )
    # Not None: ``grant_eligible`` refused ``has_window=False`` (``no_window``).
    return cast(EmbargoWindow, window)


def default_expiry(window: EmbargoWindow, at: datetime) -> datetime:
    """When a grant issued at ``at`` in ``window`` expires unless told otherwise: the
    configured number of days later, clipped to the window's close."""
    return min(at + timedelta(days=settings.ACCESSCTL_DEFAULT_GRANT_DAYS), window.closes_at)


def check_grant(
    *,
    partner: Partner,
    checkpoint: Checkpoint,
    quota_bytes: int,
    expires_at: datetime | None,
    at: datetime,
    direct: bool = False,
) -> tuple[EmbargoWindow, datetime]:
    """Refuse a grant that cannot be issued; return its window and expiry (default: the
    configured number of days, clipped to the window's close). Forms call this too.

    ``direct=True``: issued by staff without a request, which early access never is.
    """
    if direct:
        _check(_direct_issue(checkpoint, at))
    window = _check_eligible(partner, checkpoint, at)
    _check(rules.quota_valid(quota_bytes))
    expires_at = expires_at or default_expiry(window, at)
    _check(
        rules.grant_terms(
            now=at,
            quota_bytes=quota_bytes,
            expires_at=expires_at,
            window_closes_at=window.closes_at,
        )
    )
    return window, expires_at


def _refuse_existing(
    actor: Actor, partner: Partner, checkpoint: Checkpoint, *, requests: bool
) -> None:
    """Refuse a second active grant (``grant_exists``) or, for ``requests``, a second
    pending request (``request_exists``) of ``partner`` for ``checkpoint``; the message
    speaks to whoever asked: the partner's own member, or staff acting for it."""
    own = actor is not None and not actor.is_staff
    holder = "You already hold" if own else f"Partner {partner.slug} already holds"
    has = "You already have" if own else f"Partner {partner.slug} already has"
    if Grant.objects.filter(
        partner=partner, checkpoint=checkpoint, status=Grant.Status.ACTIVE
    ).exists():
        raise ActionError("grant_exists", f"{holder} an active grant for {checkpoint}.")
    if (
        requests
        and GrantRequest.objects.filter(
            partner=partner, checkpoint=checkpoint, status=GrantRequest.Status.PENDING
        ).exists()
    ):
        raise ActionError(
            "request_exists", f"{has} a pending request for {checkpoint}; it awaits approval."
        )


def _direct_issue(checkpoint: Checkpoint, at: datetime) -> rules.Result:
    release = checkpoint.release
    return rules.direct_issue(
        now=at, public_release_at=release.public_release_at, release_slug=release.slug
    )


def _is_early_access(checkpoint: Checkpoint, at: datetime) -> bool:
    return rules.is_early_access(at, checkpoint.release.public_release_at)


def _require_approvals(checkpoint: Checkpoint, request: GrantRequest | None, at: datetime) -> None:
    """Defence in depth: whatever path leads here, no grant exists before the public time
    unless its request holds the early-access approvals."""
    if not _is_early_access(checkpoint, at):
        return
    _check(
        rules.early_access_approved(
            now=at,
            public_release_at=checkpoint.release.public_release_at,
            release_slug=checkpoint.release.slug,
            has_request=request is not None,
            approvals_given=approvals_given(request) if request is not None else 0,
            approvals_required=request.approvals_required if request is not None else 0,
        )
    )


def _issue(
    *,
    actor: Actor,
    partner: Partner,
    checkpoint: Checkpoint,
    quota_bytes: int,
    expires_at: datetime | None,
    request: GrantRequest | None,
    at: datetime,
) -> Grant:
    # ``_current`` locks the checkpoint and its release row, so the public time read here
    # is the committed one and cannot move (``update_release`` locks it too) until we commit.
    partner, checkpoint = _current(partner, checkpoint)
    _require_approvals(checkpoint, request, at)
    window, expires_at = check_grant(
        partner=partner,
        checkpoint=checkpoint,
        quota_bytes=quota_bytes,
        expires_at=expires_at,
        at=at,
    )
    _refuse_existing(actor, partner, checkpoint, requests=False)
    grant = Grant(
        partner=partner,
        checkpoint=checkpoint,
        window=window,
        request=request,
        issued_at=at,
        issued_by=actor,
        expires_at=expires_at,
        quota_bytes=quota_bytes,
    )
    with integrity_as_action_error():
        grant.save()
    record(
        AuditAction.GRANT_ISSUED,
        actor=actor,
        target=grant,
        partner=partner,
        changes={
            "checkpoint": str(checkpoint),
            "window": window.pk,
            "expires_at": expires_at.isoformat(),
            "quota_bytes": quota_bytes,
            "request": request.pk if request else None,
        },
        at=at,
    )
    # A fingerprinted release: the partner's key commitment and its pending copies, in
    # this transaction (docs/fingerprints.md); the task writes them once it commits.
    prepare_variants(
        actor=actor, release=checkpoint.release, partner=partner, checkpoints=[checkpoint], at=at
    )
    approved = request is not None and request.approvals_required > 0
    notify.queue(
        Notification.Kind.REQUEST_APPROVED if approved else Notification.Kind.GRANT_ISSUED,
        f"grant.issued:{grant.pk}",
        notify.partner_recipients([partner.pk]),
        {
            "grant": grant.pk,
            "request": request.pk if request else None,
            "checkpoint": str(checkpoint),
            "expires_at": notify.when(expires_at),
            "quota_bytes": quota_bytes,
        },
    )
    return grant


@transaction.atomic
def issue_grant(
    *,
    actor: Actor,
    partner: Partner,
    checkpoint: Checkpoint,
    quota_bytes: int,
    expires_at: datetime | None = None,
) -> Grant:
    """Issue a grant directly. Early access must go through a request and its approvals."""
    authorize(actor, Operation.GRANT_ISSUE, partner)
    at = now()
    checkpoint = Checkpoint.objects.select_related("release").get(pk=checkpoint.pk)
    _check(_direct_issue(checkpoint, at))
    return _issue(
        actor=actor,
        partner=partner,
        checkpoint=checkpoint,
        quota_bytes=quota_bytes,
        expires_at=expires_at,
        request=None,
        at=at,
    )


@transaction.atomic
def request_grant(
    *,
    actor: Actor,
    partner: Partner,
    checkpoint: Checkpoint,
    quota_bytes: int | None = None,
    note: str = "",
) -> GrantRequest:
    """Ask for a grant. After the public release it is issued at once; before, staff approve.

    The quota is at most ``quota_limit(checkpoint)`` (``quota_too_large``): a request after
    the public release is issued with no person looking at it. Default: twice the
    checkpoint's size, within that limit. The returned request's ``status`` says which:
    ``approved`` (its ``grant`` exists) or ``pending``.
    """
    authorize(actor, Operation.GRANT_REQUEST, partner)
    at = now()
    partner, checkpoint = _current(partner, checkpoint)
    _check_eligible(partner, checkpoint, at)
    limit = quota_limit(checkpoint)
    if quota_bytes is None:
        quota_bytes = min(2 * _size(checkpoint), limit)
    _check(
        rules.quota_within_limit(
            quota_bytes=quota_bytes,
            limit=limit,
            quota_factor=checkpoint.release.quota_factor,
            release_slug=checkpoint.release.slug,
        )
    )
    # Checked under the partner and checkpoint locks ``_current`` took, so a second
    # request racing this one waits here and sees it (the database rules are the backstop).
    _refuse_existing(actor, partner, checkpoint, requests=True)
    early = _is_early_access(checkpoint, at)
    request = GrantRequest(
        partner=partner,
        checkpoint=checkpoint,
        requested_by=actor,
        requested_at=at,
        quota_bytes=quota_bytes,
        note=note,
        approvals_required=early_access_approvals() if early else 0,
    )
    with integrity_as_action_error():
        request.save()
    record(
        AuditAction.GRANT_REQUESTED,
        actor=actor,
        target=request,
        partner=partner,
        changes={
            "checkpoint": str(checkpoint),
            "quota_bytes": quota_bytes,
            "early_access": early,
            "approvals_required": request.approvals_required,
        },
        at=at,
    )
    if not early:
        _approve(request, at=at)
        _issue(
            actor=None,
            partner=partner,
            checkpoint=checkpoint,
            quota_bytes=quota_bytes,
            expires_at=None,
            request=request,
            at=at,
        )
    return request


def _approve(request: GrantRequest, *, at: datetime) -> None:
    request.status = GrantRequest.Status.APPROVED
    request.decided_at = at
    request.save(update_fields=["status", "decided_at"])


def _lock_pending(request: GrantRequest) -> GrantRequest:
    request = (
        GrantRequest.objects.select_for_update()
        .select_related("partner", "checkpoint__release")
        .get(pk=request.pk)
    )
    if request.status != GrantRequest.Status.PENDING:
        raise ActionError("request_decided", f"Request #{request.pk} was already {request.status}.")
    return request


@transaction.atomic
def approve_grant_request(*, actor: User, request: GrantRequest, note: str = "") -> GrantRequest:
    """Add ``actor``'s approval; the last approval needed issues the grant.

    Four eyes: whoever filed the request cannot approve it, and nobody approves twice.
    The row lock serializes approvals, so two approvers racing cannot issue two grants.
    ``note`` (the approver's reason, from the request's own page) is kept in the event.
    """
    authorize(actor, Operation.GRANT_REQUEST_DECIDE, request)
    request = _lock_pending(request)
    _check(approval_refusal(actor=actor, request=request))
    at = now()
    with integrity_as_action_error():
        GrantApproval.objects.create(request=request, approver=actor, approved_at=at)
    count = request.approvals.count()
    # Before the public time the current setting counts too, should it have been raised
    # since the request was filed; ``_issue`` checks the same.
    needed = (
        approvals_needed(request)
        if _is_early_access(request.checkpoint, at)
        else request.approvals_required
    )
    complete = count >= needed
    if complete:
        _approve(request, at=at)
    record(
        AuditAction.GRANT_REQUEST_APPROVED,
        actor=actor,
        target=request,
        partner=request.partner,
        changes={
            "approvals": [count - 1, count],
            "approvals_required": needed,
            **({"note": note[:300]} if note.strip() else {}),
        },
        at=at,
    )
    if complete:
        _issue(
            actor=actor,
            partner=request.partner,
            checkpoint=request.checkpoint,
            quota_bytes=request.quota_bytes,
            expires_at=None,
            request=request,
            at=at,
        )
    return request


@transaction.atomic
def reject_grant_request(*, actor: Actor, request: GrantRequest, reason: str) -> GrantRequest:
    authorize(actor, Operation.GRANT_REQUEST_DECIDE, request)
    if not reason.strip():
        raise ActionError("reason_required", "Say why: the partner is told the reason.")
    request = _lock_pending(request)
    at = now()
    request.status = GrantRequest.Status.REJECTED
    request.decided_at, request.rejected_by, request.rejection_reason = at, actor, reason
    request.save(update_fields=["status", "decided_at", "rejected_by", "rejection_reason"])
    record(
        AuditAction.GRANT_REQUEST_REJECTED,
        actor=actor,
        target=request,
        partner=request.partner,
        changes={"reason": reason, "status": ["pending", "rejected"]},
        at=at,
    )
    notify.queue(
        Notification.Kind.REQUEST_REJECTED,
        f"grant_request.rejected:{request.pk}",
        notify.partner_recipients([request.partner_id]),
        {"request": request.pk, "checkpoint": str(request.checkpoint), "reason": reason},
    )
    return request


@transaction.atomic
def revoke_grant(*, actor: Actor, grant: Grant, reason: str) -> Grant:
    """Revoke at once: the next authorization reads the committed row and is refused.

    Revoking a grant that is no longer usable (revoked or expired) changes nothing.
    """
    authorize(actor, Operation.GRANT_REVOKE, grant)
    if not reason.strip():
        raise ActionError("reason_required", "Say why: the reason is kept in the audit trail.")
    return end_grant(actor=actor, grant=grant, reason=reason, at=now())


def end_grant(*, actor: Actor, grant: Grant, reason: str, at: datetime) -> Grant:
    """``revoke_grant`` without its authority check, for actions whose own operation
    covers revoking (a partner moved where a release's export policy blocks it)."""
    grant = Grant.objects.select_for_update().get(pk=grant.pk)
    if grant.status in {Grant.Status.REVOKED, Grant.Status.EXPIRED}:
        return grant
    old = grant.status
    grant.status, grant.revoked_at, grant.revoked_by, grant.revoke_reason = (
        Grant.Status.REVOKED,
        at,
        actor,
        reason,
    )
    grant.revocation = start_revocation(
        Revocation.Scope.GRANT, grant, actor=actor, reason=reason, at=at
    )
    grant.save(update_fields=["status", "revoked_at", "revoked_by", "revoke_reason", "revocation"])
    record(
        AuditAction.GRANT_REVOKED,
        actor=actor,
        target=grant,
        partner_id=grant.partner_id,
        changes={
            "reason": reason,
            "status": [old, grant.status],
            "revocation": grant.revocation.pk,
        },
        at=at,
    )
    return grant
