"""Per-request context that audit events pick up without every caller passing it."""

import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse

__all__ = ["RequestContext", "RequestContextMiddleware", "current_context"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str = ""
    client_address: str | None = None


_context: ContextVar[RequestContext] = ContextVar("accessctl_request", default=RequestContext())  # noqa: B039 (frozen)


def current_context() -> RequestContext:
    return _context.get()


class RequestContextMiddleware:
    """Give each request an id (a well-formed ``X-Request-ID`` from the proxy is kept)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = _context.set(
            RequestContext(request_id=request_id, client_address=request.META.get("REMOTE_ADDR"))
        )
        try:
            response = self.get_response(request)
        finally:
            _context.reset(token)
        response["X-Request-ID"] = request_id
        return response
