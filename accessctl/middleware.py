"""Per-request context that audit events pick up without every caller passing it."""

import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from partners.networks import address_in_networks

__all__ = [
    "RequestContext",
    "RequestContextMiddleware",
    "client_address",
    "current_context",
    "current_user",
]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str = ""
    client_address: str | None = None


_context: ContextVar[RequestContext] = ContextVar("accessctl_request", default=RequestContext())  # noqa: B039 (frozen)


# The request's user, read when asked (authentication runs after this middleware): for
# evidence written where no actor is passed (a form's check refusing a change).
_request: ContextVar[HttpRequest | None] = ContextVar("accessctl_request_object", default=None)


def current_context() -> RequestContext:
    return _context.get()


def current_user() -> object | None:
    """The authenticated user of the request being served, if any."""
    request = _request.get()
    user = getattr(request, "user", None)
    return user if getattr(user, "is_authenticated", False) else None


def client_address(request: HttpRequest) -> str | None:
    """The client's address: ``REMOTE_ADDR``, or, when the request comes from a trusted
    proxy (``ACCESSCTL_TRUSTED_PROXIES``), the address that proxy put last in
    ``X-Forwarded-For``. Addresses a client wrote into the header itself are never used:
    only the hop the trusted proxy saw."""
    remote = request.META.get("REMOTE_ADDR")
    proxies = settings.ACCESSCTL_TRUSTED_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded and address_in_networks(remote, proxies):
        last = forwarded.split(",")[-1].strip()
        if address_in_networks(last, ("0.0.0.0/0", "::/0")):
            return last
    return remote


class RequestContextMiddleware:
    """Give each request an id (a well-formed ``X-Request-ID`` from the proxy is kept) and
    settle its client address once (see ``client_address``), in ``REMOTE_ADDR`` too, so
    every rule, rate limit and audit event uses the same one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.META["REMOTE_ADDR"] = client_address(request)
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = _context.set(
            RequestContext(request_id=request_id, client_address=request.META.get("REMOTE_ADDR"))
        )
        held = _request.set(request)
        try:
            response = self.get_response(request)
        finally:
            _request.reset(held)
            _context.reset(token)
        response["X-Request-ID"] = request_id
        return response
