"""API token authentication, scopes, caller rules and per-token throttling."""

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions, throttling
from rest_framework.request import Request

from accessctl.audit.events import AuditAction, event, record
from accessctl.audit.models import AuditEvent, Outcome
from accessctl.codes import Code, registered, status_of
from partners import tokens
from partners.decisions import Decision
from partners.models import AccessToken, Partner
from partners.queries import token_by_digests
from partners.rules import CallerFacts, StaffCallerFacts, decide_caller, decide_staff_caller

from . import ratelimit
from .errors import Problem

if TYPE_CHECKING:  # DRF's views import this module (its default authentication, throttle)
    from rest_framework.views import APIView

__all__ = [
    "PartnerCaller",
    "StaffCaller",
    "TokenAuthentication",
    "TokenThrottle",
    "caller_facts",
    "caller_partner",
    "presented_token",
    "staff_caller_facts",
    "token_facts",
]

LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenFailed(exceptions.AuthenticationFailed):
    """A refused credential (401): the code is registered, the detail is its own."""

    def __init__(self, code: Code | str, evidence: AuditEvent) -> None:
        member = registered(code)
        super().__init__(detail=getattr(member, "detail", str(member)), code=member)
        self.evidence = evidence  # written by the exception handler (partners.api.evidence)


def _reject(request: Request, code: str, token: AccessToken | None, presented: str) -> TokenFailed:
    # The event keeps the token's public prefix at most: never the secret. The exception
    # handler writes it, or, on a download, the one ``download.denied`` that holds it.
    evidence = event(
        AuditAction.TOKEN_REJECTED,
        actor=token.user if token else None,
        target=token,
        target_type="partners.accesstoken",
        partner_id=token.partner_id if token else None,
        outcome=Outcome.DENIED,
        reason=code,
        changes={"prefix": presented[:12] if presented.startswith(tokens.PREFIX) else ""},
    )
    return TokenFailed(code, evidence)


class TokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer acx_...``: one indexed query, no slow hash."""

    keyword = "Bearer"

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="accessctl"'

    def authenticate(self, request: Request) -> tuple[User, AccessToken] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, presented = header.partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not tokens.is_well_formed(presented):
            raise _reject(request, "token_malformed", None, presented)
        token = token_by_digests(tokens.digests(presented))
        if token is None or not token.user.is_active:
            raise _reject(request, "token_invalid", None, presented)
        now = timezone.now()
        if token.revoked_at is not None:
            raise _reject(request, "token_revoked", token, presented)
        if token.expires_at <= now:
            raise _reject(request, "token_expired", token, presented)
        if token.partner_id is not None and (
            token.member_of_id != token.partner_id  # type: ignore[attr-defined]
            or token.user.is_staff
            or token.user.is_superuser
        ):
            # A partner token acts only while its user is a non-staff member of its
            # partner. Removing a member revokes their tokens and making a member staff is
            # refused; this holds even if either were done behind the actions' back.
            raise _reject(request, "token_membership_ended", token, presented)
        if token.last_used_at is None or token.last_used_at < now - LAST_USED_RESOLUTION:
            # At most one write a minute per token, and a conditional one; the use is
            # recorded with it (downloads and changes have their own events every time).
            with transaction.atomic():
                bumped = (
                    AccessToken.objects.filter(pk=token.pk)
                    .filter(
                        Q(last_used_at__isnull=True)
                        | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
                    )
                    .update(last_used_at=now)
                )
                if bumped:
                    record(
                        AuditAction.TOKEN_USED,
                        actor=token.user,
                        target=token,
                        partner_id=token.partner_id,
                        changes={
                            "prefix": token.prefix,
                            "method": request.method,
                            "path": request.path[:300],
                        },
                        at=now,
                    )
        return token.user, token


def token_facts(token: AccessToken) -> dict[str, Any]:
    return {
        "token_expires_at": token.expires_at,
        "token_revoked": token.revoked_at is not None,
        "token_networks": tuple(token.allowed_networks),
    }


def presented_token(request: Request) -> AccessToken:
    """The token the request authenticated with (``TokenAuthentication``), typed.

    Every API view admits only a token's holder (``PartnerCaller``, ``StaffCaller``), so
    this is how a view reads it; without one the answer is the 401 those classes give.
    """
    token = request.auth
    if not isinstance(token, AccessToken):
        raise exceptions.NotAuthenticated("Send 'Authorization: Bearer <token>'.")
    return token


def caller_partner(request: Request) -> Partner:
    """The partner of the presented token; a staff token is refused (403,
    ``partner_token_required``)."""
    partner = presented_token(request).partner
    if partner is None:
        raise Problem(403, "partner_token_required", "This endpoint is for partner tokens.")
    return partner


def caller_facts(request: Request) -> CallerFacts:
    token, partner = presented_token(request), caller_partner(request)
    return CallerFacts(
        now=timezone.now(),
        client_address=request.META.get("REMOTE_ADDR"),
        partner_status=partner.status,
        partner_networks=tuple(partner.allowed_networks),
        nda_expires_at=partner.nda_expires_at,
        **token_facts(token),
    )


class _TokenScope(permissions.BasePermission):
    def has_permission(self, request: Request, view: "APIView") -> bool:
        token = presented_token(request)
        scope = getattr(view, "required_scope", None)
        if scope and scope not in token.scopes:
            raise Problem(403, "scope_missing", f"This token lacks the scope {scope!r}.")
        return True


def _deny(decision: Decision) -> Problem:
    """The problem to raise for a refused caller, partner and staff callers alike. Its
    ``api.denied`` event, naming what was asked for, is written by the one rule of
    ``partners.api.evidence``."""
    reason = str(decision.reason)
    return Problem(status_of(reason), reason, decision.detail)


class PartnerCaller(_TokenScope):
    """A partner's token, for a partner in good standing, from an allowed address."""

    def has_permission(self, request: Request, view: "APIView") -> bool:
        if isinstance(request.auth, AccessToken) and request.auth.partner_id is None:
            raise Problem(403, "partner_token_required", "This endpoint is for partner tokens.")
        super().has_permission(request, view)
        decision = decide_caller(caller_facts(request))
        if not decision:
            raise _deny(decision)
        return True


def staff_caller_facts(request: Request) -> StaffCallerFacts:
    token = presented_token(request)
    return StaffCallerFacts(
        now=timezone.now(),
        client_address=request.META.get("REMOTE_ADDR"),
        token_expires_at=token.expires_at,
        token_revoked=token.revoked_at is not None,
        token_networks=tuple(token.allowed_networks),
        user_active=bool(token.user.is_active),
        user_staff=bool(token.user.is_staff),
    )


class StaffCaller(_TokenScope):
    """A staff automation token, held to the same credential rules as a partner's
    (revocation, expiry, its address ranges) and to its owner still being active staff;
    each action then checks the owner's own permissions."""

    def has_permission(self, request: Request, view: "APIView") -> bool:
        token = request.auth
        if isinstance(token, AccessToken) and token.partner_id is not None:
            raise Problem(403, "staff_token_required", "This endpoint is for staff tokens.")
        super().has_permission(request, view)
        decision = decide_staff_caller(staff_caller_facts(request))
        if not decision:
            raise _deny(decision)
        return True


class TokenThrottle(throttling.BaseThrottle):
    """At most ``ACCESSCTL_API_RATE`` requests per token (or, without one, per client
    address) in any interval of the rate's period (a sliding window:
    ``partners.api.ratelimit``). With a Redis cache (``CACHE_URL``) the limit holds
    across all web processes, in one round trip. Requests refused before this runs count
    toward the same limit (``partners.api.evidence``)."""

    def allow_request(self, request: Request, view: "APIView") -> bool:
        token = request.auth
        # REMOTE_ADDR is the client address accessctl.middleware settled (a trusted
        # proxy's hop only), not DRF's get_ident, which believes any X-Forwarded-For.
        who = ratelimit.ident(
            token.pk if isinstance(token, AccessToken) else None, request.META.get("REMOTE_ADDR")
        )
        allowed, self._wait = ratelimit.count(request._request, who)
        return allowed

    def wait(self) -> float | None:
        return max(self._wait, 0.0)
