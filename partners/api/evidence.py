"""The one rule of refusal evidence under ``/api/``: every refused request writes exactly
one audit event naming what was asked for and the code it was answered with.

A refusal is any 4xx answer under ``/api/`` (and ``/.well-known/``), whoever gave it: the
edge (``partners.api.edge``: a control character, an over-long URL or header, an
oversized body), Django's resolver (no such route, an id no object can have), DRF (a
credential, a caller rule, a scope, a method, a body that does not validate), a view or an
action. ``RefusalEvidenceMiddleware`` sees every answer after all of them, outside any
transaction of the view, and calls ``record_refusal`` once; the API's exception handler
only notes the exception it answered (``note``), so this is the one place API refusal
evidence is written:

- a download route (a view with ``refusal_event``) writes ``download.denied``, whichever
  rule refused it, naming the grant, the file and the range as far as the URL tells them,
  the token's prefix, and the rule (a hidden refusal's own reason);
- a refused action carries its ``<domain>.refused`` event (``partners.refusals``): it is
  written, unless the action wrote it already;
- a refused credential carries its ``token.rejected`` event: it is written;
- a refusal for lack of permission before any action ran (``ActionForbidden``, DRF's
  ``PermissionDenied``) is the refused domain's ``<domain>.refused``, reason ``forbidden``,
  with the ``operation`` when there is one (``partners.forbidden``);
- anything else is ``api.denied``, naming what was asked for: the first object the URL
  names (``grants/12`` is grant 12, ``releases/v4`` release v4), else the object a JSON
  body names (``{"checkpoint": 7}`` asks for checkpoint 7), else the route;
- a download the decision refused already wrote its ``download.denied`` (``recorded``).

Every refusal also counts toward the caller's API rate (``partners.api.ratelimit``), once:
past the rate the answer is 429 ``throttled``, and 429s write at most one event per
period of the rate per token or address, so a flood writes a bounded number of rows.
"""

import dataclasses
import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.urls import URLPattern, URLResolver, get_resolver, get_urlconf
from django.urls.resolvers import RoutePattern
from rest_framework import exceptions
from rest_framework.request import Request

from accessctl.audit.events import AuditAction, event
from accessctl.audit.models import AuditEvent, Outcome
from accessctl.codes import Code
from partners import tokens
from partners.errors import ActionForbidden
from partners.forbidden import domain_of, forbidden_event
from partners.models import AccessToken
from partners.refusals import settle

from . import ratelimit
from .edge import JSON_MAX_DEPTH, code_of, is_api_path, json_depth, problem, replace

__all__ = ["RefusalEvidenceMiddleware", "note", "record_refusal", "requested_target"]

_NOTED = "accessctl_refusal"

# What a URL or a body names, by the collection it is in (the path segment before an id
# or slug; a body field of the same name): the audit target type, the label, and the
# key in ``changes``. Most specific first, as ``partners.refusals`` orders an action's.
_COLLECTIONS: dict[str, tuple[str, str, str]] = {
    "grants": ("partners.grant", "grant #{}", "grant"),
    "grant-requests": ("partners.grantrequest", "request #{}", "request"),
    "windows": ("partners.embargowindow", "window #{}", "window"),
    "checkpoints": ("partners.checkpoint", "checkpoint #{}", "checkpoint"),
    "releases": ("partners.release", "release {}", "release"),
    "partners": ("partners.partner", "partner {}", "partner"),
    "revocations": ("partners.revocation", "revocation #{}", "revocation"),
    "audit-exports": ("audit.auditexport", "export #{}", "export"),
    "detections": ("partners.detection", "detection #{}", "detection"),
    "files": ("partners.artifact", "file {}", "file"),
}
_BODY_FIELDS = {key: collection for collection, (_, _, key) in _COLLECTIONS.items()}
ROUTE_TARGET = "api.route"  # nothing more specific was asked for: the route (or the path)
_BODY_MAX = 64 * 1024  # a body read for its target only if it is at most this long


@dataclass(frozen=True, slots=True)
class _Noted:
    exc: BaseException
    request: Request | None


@dataclass(frozen=True, slots=True)
class Target:
    """What a request asked for, as far as its URL (and JSON body) tell."""

    type: str
    id: str
    label: str
    named: dict[str, str]  # every object the URL names: {"grant": "12", "file": "a.bin"}
    download: AuditAction | None  # the route's ``refusal_event`` (downloads)


def note(exc: BaseException, context: Mapping[str, Any]) -> None:
    """Keep the exception the API's handler answered on the request, for
    ``record_refusal``: the handler runs inside the view, the evidence is written after."""
    drf = context.get("request")
    raw = getattr(drf, "_request", None)
    if isinstance(raw, HttpRequest):
        setattr(raw, _NOTED, _Noted(exc, drf))


def _text(value: Any, limit: int) -> str:
    """``value`` as text a database column (and jsonb) can hold: control characters and
    lone surrogates escaped, cut to ``limit``."""
    text = str(value)
    if not text.isprintable():
        text = "".join(
            ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
        )
    return text[:limit]


# -- what was asked for --------------------------------------------------------------------

_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


@dataclass(frozen=True, slots=True)
class _Shape:
    """A route under ``/api/`` matched loosely: any text in place of each parameter (an
    id that is not digits, a path with a NUL), so a request refused before (or instead
    of) routing is still known by what it named."""

    regex: re.Pattern[str]
    route: str
    named: tuple[tuple[str, str], ...]  # (URL keyword, collection)
    view: Any


def _routes(patterns: list[Any], prefix: str = "") -> list[tuple[str, Any]]:
    found = []
    for pattern in patterns:
        if not isinstance(pattern.pattern, RoutePattern):
            continue  # a regex route: none under /api/
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found += _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            found.append((route, pattern.callback))
    return found


@functools.lru_cache(maxsize=8)
def _shapes(urlconf: str) -> tuple[_Shape, ...]:
    shapes = []
    for route, callback in _routes(get_resolver(urlconf).url_patterns):
        if not is_api_path("/" + route):
            continue
        parts, named, position = [], [], 0
        view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        # A view whose URL is not ours to shape (the Hub's) names its collections itself.
        collections = getattr(view, "url_collections", {})
        for param in _PARAM.finditer(route):
            literal = route[position : param.start()]
            anything = ".*" if param["converter"] == "path" else "[^/]*"
            parts += [re.escape(literal), f"(?P<{param['name']}>{anything})"]
            collection = literal.strip("/").rsplit("/", 1)[-1]
            named.append((param["name"], collections.get(param["name"], collection)))
            position = param.end()
        parts.append(re.escape(route[position:]))
        shapes.append(_Shape(re.compile("".join(parts), re.DOTALL), route, tuple(named), view))
    return tuple(shapes)


def _body(request: HttpRequest, drf: Request | None) -> Mapping[str, Any]:
    """The JSON body: as the view parsed it, or read here when a refusal came before the
    view read it (a caller rule refusing ``POST /grants/``), bounded like the parser."""
    parsed = getattr(drf, "_full_data", None)
    if isinstance(parsed, Mapping):
        return parsed
    if request.method not in ("POST", "PUT", "PATCH") or "json" not in (request.content_type or ""):
        return {}
    try:
        raw = request.body
    except Exception:  # read by a view already, or too large (the edge answered that)
        return {}
    if len(raw) > _BODY_MAX or json_depth(raw) > JSON_MAX_DEPTH:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _route_of(path: str) -> tuple[_Shape, re.Match[str]] | None:
    urlconf = str(get_urlconf() or settings.ROOT_URLCONF)
    for shape in _shapes(urlconf):
        match = shape.regex.fullmatch(path.lstrip("/"))
        if match is not None:
            return shape, match
    return None


def requested_target(request: HttpRequest, drf: Request | None = None) -> Target:
    """What ``request`` asked for (see the module's docstring)."""
    path = request.path_info
    routed = _route_of(path)
    shape = routed[0] if routed else None
    download = getattr(shape.view, "refusal_event", None) if shape else None
    found: list[tuple[str, str]] = []  # (collection, value)
    if routed is not None:
        found = [
            (collection, routed[1][name])
            for name, collection in routed[0].named
            if collection in _COLLECTIONS
        ]
    if not found:
        body = _body(request, drf)
        found = [
            (collection, body[key])
            for key, collection in _BODY_FIELDS.items()
            if isinstance(body.get(key), (int, str)) and not isinstance(body.get(key), bool)
        ][:1]
    named = {_COLLECTIONS[c][2]: _text(value, 500) for c, value in found}
    if found:
        kind, value = found[0]
        label = ", ".join(_COLLECTIONS[c][1].format(_text(v, 200)) for c, v in found)
        return Target(_COLLECTIONS[kind][0], _text(value, 64), label[:300], named, download)
    route = shape.route if shape else path
    return Target(
        ROUTE_TARGET, _text(route, 64), _text(f"{request.method} {path}", 300), {}, download
    )


# -- the rule ------------------------------------------------------------------------------


def _token(drf: Request | None) -> AccessToken | None:
    auth = getattr(drf, "_auth", None)
    return auth if isinstance(auth, AccessToken) else None


def _presented_prefix(request: HttpRequest) -> str:
    """The public prefix of a well-formed token in ``Authorization``, never the secret."""
    _, _, presented = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    presented = presented.strip()
    return presented[:12] if tokens.is_well_formed(presented) else ""


def _refusal_event(
    request: HttpRequest,
    drf: Request | None,
    exc: BaseException | None,
    code: str,
) -> AuditEvent | None:
    """The unsaved event of this refusal, or ``None`` when it is written already."""
    if exc is not None and getattr(exc, "recorded", False):
        return None  # the download decision wrote its own
    carried = getattr(exc, "evidence", None)
    if isinstance(carried, AuditEvent) and carried.pk is not None:
        return None  # an action's refusal, written where it was refused
    target = requested_target(request, drf)
    if (decided := getattr(exc, "decided_target", None)) is not None:
        kind, ident, label = decided
        target = dataclasses.replace(target, type=kind, id=ident, label=label)
    if isinstance(carried, AuditEvent) and target.download is None:
        return carried  # an action's or a credential's, named by it
    token = _token(drf)
    prefix = token.prefix if token else _presented_prefix(request)
    actor = token.user if token else getattr(carried, "actor", None)
    partner_id = token.partner_id if token else getattr(carried, "partner_id", None)
    changes: dict[str, Any]
    if target.download is not None:
        changes = {
            "artifact": target.named.get("file", ""),
            "range": _text(request.headers.get("Range", ""), 100),
        }
    else:
        changes = {**target.named, "path": _text(request.path, 300)}
    changes.update({"method": _text(request.method, 16), "prefix": prefix})
    forbidden = isinstance(exc, ActionForbidden | exceptions.PermissionDenied)
    operation = getattr(exc, "operation", None)
    refused = domain_of(operation, target.type) if forbidden else None
    if refused is not None and target.download is None:
        # Refused for lack of permission before any action ran (the staff API's check of
        # the token owner's operation): the refused domain's own event (partners.forbidden).
        return forbidden_event(
            refused,
            actor=actor,
            operation=operation,
            target_type=target.type,
            target_id=target.id,
            target_label=target.label,
            partner_id=partner_id,
            changes={**changes, "detail": _text(getattr(exc, "message", "") or exc, 300)},
        )
    return event(
        target.download or AuditAction.API_DENIED,
        actor=actor,
        target_type=target.type,
        target_id=target.id,
        target_label=target.label,
        partner_id=partner_id,
        outcome=Outcome.DENIED,
        reason=_text(getattr(exc, "reason", "") or code, 64),
        changes=changes,
    )


def _throttled(wait: float) -> HttpResponseBase:
    seconds = max(1, math.ceil(wait))
    return problem(
        Code.THROTTLED,
        f"Request was throttled. Expected available in {seconds} seconds.",
        {"Retry-After": str(seconds)},
    )


def record_refusal(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """Count the refusal ``response`` toward the caller's rate and write its one event
    (see the module's docstring); the answer, or 429 when the caller is past its rate."""
    noted: _Noted | None = getattr(request, _NOTED, None)
    exc, drf = (noted.exc, noted.request) if noted else (None, None)
    token = _token(drf)
    who = ratelimit.ident(token.pk if token else None, request.META.get("REMOTE_ADDR"))
    if response.status_code != 429 and not ratelimit.counted(request):
        allowed, wait = ratelimit.count(request, who)
        if not allowed:  # past the rate: refused as such, with no event of its own
            response, exc = replace(response, _throttled(wait)), None
    if response.status_code == 429:
        if not ratelimit.first_in_period(who):
            return response  # one event a period, not one a request
        exc = None
    built = _refusal_event(request, drf, exc, code_of(response))
    if built is not None:
        if exc is not None and built is getattr(exc, "evidence", None):
            settle(exc)
        else:
            built.save(force_insert=True)
    return response


class RefusalEvidenceMiddleware:
    """Under ``/api/``, every 4xx answer goes through ``record_refusal``. Placed right
    inside the request context (the event carries the request id and client address) and
    outside the edge (its refusals are evidence too)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if 400 <= response.status_code < 500 and is_api_path(request.path_info):
            response = record_refusal(request, response)
        return response
