"""API tokens: credentials act only for their owner.

* A staff token is made by its owner, for themselves, after a fresh second-factor code
  (``create_staff_token``); nobody can make one for somebody else.
* A partner member's token is asked for by staff (``invite_member_token``) but made only
  when the member claims it (``claim_token``) with a one-time code emailed to the member's
  own address: the staff member who asked never sees the code or the secret.
* A token's holder may swap its secret for a new one (``rotate_token``).

Secrets are returned exactly once, to the person they belong to; only keyed digests are
stored (of tokens and of claim codes).
"""

import logging
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import QuerySet
from django_otp import devices_for_user
from django_otp.plugins.otp_static.models import StaticDevice

from accessctl.actors import Actor
from accessctl.audit.events import AuditAction, record
from accessctl_wire import formats
from partners import notify, tokens
from partners.authority import Operation, authorize
from partners.errors import ActionError
from partners.models import AccessToken, Membership, Partner, Revocation, TokenInvitation

from ._common import now, validate
from .revocations import start_revocation

__all__ = [
    "claim_token",
    "create_staff_token",
    "invite_member_token",
    "revoke_member_credentials",
    "revoke_token",
    "rotate_token",
    "verify_second_factor",
]

log = logging.getLogger(__name__)

PARTNER_SCOPES = frozenset(str(s) for s in tokens.Scope) - {str(tokens.Scope.STAFF)}
STAFF_SCOPES = frozenset({str(tokens.Scope.STAFF)})


def verify_second_factor(user: User | None, code: str) -> None:
    """Check a current code from ``user``'s own django-otp devices: a six- or eight-digit
    code against their authenticator app (TOTP), anything else against their one-time
    backup codes.

    This runs before the action's transaction on purpose: django-otp counts failed
    attempts on the device (and slows them down), and a refusal rolls the action's
    transaction back, which would forget the failure and let codes be guessed freely.
    """
    code = (code or "").strip()
    if not code:
        raise ActionError(
            "second_factor_required", "Enter a current code from your authenticator app."
        )
    devices = list(devices_for_user(user, confirmed=True)) if user is not None else []
    if not devices:
        raise ActionError(
            "second_factor_required",
            "Your account has no two-factor device; a security officer must set one up.",
        )
    apps = [d for d in devices if not isinstance(d, StaticDevice)]
    backup = [d for d in devices if isinstance(d, StaticDevice)]
    for device in apps if code.isdigit() and len(code) in (6, 8) else backup:
        allowed, _ = device.verify_is_allowed()
        if allowed and device.verify_token(code):
            return
    raise ActionError("second_factor_invalid", "That code is not valid (or was already used).")


def _check_terms(
    scopes: Iterable[str], allowed: frozenset[str], expires_at: datetime | None, at: datetime
) -> tuple[list[str], datetime]:
    wanted = set(scopes)
    if not wanted or not wanted <= allowed:
        raise ActionError(
            "token_invalid_scopes",
            f"Scopes for this user must be chosen from: {', '.join(sorted(allowed))}.",
        )
    longest = at + timedelta(days=settings.ACCESSCTL_TOKEN_MAX_DAYS)
    expires_at = expires_at or longest
    if not at < expires_at <= longest:
        raise ActionError(
            "token_invalid_expiry",
            f"A token must expire in the future and within {settings.ACCESSCTL_TOKEN_MAX_DAYS} days.",
        )
    return sorted(wanted), expires_at


def _current_partner(user: User) -> Partner | None:
    membership = Membership.objects.filter(user=user).select_related("partner").first()
    return membership.partner if membership else None


def _make_token(
    *,
    user: User,
    partner: Partner | None,
    name: str,
    scopes: list[str],
    expires_at: datetime,
    allowed_networks: list[str],
    created_by: User | None,
    at: datetime,
) -> tuple[AccessToken, str]:
    secret = tokens.generate()
    pepper_id = settings.ACCESSCTL_TOKEN_PEPPER_ID
    token = AccessToken(
        user=user,
        partner=partner,
        name=name,
        prefix=secret[:12],
        digest=tokens.digest(secret, pepper_id),
        pepper_id=pepper_id,
        scopes=scopes,
        allowed_networks=allowed_networks,
        created_at=at,
        created_by=created_by,
        expires_at=expires_at,
    )
    validate(token)
    token.save()
    return token, secret


def create_staff_token(
    *,
    actor: Actor,
    name: str,
    second_factor: str,
    expires_at: datetime | None = None,
    allowed_networks: list[str] | None = None,
) -> tuple[AccessToken, str]:
    """Make a staff automation token for ``actor`` themselves; returns the row and the
    secret, which is never seen again. The token can do what its owner may, no more.

    The second factor is checked first, outside the transaction (see
    ``verify_second_factor``); the token is then made in one transaction.
    """
    authorize(actor, Operation.TOKEN_CREATE_STAFF, actor)
    if actor is None or not actor.is_staff:
        raise ActionError("token_invalid_user", "A staff token is made by a staff member.")
    verify_second_factor(actor, second_factor)
    return _create_staff_token(
        actor=actor, name=name, expires_at=expires_at, allowed_networks=allowed_networks
    )


@transaction.atomic
def _create_staff_token(
    *, actor: User, name: str, expires_at: datetime | None, allowed_networks: list[str] | None
) -> tuple[AccessToken, str]:
    at = now()
    scopes, expires_at = _check_terms(STAFF_SCOPES, STAFF_SCOPES, expires_at, at)
    token, secret = _make_token(
        user=actor,
        partner=None,
        name=name,
        scopes=scopes,
        expires_at=expires_at,
        allowed_networks=allowed_networks or [],
        created_by=actor,
        at=at,
    )
    record(
        AuditAction.TOKEN_CREATED,
        actor=actor,
        target=token,
        changes={
            "user": actor.get_username(),
            "prefix": token.prefix,
            "scopes": token.scopes,
            "allowed_networks": token.allowed_networks,
            "expires_at": expires_at.isoformat(),
            "second_factor": True,
        },
        at=at,
    )
    return token, secret


def _claim_digest(code: str, pepper_id: str) -> str:
    # A separate domain from token digests: a claim code is never a valid token digest.
    return tokens.digest(f"claim:{code}", pepper_id)


@transaction.atomic
def invite_member_token(
    *,
    actor: Actor,
    user: User,
    name: str,
    scopes: list[str],
    expires_at: datetime | None = None,
    allowed_networks: list[str] | None = None,
) -> TokenInvitation:
    """Ask for a token for partner member ``user``. Nothing secret is made here: a
    one-time claim link goes to the member's own address after commit, and the token is
    made when they open it (``claim_token``). The code is in no return value, row or
    event: only its keyed digest is stored."""
    authorize(actor, Operation.TOKEN_INVITE_MEMBER, user)
    at = now()
    partner = _current_partner(user)
    if partner is None or user.is_staff or not user.is_active:
        raise ActionError(
            "token_invalid_user",
            f"{user} is not an active partner member; staff make their own tokens.",
        )
    if partner.status != Partner.Status.ACTIVE:
        raise ActionError(
            "partner_suspended",
            f"Partner {partner.slug} is {partner.status}: its members get no new token "
            "until it is reinstated.",
        )
    if not user.email:
        raise ActionError("member_email_missing", f"{user} has no email address to send it to.")
    scope_list, expires_at = _check_terms(scopes, PARTNER_SCOPES, expires_at, at)
    claim_by = at + timedelta(hours=settings.ACCESSCTL_TOKEN_CLAIM_HOURS)
    code = secrets.token_urlsafe(32)
    pepper_id = settings.ACCESSCTL_TOKEN_PEPPER_ID
    invitation = TokenInvitation(
        user=user,
        partner=partner,
        name=name,
        scopes=scope_list,
        allowed_networks=allowed_networks or [],
        token_expires_at=expires_at,
        code_digest=_claim_digest(code, pepper_id),
        pepper_id=pepper_id,
        created_at=at,
        created_by=actor,
        claim_by=min(claim_by, expires_at),
    )
    validate(invitation)
    invitation.save()
    record(
        AuditAction.TOKEN_INVITED,
        actor=actor,
        target=invitation,
        partner=partner,
        changes={
            "user": user.get_username(),
            "email": user.email,
            "name": name,
            "scopes": scope_list,
            "allowed_networks": invitation.allowed_networks,
            "token_expires_at": expires_at.isoformat(),
            "claim_by": invitation.claim_by.isoformat(),
        },
        at=at,
    )
    address, claim_by_text = user.email, formats.moment(invitation.claim_by)
    transaction.on_commit(
        lambda: _send_invitation(address, code, name, partner.slug, claim_by_text), robust=True
    )
    return invitation


def _send_invitation(address: str, code: str, name: str, partner: str, claim_by: str) -> None:
    """Email the claim link straight to the member: not through the notification table,
    which staff can read. The code sits in the URL fragment, which browsers never send,
    so it cannot reach any server's access log."""
    text = notify.render_text(
        "email/token_invitation.txt",
        {
            "link": f"{settings.ACCESSCTL_PUBLIC_URL}/tokens/claim#{code}",
            "claim_url": f"{settings.ACCESSCTL_PUBLIC_URL}/tokens/claim",
            "code": code,
            "name": name,
            "partner": partner,
            "claim_by": claim_by,
            "site_name": settings.ACCESSCTL_SITE_NAME,
        },
    )
    subject, _, body = text.partition("\n")
    send_mail(subject.strip(), body.lstrip("\n"), None, [address])


@transaction.atomic
def claim_token(*, code: str) -> tuple[AccessToken, str]:
    """The invited member makes their token with the emailed code: once, in time, while
    they still act for the partner. Returns the token and its secret, shown once."""
    digests = [_claim_digest(code.strip(), p) for p in settings.ACCESSCTL_TOKEN_PEPPERS]
    invitation = (
        TokenInvitation.objects.select_for_update()
        .select_related("user", "partner")
        .filter(code_digest__in=digests)
        .first()
    )
    if invitation is None:
        raise ActionError("invitation_invalid", "This link is not valid.")
    member = invitation.user
    authorize(member, Operation.TOKEN_CLAIM, invitation)
    at = now()
    if invitation.claimed_at is not None:
        raise ActionError("invitation_used", "This link was already used; ask for a new one.")
    if invitation.cancelled_at is not None:
        raise ActionError("invitation_cancelled", "This invitation was cancelled.")
    if invitation.claim_by <= at or invitation.token_expires_at <= at:
        raise ActionError("invitation_expired", "This link has expired; ask for a new one.")
    partner = _current_partner(member)
    if partner is None or partner.pk != invitation.partner_id:
        raise ActionError("token_invalid_user", "You no longer act for this partner.")
    token, secret = _make_token(
        user=member,
        partner=partner,
        name=invitation.name,
        scopes=list(invitation.scopes),
        expires_at=invitation.token_expires_at,
        allowed_networks=list(invitation.allowed_networks),
        created_by=member,
        at=at,
    )
    invitation.claimed_at, invitation.token = at, token
    invitation.save(update_fields=["claimed_at", "token"])
    record(
        AuditAction.TOKEN_CLAIMED,
        actor=member,
        target=token,
        partner=partner,
        changes={
            "invitation": invitation.pk,
            "invited_by": invitation.created_by.get_username() if invitation.created_by else "",
            "prefix": token.prefix,
            "scopes": token.scopes,
            "expires_at": token.expires_at.isoformat(),
        },
        at=at,
    )
    return token, secret


@transaction.atomic
def rotate_token(*, actor: Actor, token: AccessToken) -> tuple[AccessToken, str]:
    """Swap ``token``'s secret: a new token with the same owner, partner, name, scopes,
    address ranges and expiry (rotating never extends a credential's life), and the old
    one revoked at once. Only the token's owner may, presenting it."""
    authorize(actor, Operation.TOKEN_ROTATE, token)
    old = AccessToken.objects.select_for_update().select_related("user").get(pk=token.pk)
    at = now()
    if old.revoked_at is not None:
        raise ActionError("token_revoked", "This token was revoked.")
    if old.expires_at <= at:
        raise ActionError("token_expired", "This token has expired.")
    if old.partner_id is not None and getattr(_current_partner(old.user), "pk", None) != (
        old.partner_id
    ):
        raise ActionError("token_invalid_user", "You no longer act for this partner.")
    new, secret = _make_token(
        user=old.user,
        partner=old.partner,
        name=old.name,
        scopes=list(old.scopes),
        expires_at=old.expires_at,
        allowed_networks=list(old.allowed_networks),
        created_by=actor,
        at=at,
    )
    old.revoked_at, old.revoked_by = at, actor
    old.save(update_fields=["revoked_at", "revoked_by"])
    record(
        AuditAction.TOKEN_ROTATED,
        actor=actor,
        target=new,
        partner_id=new.partner_id,
        changes={"prefix": [old.prefix, new.prefix], "replaces": old.pk},
        at=at,
    )
    return new, secret


def revoke_tokens(
    tokens: QuerySet[AccessToken], *, actor: Actor, reason: str, at: datetime
) -> list[AccessToken]:
    """Revoke every unrevoked token of ``tokens`` (locked, in id order), one
    ``token.revoked`` event each; inside the caller's transaction. Returns them."""
    revoked = list(tokens.select_for_update().filter(revoked_at__isnull=True).order_by("pk"))
    for token in revoked:
        token.revoked_at, token.revoked_by = at, actor
        token.save(update_fields=["revoked_at", "revoked_by"])
        record(
            AuditAction.TOKEN_REVOKED,
            actor=actor,
            target=token,
            partner_id=token.partner_id,
            changes={"reason": reason, "prefix": token.prefix},
            at=at,
        )
    return revoked


def revoke_member_credentials(
    *, actor: Actor, user: User, partner_id: int, reason: str, at: datetime
) -> tuple[list[str], list[int]]:
    """Revoke ``user``'s tokens for the partner (one ``token.revoked`` event each) and
    cancel their pending invitations. Called inside the caller's transaction."""
    revoked = revoke_tokens(
        AccessToken.objects.filter(user=user, partner_id=partner_id),
        actor=actor,
        reason=reason,
        at=at,
    )
    pending = TokenInvitation.objects.filter(
        user=user, partner_id=partner_id, claimed_at__isnull=True, cancelled_at__isnull=True
    )
    cancelled = list(pending.values_list("pk", flat=True))
    pending.update(cancelled_at=at)
    return [t.prefix for t in revoked], cancelled


@transaction.atomic
def revoke_token(*, actor: Actor, token: AccessToken, reason: str) -> AccessToken:
    """Revoke at once; revoking a revoked token changes nothing."""
    authorize(actor, Operation.TOKEN_REVOKE, token)
    if not reason.strip():
        raise ActionError("reason_required", "Say why: the reason is kept in the audit trail.")
    token = AccessToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        return token
    at = now()
    token.revoked_at, token.revoked_by = at, actor
    token.save(update_fields=["revoked_at", "revoked_by"])
    revocation = start_revocation(Revocation.Scope.TOKEN, token, actor=actor, reason=reason, at=at)
    record(
        AuditAction.TOKEN_REVOKED,
        actor=actor,
        target=token,
        partner_id=token.partner_id,
        changes={"reason": reason, "prefix": token.prefix, "revocation": revocation.pk},
        at=at,
    )
    return token
