"""Errors as RFC 9457 problem details, each with a stable ``code``."""

import json
from typing import Any

from django.http import Http404, HttpResponse
from rest_framework import exceptions, status
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.views import exception_handler

from partners.errors import ActionError

from .errors import Problem
from .evidence import record_refusal

__all__ = ["problem_response", "problems_exception_handler"]

PROBLEM_TYPE = "https://accessctl.invalid/problems/"
CONTENT_TYPE = "application/problem+json"

# Refusals of actions that are policy (the caller may not), not conflicts of state.
_FORBIDDEN_CODES = {
    "forbidden",
    "partner_suspended",
    "partner_terminated",
    "nda_expired",
    "jurisdiction_blocked",
    "checkpoint_pulled",
    "no_window",
    "approval_required",
    "self_approval",
    "artifact_embargoed_elsewhere",
}
# Refusals of a malformed request the serializer cannot judge alone: about the request's
# own values (400), not the state.
_BAD_REQUEST_CODES = {
    "invalid",
    "artifact_path_invalid",
    "storage_key_not_derived",
    "quota_invalid",
    "quota_too_large",
}


def problem_response(
    status_code: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> HttpResponse:
    """The problem as JSON whatever renderer the view negotiated (the schema view renders
    YAML, the docs HTML): a refusal is problem+json on every view under ``/api/``."""
    body = {
        "type": PROBLEM_TYPE + code,
        "title": code.replace("_", " ").capitalize(),
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


def _flatten(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


def problems_exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    """The problem+json answer, and the one place a refused request's evidence is written
    (``partners.api.evidence``): after any transaction of the view ended."""
    response = _problem(exc, context)
    if response is not None:
        record_refusal(exc, context, response.status_code, _code_of(response))
    return response


def _code_of(response: HttpResponse) -> str:
    try:
        return str(json.loads(response.content).get("code", ""))
    except ValueError:
        return ""


def _problem(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    if isinstance(exc, Problem):
        return problem_response(
            exc.status_code, exc.problem_code, str(exc.detail), headers=exc.headers, **exc.extra
        )
    if isinstance(exc, ActionError):
        status_code = status.HTTP_403_FORBIDDEN if exc.code in _FORBIDDEN_CODES else exc.status
        if exc.code in _BAD_REQUEST_CODES:
            status_code = status.HTTP_400_BAD_REQUEST
        fields: dict[str, Any] = {"fields": exc.fields} if exc.fields else {}
        return problem_response(status_code, exc.code, exc.message, **fields)
    if isinstance(exc, Http404):
        return problem_response(404, "not_found", "No such object, or not yours.")
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return None  # a bug: Django's handler logs it and answers 500 without details
    code = {
        exceptions.NotAuthenticated: "not_authenticated",
        exceptions.AuthenticationFailed: "token_invalid",
        exceptions.ValidationError: "invalid",
        exceptions.Throttled: "throttled",
        exceptions.MethodNotAllowed: "method_not_allowed",
        exceptions.ParseError: "malformed_request",
        exceptions.UnsupportedMediaType: "unsupported_media_type",
        exceptions.NotAcceptable: "not_acceptable",
        exceptions.PermissionDenied: "forbidden",
    }.get(type(exc), "error")
    codes = exc.get_codes()
    if isinstance(codes, str) and codes not in {
        "error",
        "invalid",
        "permission_denied",
        "parse_error",
    }:
        code = codes
    extra: dict[str, Any] = {}
    if isinstance(exc, exceptions.ValidationError):
        extra["fields"] = exc.detail
    headers = {
        k: v for k, v in response.headers.items() if k in {"WWW-Authenticate", "Retry-After"}
    }
    return problem_response(
        response.status_code, code, _flatten(exc.detail), headers=headers, **extra
    )
