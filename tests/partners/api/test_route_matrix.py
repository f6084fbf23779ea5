"""Every API route x every kind of caller x every restriction, generated.

The route inventory comes from Django's URL resolver, not from a list kept by hand: a
route under ``/api/`` that no matrix here (or the partner matrix in test_api_matrix.py)
knows fails ``test_every_api_route_is_in_a_matrix``. For the staff API, the expected
answer for each role comes from the authority table (``partners.authority.RULES``) and
the role's permissions (``partners.roles.ROLES``), never from the views themselves.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from accessctl.audit.models import AuditEvent
from partners import actions
from partners.authority import RULES, Operation
from partners.models import AccessToken
from partners.roles import ROLES
from tests import factories as f
from tests.partners.api.test_api_matrix import ENDPOINTS as PARTNER_ENDPOINTS

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


def _routes(patterns: list[Any], prefix: str = "") -> list[str]:
    found = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found += _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            found.append(route)
    return found


def api_routes() -> set[str]:
    return {r for r in _routes(get_resolver().url_patterns) if r.startswith("api/v1/")}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # formatted with the world's ids
    body: Callable[[dict[str, Any]], dict[str, Any] | None]
    permission: str  # what a role needs: an Operation's permission, or a view permission


def _op(operation: Operation) -> str:
    permission = RULES[operation].permission
    assert permission is not None
    return permission


REASON = {"reason": "matrix"}
STAFF_ROUTES: dict[str, Route] = {
    "api/v1/staff/releases/<slug:slug>/checkpoints/": Route(
        "post",
        "/api/v1/staff/releases/{release}/checkpoints/",
        lambda w: {"tag": "step-9", "artifacts": [w["artifact"]]},
        _op(Operation.CHECKPOINT_REGISTER),
    ),
    "api/v1/staff/checkpoints/<id:checkpoint_id>/pull": Route(
        "post",
        "/api/v1/staff/checkpoints/{checkpoint}/pull",
        lambda w: REASON,
        _op(Operation.CHECKPOINT_PULL),
    ),
    "api/v1/staff/windows/": Route(
        "post",
        "/api/v1/staff/windows/",
        lambda w: {
            "release": w["release"].slug,
            "partner": w["other"].slug,
            "opens_at": timezone.now().isoformat(),
            "closes_at": (timezone.now() + 9 * DAY).isoformat(),
        },
        _op(Operation.WINDOW_CREATE),
    ),
    "api/v1/staff/windows/<id:window_id>": Route(
        "put",
        "/api/v1/staff/windows/{window}",
        lambda w: {
            "release": w["release"].slug,
            "partner": w["partner"].slug,
            "opens_at": (timezone.now() - DAY).isoformat(),
            "closes_at": (timezone.now() + 19 * DAY).isoformat(),
        },
        _op(Operation.WINDOW_CHANGE),
    ),
    "api/v1/staff/grants/": Route(
        "post",
        "/api/v1/staff/grants/",
        lambda w: {"partner": w["other"].slug, "checkpoint": w["checkpoint"].pk, "quota_bytes": 10},
        _op(Operation.GRANT_ISSUE),
    ),
    "api/v1/staff/grants/<id:grant_id>/revoke": Route(
        "post",
        "/api/v1/staff/grants/{grant}/revoke",
        lambda w: REASON,
        _op(Operation.GRANT_REVOKE),
    ),
    "api/v1/staff/grant-requests/<id:request_id>/approve": Route(
        "post",
        "/api/v1/staff/grant-requests/{request}/approve",
        lambda w: None,
        _op(Operation.GRANT_REQUEST_DECIDE),
    ),
    "api/v1/staff/grant-requests/<id:request_id>/reject": Route(
        "post",
        "/api/v1/staff/grant-requests/{request}/reject",
        lambda w: REASON,
        _op(Operation.GRANT_REQUEST_DECIDE),
    ),
    "api/v1/staff/partners/<slug:slug>/suspend": Route(
        "post",
        "/api/v1/staff/partners/{partner}/suspend",
        lambda w: REASON,
        _op(Operation.PARTNER_SUSPEND),
    ),
    "api/v1/staff/partners/<slug:slug>/reinstate": Route(
        "post",
        "/api/v1/staff/partners/{suspended}/reinstate",
        lambda w: REASON,
        _op(Operation.PARTNER_REINSTATE),
    ),
    "api/v1/staff/releases/<slug:slug>/withdraw": Route(
        "post",
        "/api/v1/staff/releases/{release}/withdraw",
        lambda w: REASON,
        _op(Operation.RELEASE_WITHDRAW),
    ),
    "api/v1/staff/revocations/<id:revocation_id>": Route(
        "get",
        "/api/v1/staff/revocations/{revocation}",
        lambda w: None,
        "partners.view_revocation",
    ),
    "api/v1/staff/releases/<slug:slug>/detections": Route(
        "post",
        "/api/v1/staff/releases/{release}/detections",
        lambda w: {"reason": "matrix"},
        _op(Operation.DETECTION_RUN),
    ),
    "api/v1/staff/detections/": Route(
        "get", "/api/v1/staff/detections/", lambda w: None, "partners.view_detection"
    ),
    "api/v1/staff/detections/<id:detection_id>": Route(
        "get",
        "/api/v1/staff/detections/{detection}",
        lambda w: None,
        "partners.view_detection",
    ),
    "api/v1/staff/audit-exports/": Route(
        "post", "/api/v1/staff/audit-exports/", lambda w: {}, _op(Operation.AUDIT_EXPORT)
    ),
    "api/v1/staff/audit-exports/<id:export_id>": Route(
        "get",
        "/api/v1/staff/audit-exports/{export}",
        lambda w: None,
        _op(Operation.AUDIT_EXPORT),
    ),
    "api/v1/staff/audit-exports/<id:export_id>/files/<str:kind>": Route(
        "get",
        "/api/v1/staff/audit-exports/{export}/files/jsonl",
        lambda w: None,
        _op(Operation.AUDIT_EXPORT),
    ),
}

# Partner routes are the partner matrix's (test_api_matrix.ENDPOINTS), by route.
PARTNER_ROUTES = {
    "api/v1/me": "me",
    "api/v1/releases/": "releases",
    "api/v1/releases/<slug:slug>/checkpoints/": "checkpoints",
    "api/v1/checkpoints/<id:checkpoint_id>/manifest": "manifest",
    "api/v1/grants/": "grants",
    "api/v1/grants/<id:grant_id>": "grant",
    "api/v1/grants/<id:grant_id>/files/<path:path>": "file",
    "api/v1/grants/<id:grant_id>/authorizations": "authorizations",
    "api/v1/grant-requests/<id:request_id>": "grant-request",
}


# Routes with a caller matrix of their own: route -> that test, which must exist.
OWN_MATRIX = {"api/v1/tokens/rotate": "test_refused_callers_cannot_rotate"}


def test_every_api_route_is_in_a_matrix():
    from tests.partners.api import test_api_matrix

    known = set(STAFF_ROUTES) | set(PARTNER_ROUTES) | set(OWN_MATRIX)
    assert api_routes() == known, (
        "a route under /api/v1/ is missing from the caller matrices (or a matrix names a "
        "route that no longer exists): add it to STAFF_ROUTES or to test_api_matrix.ENDPOINTS"
    )
    assert set(PARTNER_ROUTES.values()) <= set(PARTNER_ENDPOINTS)
    assert all(callable(getattr(test_api_matrix, name, None)) for name in OWN_MATRIX.values())


def _fingerprint() -> dict[str, tuple[int, int]]:
    """Row count and highest id of every domain table, plus each row's status-like
    columns: a refused call must leave all of it as it was. The audit trail is left out:
    a refusal is supposed to add to it."""
    state: dict[str, Any] = {}
    for model in apps.get_app_config("partners").get_models():
        rows = model._default_manager.order_by("pk")
        fields = [
            fl.attname
            for fl in model._meta.concrete_fields
            if fl.attname not in {"last_used_at"}  # a token's use is not a change
        ]
        state[model._meta.label] = list(rows.values_list(*fields))
    return state


def _last_event() -> int:
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def assert_one_forbidden_event(since: int, route: "Route") -> None:
    """A refusal for lack of permission is exactly one ``<domain>.refused`` event, reason
    ``forbidden``, naming the operation (one whose rule needs the route's permission) and
    what the URL asked for."""
    new = list(AuditEvent.objects.filter(pk__gt=since).exclude(action="token.used"))
    assert len(new) == 1, [(e.action, e.reason) for e in new]
    (refused,) = new
    assert refused.action.endswith(".refused"), refused.action
    assert refused.reason == "forbidden"
    operations = {str(op) for op, rule in RULES.items() if rule.permission == route.permission}
    if operations:
        assert refused.changes.get("operation") in operations, refused.changes
    assert refused.target_type and refused.target_label


def _role_may(role: str, permission: str) -> bool:
    app_label, codename = permission.split(".")
    return (app_label, codename) in ROLES[role]


def _a_detection() -> Any:
    """A detection of a fingerprinted release whose partner holds a key."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.partners.detection_world import keyed_release
    from tests.partners.test_detections import safetensors_bytes

    return actions.request_detection(
        actor=f.superuser(),
        release=keyed_release("v5", f.partner("keyed-npu")),
        files=[SimpleUploadedFile("leak.safetensors", safetensors_bytes())],
        reason="matrix",
    )


@pytest.fixture
def world(settings):
    partner = f.partner("aurora-gpu")
    other = f.partner("tessel-accel", jurisdiction="DE")
    suspended = f.partner("halted-npu")
    actions.suspend_partner(actor=None, partner=suspended, reason="matrix")
    release = f.release("v3", public_in=-DAY)
    checkpoint = f.stored_checkpoint(release, {"w.bin": b"weights"})
    window = f.window(release, partner)
    f.window(release, other)
    grant = f.grant(checkpoint, partner)
    embargoed = f.release("v9", public_in=30 * DAY)
    early = f.stored_checkpoint(embargoed, {"e.bin": b"early"})
    f.window(embargoed, partner)
    f.window(embargoed, other)
    request = actions.request_grant(
        actor=f.partner_user(partner), partner=partner, checkpoint=early, quota_bytes=10
    )
    revocation = actions.revoke_grant(
        actor=None, grant=f.grant(early, other, quota_bytes=10), reason="x"
    )
    from accessctl.audit.exports import request_export

    export = request_export(actor=f.staff("Compliance"), filters={})
    detection = _a_detection()
    spec = f.artifact_spec("w.bin", b"weights")
    return {
        "partner": partner,
        "other": other,
        "release": release,
        "checkpoint": checkpoint,
        "artifact": {"path": spec.path, "size": spec.size, "sha256": spec.sha256},
        "ids": {
            "release": release.slug,
            "checkpoint": checkpoint.pk,
            "window": window.pk,
            "grant": grant.pk,
            "request": request.pk,
            "partner": partner.slug,
            "suspended": suspended.slug,
            "revocation": revocation.revocation_id,
            "export": export.pk,
            "detection": detection.pk,
        },
    }


def _call(world: dict[str, Any], route: Route, secret: str | None, **extra: Any) -> Any:
    client = APIClient()
    if secret:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}", **extra)
    elif extra:
        client.credentials(**extra)
    path = route.path.format(**world["ids"])
    return getattr(client, route.method)(path, route.body(world), format="json")


CALLER_ROLES = [*ROLES, "no role"]


@pytest.mark.parametrize("route_name", sorted(STAFF_ROUTES))
@pytest.mark.parametrize("role", CALLER_ROLES)
def test_staff_routes_answer_each_role_by_the_authority_table(world, route_name, role):
    route = STAFF_ROUTES[route_name]
    user = f.staff(None if role == "no role" else role)
    secret = f.token(user, scopes=["staff"])
    allowed = role != "no role" and _role_may(role, route.permission)
    before = _fingerprint()
    since = _last_event()
    response = _call(world, route, secret)
    assert response["Content-Type"].startswith(
        "application/problem+json" if response.status_code >= 400 else "application/"
    )
    if allowed:  # the state may still refuse (409, 404), the authority may not
        assert response.status_code not in (401, 403), response.content
    else:
        assert response.status_code == 403, response.content
        assert response.json()["code"] == "forbidden"
        assert _fingerprint() == before
        assert_one_forbidden_event(since, route)


def _refused_staff_token(kind: str, world: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """A staff token that must be refused, and the request headers to send it with."""
    user = f.superuser()
    if kind == "address not allowed":
        return f.token(user, scopes=["staff"], allowed_networks=["198.51.100.0/24"]), {}
    secret = f.token(user, scopes=["staff"])
    token = AccessToken.objects.get(prefix=secret[:12])
    if kind == "expired":
        past = timezone.now() - DAY
        AccessToken.objects.filter(pk=token.pk).update(created_at=past - DAY, expires_at=past)
    elif kind == "revoked":
        actions.revoke_token(actor=None, token=token, reason="leak")
    elif kind == "user deactivated":
        type(user).objects.filter(pk=user.pk).update(is_active=False)
    elif kind == "no longer staff":
        type(user).objects.filter(pk=user.pk).update(is_staff=False)
    elif kind == "role removed":
        type(user).objects.filter(pk=user.pk).update(is_superuser=False)
        Group.objects.get(name="Security officer").user_set.remove(user)
    return secret, {}


STAFF_REFUSALS = {
    "anonymous": (None, 401, "not_authenticated"),
    "partner token": ("partner", 403, "staff_token_required"),
    "address not allowed": ("token", 403, "address_not_allowed"),
    "expired": ("token", 401, "token_expired"),
    "revoked": ("token", 401, "token_revoked"),
    "user deactivated": ("token", 401, "token_invalid"),
    "no longer staff": ("token", 403, "staff_access_ended"),
    "role removed": ("token", 403, "forbidden"),
}


@pytest.mark.parametrize("route_name", sorted(STAFF_ROUTES))
@pytest.mark.parametrize("kind", sorted(STAFF_REFUSALS))
def test_staff_routes_refuse_every_restricted_caller(world, route_name, kind):
    route = STAFF_ROUTES[route_name]
    source, status, code = STAFF_REFUSALS[kind]
    if source is None:
        secret = None
    elif source == "partner":
        secret = f.token(f.partner_user(world["partner"]))
    else:
        secret, _ = _refused_staff_token(kind, world)
    if kind == "role removed" and route.permission.startswith("partners.view_"):
        status, code = 403, "forbidden"
    before = _fingerprint()
    since = _last_event()
    response = _call(world, route, secret)
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert _fingerprint() == before
    if code == "forbidden":
        assert_one_forbidden_event(since, route)


def _concrete(route: str) -> str:
    """A URL of ``route`` with every converter filled in (an id, a name)."""
    return "/" + re.sub(
        r"<(?:(\w+):)?\w+>", lambda m: "1" if m.group(1) in ("int", "id") else "x", route
    ).replace("^", "").replace("$", "")


@pytest.mark.parametrize("route", sorted(api_routes()))
def test_allow_offers_only_methods_the_route_does_not_refuse_as_not_allowed(route):
    """RFC 9110 section 10.2.1: ``Allow`` lists the methods the route supports. OPTIONS is
    refused (405 problem+json) on every API route, so ``Allow`` never offers it, and every
    method it offers is answered by the route (a 4xx for the made-up ids and empty
    bodies, never 405)."""
    client = APIClient()
    staff = route.startswith("api/v1/staff/")
    caller = f.superuser() if staff else f.partner_user(f.partner())
    secret = f.token(caller, scopes=["staff"]) if staff else f.token(caller)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    url = _concrete(route)
    refused = client.options(url)
    assert refused.status_code == 405, (url, refused.status_code)
    assert refused["Content-Type"] == "application/problem+json"
    offered = [m.strip() for m in refused["Allow"].split(",")]
    assert "OPTIONS" not in offered and offered, (url, offered)
    for method in offered:
        answer = client.generic(method, url)
        assert answer.status_code != 405, (url, method)
