"""One audit event per refused API request, written by the exception handler.

Every refusal of the API passes through ``problems_exception_handler``, after any
transaction of the request ended, and this records it exactly once:

- a refused action carries its event (``partners.refusals``): it is written;
- a view with ``refusal_event`` (the download view: ``download.denied``) records every
  refusal of it as that event, whichever rule refused it (token, caller, grant, file,
  range), naming the grant, file and range; the token's prefix and the rule go in it;
- any other 401/403 is ``token.rejected`` (a credential refused) or ``api.denied``.

Not recorded: 429 (a flood would write rows as fast as it is refused; the throttle
counts it), and 400/404/405/406/413/415 outside downloads (a malformed request, nothing
refused about anything).
"""

from typing import Any

from rest_framework.request import Request

from accessctl.audit.events import AuditAction, event
from accessctl.audit.models import AuditEvent, Outcome
from partners.models import AccessToken
from partners.refusals import settle

__all__ = ["record_refusal"]

_NOT_RECORDED = {429}


def _download_event(
    exc: BaseException, request: Request, view: Any, code: str, carried: AuditEvent | None
) -> AuditEvent:
    kwargs = getattr(view, "kwargs", {}) or {}
    token = getattr(request, "_auth", None)
    partner_id = token.partner_id if isinstance(token, AccessToken) else None
    user = getattr(request, "_user", None)
    changes: dict[str, Any] = {
        "artifact": str(kwargs.get("path", ""))[:500],
        "range": request.headers.get("Range", "")[:100],
        "method": request.method,
    }
    if carried is not None:  # what the credential check knew: the token, never the secret
        changes.update({k: v for k, v in carried.changes.items() if k == "prefix"})
        partner_id = partner_id or carried.partner_id
    return event(
        view.refusal_event,
        actor=user if getattr(user, "is_authenticated", False) else None,
        target_type="partners.grant",
        target_id=str(kwargs.get("grant_id", ""))[:64],
        partner_id=partner_id,
        outcome=Outcome.DENIED,
        reason=str(getattr(exc, "reason", "") or code)[:64],
        changes=changes,
    )


def _denied_event(request: Request, code: str) -> AuditEvent:
    auth = getattr(request, "_auth", None)
    token = auth if isinstance(auth, AccessToken) else None
    return event(
        AuditAction.API_DENIED,
        actor=token.user if token else None,
        target=token,
        target_type="api.request",
        target_id="",
        partner_id=token.partner_id if token else None,
        outcome=Outcome.DENIED,
        reason=code[:64],
        changes={
            "prefix": token.prefix if token else "",
            "method": request.method,
            "path": request.path[:300],
        },
    )


def record_refusal(exc: BaseException, context: dict[str, Any], status: int, code: str) -> None:
    """Write the one audit event of a refused request (see the module's docstring)."""
    if status < 400 or status in _NOT_RECORDED or getattr(exc, "recorded", False):
        return
    request, view = context.get("request"), context.get("view")
    carried = getattr(exc, "evidence", None)
    if isinstance(carried, AuditEvent) and carried.pk is not None:
        return  # written where it was refused (outside any transaction)
    if request is not None and getattr(view, "refusal_event", None):
        _download_event(exc, request, view, code, carried).save(force_insert=True)
        return
    if carried is not None:
        settle(exc)
        return
    if request is not None and status in (401, 403):
        _denied_event(request, code).save(force_insert=True)
