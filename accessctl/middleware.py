"""Per-request context that audit events pick up without every caller passing it."""

import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from accessctl.networks import address_in_networks

if TYPE_CHECKING:  # imported by the logging filter, before the apps (and their models) load
    from django.contrib.auth.models import User

__all__ = [
    "RequestContext",
    "RequestContextMiddleware",
    "client_address",
    "current_context",
    "current_request",
    "current_user",
    "request_ids",
]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str = ""
    client_address: str | None = None
    # An id the client sent in X-Request-ID: kept for correlation with its own logs, never
    # as the request id (a client could forge one, or make two requests' ids collide).
    client_request_id: str = ""


_context: ContextVar[RequestContext] = ContextVar("accessctl_request", default=RequestContext())  # noqa: B039 (frozen)


# The request's user, read when asked (authentication runs after this middleware): for
# evidence written where no actor is passed (a form's check refusing a change).
_request: ContextVar[HttpRequest | None] = ContextVar("accessctl_request_object", default=None)


def current_context() -> RequestContext:
    return _context.get()


def current_request() -> HttpRequest | None:
    """The request being served, if any (None in a task or a command)."""
    return _request.get()


def current_user() -> "User | None":
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
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded and _from_trusted_proxy(request):
        last = forwarded.split(",")[-1].strip()
        if address_in_networks(last, ("0.0.0.0/0", "::/0")):
            return last
    return remote


def _from_trusted_proxy(request: HttpRequest) -> bool:
    proxies = settings.ACCESSCTL_TRUSTED_PROXIES
    return bool(proxies) and address_in_networks(request.META.get("REMOTE_ADDR"), proxies)


def request_ids(request: HttpRequest) -> tuple[str, str]:
    """(request id, the client's own id or ''). The request id is the server's: the one a
    trusted proxy generated (the shipped nginx sends its ``$request_id`` as
    ``X-Request-ID`` and the client's header as ``X-Client-Request-ID``), else a new one.
    An ``X-Request-ID`` from anyone else is the client's, never the request id."""
    if _from_trusted_proxy(request):
        proxied = request.headers.get("X-Request-ID", "")
        request_id = proxied if _REQUEST_ID.match(proxied) else uuid.uuid4().hex
        client = request.headers.get("X-Client-Request-ID", "")
    else:
        request_id = uuid.uuid4().hex
        client = request.headers.get("X-Request-ID", "")
    return request_id, client if _REQUEST_ID.match(client) else ""


class RequestContextMiddleware:
    """Give each request a server-made id (see ``request_ids``) and settle its client
    address once (see ``client_address``), in ``REMOTE_ADDR`` too, so every rule, rate
    limit and audit event uses the same one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Both read the hop that connected (REMOTE_ADDR), before it becomes the client's.
        request_id, client_request_id = request_ids(request)
        request.META["REMOTE_ADDR"] = client_address(request)
        # For records logged after the context below is reset (django.request's 4xx).
        request.META["ACCESSCTL_REQUEST_ID"] = request_id
        request.META["ACCESSCTL_CLIENT_REQUEST_ID"] = client_request_id
        token = _context.set(
            RequestContext(
                request_id=request_id,
                client_address=request.META.get("REMOTE_ADDR"),
                client_request_id=client_request_id,
            )
        )
        held = _request.set(request)
        try:
            response = self.get_response(request)
        finally:
            _request.reset(held)
            _context.reset(token)
        response["X-Request-ID"] = request_id
        return response
