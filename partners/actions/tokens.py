from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from accessctl.audit.events import AuditAction, record
from partners import tokens
from partners.authority import Operation, authorize
from partners.errors import ActionError
from partners.models import AccessToken, Membership, Revocation

from ._common import now, validate
from .revocations import start_revocation

__all__ = ["create_token", "revoke_token"]


@transaction.atomic
def create_token(
    *,
    actor: Any,
    user: Any,
    name: str,
    scopes: list[str],
    expires_at: datetime | None = None,
    allowed_networks: list[str] | None = None,
) -> tuple[AccessToken, str]:
    """Make a token for ``user``; returns the row and the secret, which is never seen again.

    A partner member's token acts for that partner; a staff member's token is for
    automation and may only carry the ``staff`` scope.
    """
    authorize(actor, Operation.TOKEN_INVITE_MEMBER, user)
    at = now()
    membership = Membership.objects.filter(user=user).select_related("partner").first()
    partner = membership.partner if membership else None
    allowed = {tokens.Scope.STAFF} if partner is None else set(tokens.Scope) - {tokens.Scope.STAFF}
    if partner is None and not user.is_staff:
        raise ActionError("token_invalid_user", f"{user} is neither staff nor a partner member.")
    wanted = set(scopes)
    if not wanted or not wanted <= {str(s) for s in allowed}:
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
    secret = tokens.generate()
    pepper_id = settings.ACCESSCTL_TOKEN_PEPPER_ID
    token = AccessToken(
        user=user,
        partner=partner,
        name=name,
        prefix=secret[:12],
        digest=tokens.digest(secret, pepper_id),
        pepper_id=pepper_id,
        scopes=sorted(wanted),
        allowed_networks=allowed_networks or [],
        created_at=at,
        created_by=actor,
        expires_at=expires_at,
    )
    validate(token)
    token.save()
    record(
        AuditAction.TOKEN_CREATED,
        actor=actor,
        target=token,
        partner=partner,
        changes={
            "user": user.get_username(),
            "prefix": token.prefix,
            "scopes": token.scopes,
            "expires_at": expires_at.isoformat(),
        },
        at=at,
    )
    return token, secret


@transaction.atomic
def revoke_token(*, actor: Any, token: AccessToken, reason: str) -> AccessToken:
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
