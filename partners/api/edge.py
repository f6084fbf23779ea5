"""The API's edge: every request under ``/api/`` gets a defined answer.

Input that no view could serve is refused here, before authentication or routing reads
it, with a problem+json whose ``code`` is registered in the edge area of
``accessctl_wire.codes`` (``EDGE_CODES``; docs/api.md's table is generated from it): control characters or excess length in the URL, oversized headers or
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
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.common import CommonMiddleware as DjangoCommonMiddleware
from django.views.csrf import csrf_failure as django_csrf_failure
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from accessctl.codes import Area, Code

__all__ = [
    "BIGINT_MAX",
    "EDGE_CODES",
    "JSON_MAX_DEPTH",
    "ApiInputMiddleware",
    "ApiProblemMiddleware",
    "BoundedJSONParser",
    "CommonMiddleware",
    "IdConverter",
    "code_of",
    "csrf_failure",
    "is_api_path",
    "json_depth",
    "problem",
    "problem_body",
    "replace",
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
# The one route whose body may be large: a detection's suspect files (multipart), up to
# ACCESSCTL_DETECTION_MAX_BYTES plus the form's own bytes.
_DETECTION_UPLOAD = re.compile(r"^/api/v1/staff/releases/[^/]+/detections/?$")
_MULTIPART_OVERHEAD = 1024 * 1024
JSON_MAX_DEPTH = 32  # a checkpoint registration nests 3 deep

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


# Codes the edge and the error rewriting answer: the registry's edge area
# (``accessctl_wire.codes``), which docs/api.md's table is generated from.
EDGE_CODES: tuple[Code, ...] = tuple(code for code in Code if code.area is Area.EDGE)

# The code of an error response that was not problem+json already, by status.
_CODE_BY_STATUS = {
    400: Code.BAD_REQUEST,
    403: Code.FORBIDDEN,
    404: Code.NOT_FOUND,
    405: Code.METHOD_NOT_ALLOWED,
    406: Code.NOT_ACCEPTABLE,
    413: Code.BODY_TOO_LARGE,
    415: Code.UNSUPPORTED_MEDIA_TYPE,
    431: Code.HEADER_TOO_LARGE,
}
# Headers of the original answer that still hold for the problem that replaces it.
_KEPT_HEADERS = {"allow", "x-request-id", "retry-after", "www-authenticate", "vary"}


_HUB_RESOLVE = re.compile(r"/(?:(?:datasets|spaces)/)?[^/]+/[^/]+/resolve/")


def is_api_path(path: str) -> bool:
    """Under the API's rules (the edge, problem+json, refusal evidence, the rate): the API,
    the JWKS, the Hub-compatible file routes under ``/<ACCESSCTL_HUB_ORG>/``
    (partners.api.hub), and any path of the Hub's resolve shape
    (``/[datasets/|spaces/]{org}/{repo}/resolve/...``, another organisation's: a 404)."""
    return path.startswith(("/api/", "/.well-known/", f"/{settings.ACCESSCTL_HUB_ORG}/")) or bool(
        _HUB_RESOLVE.match(path)
    )


def _code_for_status(status: int) -> Code:
    """The code of an error answer that is not problem+json yet (``ApiProblemMiddleware``
    gives it this one)."""
    if status >= 500:
        return Code.SERVER_ERROR
    return _CODE_BY_STATUS.get(status, Code.BAD_REQUEST)


def code_of(response: HttpResponseBase) -> str:
    """The ``code`` an error answer under ``/api/`` goes out with: its problem's, or the
    one ``ApiProblemMiddleware`` will give it."""
    if response.get("Content-Type", "").startswith(CONTENT_TYPE) and not response.streaming:
        try:
            return str(json.loads(response.content).get("code", ""))  # type: ignore[attr-defined]
        except (ValueError, AttributeError):
            pass
    return _code_for_status(response.status_code)


def replace(old: HttpResponseBase, new: HttpResponseBase) -> HttpResponseBase:
    """``new`` answers instead of ``old``. ``old`` is not closed here: closing a response
    also signals the end of the request (Django closes the database connection then);
    the server closes ``new`` once, which now closes what ``old`` held too."""
    new._resource_closers.extend(old._resource_closers)  # type: ignore[attr-defined]
    return new


def problem_body(status: int, code: Code, detail: str) -> dict[str, Any]:
    return {
        "type": PROBLEM_TYPE + code,
        "title": code.problem_title,
        "status": status,
        "detail": detail,
        "code": code,
    }


def problem(
    code: Code,
    detail: str,
    headers: Mapping[str, str] | None = None,
    *,
    status: int | None = None,
) -> HttpResponse:
    """The problem answering ``code``, with the registry's status for it (or ``status``:
    a rewritten error keeps its own)."""
    status = status or code.status or 500
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


def _text_ok(value: object) -> bool:
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
                f"The JSON body nests deeper than {JSON_MAX_DEPTH} levels.", code=Code.JSON_TOO_DEEP
            )
        try:
            value = json.loads(data.decode("utf-8"), parse_constant=_no_constants)
        except (ValueError, RecursionError) as exc:
            raise ParseError(
                "The body is not valid JSON (UTF-8, no NaN or Infinity).",
                code=Code.MALFORMED_REQUEST,
            ) from exc
        if not _text_ok(value):
            raise ParseError(
                "A string in the body holds a lone surrogate: it is not text.",
                code=Code.TEXT_INVALID,
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
        return problem(
            Code.HEADER_TOO_LARGE,
            f"Headers are limited to {HEADER_VALUE_MAX} bytes each, {HEADERS_TOTAL_MAX} in all.",
        )
    path = request.path
    if len(path) > URL_PATH_MAX:
        return problem(Code.URI_TOO_LONG, f"The path is limited to {URL_PATH_MAX} characters.")
    if _CONTROL.search(path) or any(unicodedata.category(ch) == "Cs" for ch in path):
        return problem(Code.PATH_INVALID, "The path holds a control character.")
    query = request.META.get("QUERY_STRING", "")
    if len(query) > QUERY_STRING_MAX:
        return problem(
            Code.URI_TOO_LONG, f"The query string is limited to {QUERY_STRING_MAX} characters."
        )
    try:
        values = [(k, v) for k, vs in request.GET.lists() for v in vs]
    except Exception:  # Django refuses too many fields (TooManyFieldsSent) and such.
        return problem(Code.QUERY_INVALID, "The query string could not be read.")
    if any(_CONTROL.search(k) or _CONTROL.search(v) for k, v in values):
        return problem(Code.QUERY_INVALID, "A query parameter holds a control character.")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return problem(Code.BAD_REQUEST, "Content-Length is not a number.")
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if request.method == "POST" and _DETECTION_UPLOAD.match(request.path_info):
        limit = settings.ACCESSCTL_DETECTION_MAX_BYTES + _MULTIPART_OVERHEAD
    if limit is not None and length > limit:
        return problem(Code.BODY_TOO_LARGE, f"The body is limited to {limit} bytes.")
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
        if "Allow" in response and is_api_path(request.path_info):
            # OPTIONS is refused on every API route (DRF's metadata is off: settings.py),
            # so ``Allow`` (RFC 9110 section 10.2.1) does not offer it.
            allowed = (m.strip() for m in response["Allow"].split(","))
            response["Allow"] = ", ".join(m for m in allowed if m and m != "OPTIONS")
        if (
            response.status_code < 400
            or not is_api_path(request.path_info)
            or response.get("Content-Type", "").startswith(CONTENT_TYPE)
        ):
            return response
        status = 500 if response.status_code >= 500 else response.status_code
        code = _code_for_status(status)
        headers = {k: v for k, v in response.items() if k.lower() in _KEPT_HEADERS}
        return replace(response, problem(code, code.detail, headers, status=status))


class CommonMiddleware(DjangoCommonMiddleware):
    """Django's, except that under ``/api/`` a URL missing its trailing slash is never
    redirected (``APPEND_SLASH``): a redirect drops a POST's body (and Django refuses to
    make one in DEBUG, with a 500). It is a 404 ``not_found`` naming the URL with the
    slash, in every mode, and like every 404 under ``/api/`` an ``api.denied`` event."""

    def should_redirect_with_slash(self, request: HttpRequest) -> bool:
        return not is_api_path(request.path_info) and super().should_redirect_with_slash(request)

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if (
            response.status_code == 404
            and is_api_path(request.path_info)
            and super().should_redirect_with_slash(request)
        ):
            detail = f"No such route: {request.path}/ is one (with the trailing slash)."
            return replace(response, problem(Code.NOT_FOUND, detail))
        return super().process_response(request, response)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: problem+json under ``/api/``, Django's page elsewhere."""
    if is_api_path(request.path_info):
        return problem(Code.CSRF_FAILED, Code.CSRF_FAILED.detail)
    return django_csrf_failure(request, reason=reason)
