"""The API's edge: every request under ``/api/`` gets a defined answer.

Input that no view could serve is refused here, before authentication or routing reads
it, with a problem+json whose ``code`` is listed in ``EDGE_CODES`` (and in docs/api.md,
a test checks): control characters or excess length in the URL, oversized headers or
bodies, JSON nested too deep or holding text the database cannot store. Path ids are
bounded to what PostgreSQL's ``bigint`` holds by the ``id`` converter, so an id that
cannot exist is a 404 like one that does not. Whatever still goes wrong under ``/api/``
(an unmatched route, a refused method, a server error, Django's own 400 or CSRF pages)
is rewritten as problem+json by ``ApiProblemMiddleware``: never an HTML page, never a
stack trace or settings, whatever ``DEBUG`` says.
"""

import json
import logging
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.views.csrf import csrf_failure as django_csrf_failure
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

__all__ = [
    "BIGINT_MAX",
    "EDGE_CODES",
    "JSON_MAX_DEPTH",
    "ApiInputMiddleware",
    "ApiProblemMiddleware",
    "BoundedJSONParser",
    "IdConverter",
    "csrf_failure",
    "edge_codes_markdown",
    "is_api_path",
    "json_depth",
    "problem_body",
]

logger = logging.getLogger(__name__)

PROBLEM_TYPE = "https://accessctl.invalid/problems/"
CONTENT_TYPE = "application/problem+json"

# PostgreSQL's bigint: every id column (BigAutoField) and byte count here.
BIGINT_MAX = 2**63 - 1
# Bounds no honest client comes near: a file path is at most 500 characters, a token or a
# grant token well under 2 KiB, and lists take at most a cursor and a page size.
URL_PATH_MAX = 2048  # characters, decoded
QUERY_STRING_MAX = 4096  # characters, as sent
HEADER_VALUE_MAX = 8192  # bytes, one header
HEADERS_TOTAL_MAX = 32768  # bytes, every header together
JSON_MAX_DEPTH = 32  # a checkpoint registration nests 3 deep

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class EdgeCode:
    status: int
    when: str


# Codes the edge and the error rewriting answer, with their status: docs/api.md shows
# this table (a test checks it lists them all).
EDGE_CODES: Mapping[str, EdgeCode] = {
    "path_invalid": EdgeCode(400, "the URL path holds a control character (NUL included)"),
    "query_invalid": EdgeCode(
        400, "a query parameter holds a control character, or the query string is malformed"
    ),
    "malformed_request": EdgeCode(400, "the body is not valid JSON, or not UTF-8"),
    "json_too_deep": EdgeCode(400, f"the JSON body nests deeper than {JSON_MAX_DEPTH} levels"),
    "text_invalid": EdgeCode(
        400, "a JSON string holds a lone surrogate (`\\ud800`): it is not text"
    ),
    "cursor_invalid": EdgeCode(
        400, "`cursor` is not one this server gave out (cursors are signed)"
    ),
    "bad_request": EdgeCode(400, "a request the server could not read (e.g. a bad `Host`)"),
    "csrf_failed": EdgeCode(403, "a cookie-authenticated unsafe request without a CSRF token"),
    "not_found": EdgeCode(
        404,
        "no such route, no such object (or not yours), or an id no object can have "
        "(not a number, or above 2^63-1)",
    ),
    "method_not_allowed": EdgeCode(
        405, "the route does not answer this method (`Allow` lists those it does)"
    ),
    "not_acceptable": EdgeCode(406, "`Accept` excludes JSON"),
    "body_too_large": EdgeCode(
        413, "`Content-Length` above `DATA_UPLOAD_MAX_MEMORY_SIZE` (2.5 MB by default)"
    ),
    "uri_too_long": EdgeCode(
        414,
        f"a path longer than {URL_PATH_MAX} characters or a query string longer than "
        f"{QUERY_STRING_MAX}",
    ),
    "unsupported_media_type": EdgeCode(415, "a body that is not `application/json`"),
    "header_too_large": EdgeCode(
        431, f"a header longer than {HEADER_VALUE_MAX} bytes, or {HEADERS_TOTAL_MAX} in all"
    ),
    "server_error": EdgeCode(500, "a fault of the server: the detail never says more"),
}

# The code of an error response that was not problem+json already, by status.
_CODE_BY_STATUS = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
    431: "header_too_large",
}
_DETAIL = {
    "bad_request": "The request could not be read.",
    "forbidden": "Forbidden.",
    "not_found": "No such route or object.",
    "method_not_allowed": "This route does not answer that method.",
    "not_acceptable": "This API answers JSON only.",
    "body_too_large": "The body is too large.",
    "unsupported_media_type": "Send JSON.",
    "header_too_large": "A header is too large.",
    "server_error": "The server failed to answer; the failure is logged.",
}
# Headers of the original answer that still hold for the problem that replaces it.
_KEPT_HEADERS = {"allow", "x-request-id", "retry-after", "www-authenticate", "vary"}


def is_api_path(path: str) -> bool:
    return path.startswith(("/api/", "/.well-known/"))


def edge_codes_markdown() -> str:
    """The table of ``EDGE_CODES`` that docs/api.md shows (a test keeps them equal)."""
    rows = [
        f"| {edge.status} | `{code}` | {edge.when} |"
        for code, edge in sorted(EDGE_CODES.items(), key=lambda item: (item[1].status, item[0]))
    ]
    return "\n".join(["| status | code | when |", "| --- | --- | --- |", *rows])


def problem_body(status: int, code: str, detail: str) -> dict[str, Any]:
    return {
        "type": PROBLEM_TYPE + code,
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "detail": detail,
        "code": code,
    }


def _problem(
    status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    response = HttpResponse(
        json.dumps(problem_body(status, code, detail)), status=status, content_type=CONTENT_TYPE
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


class IdConverter:
    """A path id: decimal digits naming a value a ``bigint`` column can hold. Anything
    else (``abc``, ``-1``, ``99999999999999999999``) matches no route: 404 ``not_found``,
    like an id of no object, and never reaches the database."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > BIGINT_MAX:
            raise ValueError("above bigint")
        return number

    def to_url(self, value: int) -> str:
        return str(value)


def json_depth(data: bytes) -> int:
    """How deep arrays and objects nest in a JSON text, without parsing it (so without
    recursing): strings are skipped, brackets counted. Not a validator: the parser runs
    next, on a text now known to be shallow enough for it."""
    depth = deepest = 0
    for match in _JSON_TOKENS.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


def _text_ok(value: Any) -> bool:
    """Every string (and key) in a parsed JSON value encodes as UTF-8: JSON can spell a
    lone surrogate (``"\\ud800"``), which no database column can store."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with the edge's bounds: depth checked before parsing (the
    standard parser recurses, and a deep enough text is a server error), text checked
    after."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        data = stream.read() if stream is not None else b""
        if json_depth(data) > JSON_MAX_DEPTH:
            raise ParseError(
                f"The JSON body nests deeper than {JSON_MAX_DEPTH} levels.", code="json_too_deep"
            )
        try:
            value = json.loads(data.decode("utf-8"), parse_constant=_no_constants)
        except (ValueError, RecursionError) as exc:
            raise ParseError(
                "The body is not valid JSON (UTF-8, no NaN or Infinity).", code="malformed_request"
            ) from exc
        if not _text_ok(value):
            raise ParseError(
                "A string in the body holds a lone surrogate: it is not text.", code="text_invalid"
            )
        return value


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _header_bytes(request: HttpRequest) -> tuple[int, int]:
    longest = total = 0
    for key, value in request.META.items():
        if key.startswith("HTTP_") or key in {"CONTENT_TYPE", "CONTENT_LENGTH"}:
            size = len(str(value).encode("utf-8", "surrogateescape"))
            longest = max(longest, size)
            total += size + len(key)
    return longest, total


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """The edge's answer to a request no view should see, or ``None``."""
    longest, total = _header_bytes(request)
    if longest > HEADER_VALUE_MAX or total > HEADERS_TOTAL_MAX:
        return _problem(
            431,
            "header_too_large",
            f"Headers are limited to {HEADER_VALUE_MAX} bytes each, {HEADERS_TOTAL_MAX} in all.",
        )
    path = request.path
    if len(path) > URL_PATH_MAX:
        return _problem(414, "uri_too_long", f"The path is limited to {URL_PATH_MAX} characters.")
    if _CONTROL.search(path) or any(unicodedata.category(ch) == "Cs" for ch in path):
        return _problem(400, "path_invalid", "The path holds a control character.")
    query = request.META.get("QUERY_STRING", "")
    if len(query) > QUERY_STRING_MAX:
        return _problem(
            414, "uri_too_long", f"The query string is limited to {QUERY_STRING_MAX} characters."
        )
    try:
        values = [(k, v) for k, vs in request.GET.lists() for v in vs]
    except Exception:  # Django refuses too many fields (TooManyFieldsSent) and such.
        return _problem(400, "query_invalid", "The query string could not be read.")
    if any(_CONTROL.search(k) or _CONTROL.search(v) for k, v in values):
        return _problem(400, "query_invalid", "A query parameter holds a control character.")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _problem(400, "bad_request", "Content-Length is not a number.")
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is not None and length > limit:
        return _problem(413, "body_too_large", f"The body is limited to {limit} bytes.")
    return None


class ApiInputMiddleware:
    """Refuse, under ``/api/``, what no view should parse (see ``_refusal``). Runs after
    the request context is set, so a refusal carries its request id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if is_api_path(request.path_info):
            refused = _refusal(request)
            if refused is not None:
                return refused
        return self.get_response(request)


class ApiProblemMiddleware:
    """Under ``/api/``, every error answer is problem+json with a ``code``. Django's own
    pages (an unmatched route, a 400 for a bad Host, the DEBUG technical pages of a 404 or
    a 500) are replaced; the original 5xx has been logged by Django's handler already,
    and its body, which may hold a traceback and settings, is dropped. Outermost, so it
    also sees what other middleware answered."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not is_api_path(request.path_info)
            or response.get("Content-Type", "").startswith(CONTENT_TYPE)
        ):
            return response
        status = 500 if response.status_code >= 500 else response.status_code
        code = "server_error" if status == 500 else _CODE_BY_STATUS.get(status, "bad_request")
        headers = {k: v for k, v in response.items() if k.lower() in _KEPT_HEADERS}
        response.close()
        return _problem(status, code, _DETAIL[code], headers)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: problem+json under ``/api/``, Django's page elsewhere."""
    if is_api_path(request.path_info):
        return _problem(403, "csrf_failed", "CSRF verification failed.")
    return django_csrf_failure(request, reason=reason)
