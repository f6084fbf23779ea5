"""Errors as RFC 9457 problem details, each with a stable ``code``."""

import json
from typing import Any

from django.http import Http404, HttpResponse
from django.utils.log import log_response
from rest_framework import exceptions
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.views import exception_handler

from accessctl.codes import Code, lookup
from partners.errors import ActionError

from .errors import Problem
from .evidence import note

__all__ = ["DRF_CODES", "problem_response", "problems_exception_handler"]

PROBLEM_TYPE = "https://accessctl.invalid/problems/"
CONTENT_TYPE = "application/problem+json"

# The code of each DRF exception whose own code is generic (``tests/accessctl_wire/test_codes.py`` checks
# each one's status in the registry is DRF's).
DRF_CODES: dict[type[exceptions.APIException], Code] = {
    exceptions.NotAuthenticated: Code.NOT_AUTHENTICATED,
    exceptions.AuthenticationFailed: Code.TOKEN_INVALID,
    exceptions.ValidationError: Code.INVALID,
    exceptions.Throttled: Code.THROTTLED,
    exceptions.MethodNotAllowed: Code.METHOD_NOT_ALLOWED,
    exceptions.ParseError: Code.MALFORMED_REQUEST,
    exceptions.UnsupportedMediaType: Code.UNSUPPORTED_MEDIA_TYPE,
    exceptions.NotAcceptable: Code.NOT_ACCEPTABLE,
    exceptions.PermissionDenied: Code.FORBIDDEN,
    exceptions.NotFound: Code.NOT_FOUND,
}


_GENERIC = {Code.ERROR, Code.INVALID}


def problem_response(
    status_code: int,
    code: Code | str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> HttpResponse:
    """The problem as JSON whatever renderer the view negotiated (the schema view renders
    YAML, the docs HTML): a refusal is problem+json on every view under ``/api/``."""
    body = {
        "type": PROBLEM_TYPE + code,
        "title": code.problem_title
        if isinstance(code, Code)
        else code.replace("_", " ").capitalize(),
        "status": status_code,
        "detail": detail,
        "code": code,
        **extra,
    }
    return HttpResponse(
        json.dumps(body, cls=JSONEncoder),
        status=status_code,
        headers=headers,
        content_type=CONTENT_TYPE,
    )


def _flatten(detail: object) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


def problems_exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    """The problem+json answer. The exception is noted on the request: its evidence is
    written once the view (and any transaction of it) has ended, by the one rule of
    ``partners.api.evidence``."""
    response = _problem(exc, context)
    if response is not None:
        note(exc, context)
        if response.status_code >= 500 and "Retry-After" in response and _decided(exc):
            # A decision to answer "not yet" (a partner's copy still being written), not a
            # server error: logged as a warning, so polling clients do not page anyone.
            # (Django's own log_response, at the level django.request gives 4xx.)
            request = context["request"]
            log_response(
                "%s (%s): %s",
                response.reason_phrase,
                _code_of(exc),
                request.path,
                response=response,
                request=getattr(request, "_request", request),
                level="warning",
            )
    return response


def _decided(exc: Exception) -> bool:
    return isinstance(exc, Problem | ActionError)


def _code_of(exc: Exception) -> str:
    return str(exc.problem_code if isinstance(exc, Problem) else getattr(exc, "code", ""))


def _problem(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    if isinstance(exc, Problem):
        return problem_response(
            exc.status_code, exc.problem_code, str(exc.detail), headers=exc.headers, **exc.extra
        )
    if isinstance(exc, ActionError):
        # The status is the registry's for the code (``ActionError.status``).
        fields: dict[str, Any] = {"fields": exc.fields} if exc.fields else {}
        return problem_response(exc.status, exc.code, exc.message, **fields)
    if isinstance(exc, Http404):
        return problem_response(404, Code.NOT_FOUND, "No such object, or not yours.")
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return None  # a bug: Django's handler logs it and answers 500 without details
    code = DRF_CODES.get(type(exc), Code.ERROR)
    # DRF's own code when it is a specific registered one (``json_too_deep``, a
    # ``TokenFailed``'s): not its generic ones (``error``, ``invalid``, ``parse_error``).
    # The status stays DRF's: for every code here it is the registry's (a test checks).
    codes = exc.get_codes()
    named = lookup(codes) if isinstance(codes, str) else None
    if named is not None and named.status is not None and named not in _GENERIC:
        code = named
    extra: dict[str, Any] = {}
    if isinstance(exc, exceptions.ValidationError):
        extra["fields"] = exc.detail
    headers = {
        k: v for k, v in response.headers.items() if k in {"WWW-Authenticate", "Retry-After"}
    }
    return problem_response(
        response.status_code, code, _flatten(exc.detail), headers=headers, **extra
    )
