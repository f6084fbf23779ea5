"""Every refusal, at every entry point, writes exactly one audit event naming its target
and its reason code (issue #12). Action refusals are recorded after their rollback;
downloads are ``download.denied`` whatever rule refused them, the edge's included; every
other 4xx under /api/ is one ``api.denied`` (or the refused action's event) naming what was
asked for. The generated cases below (every route x every kind of refused caller) and the
edge's matrix (tests/partners/api/test_edge.py: every route x every malformed input) make a new
route, or a new way to refuse, that leaves no evidence fail."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accessctl.audit.events import AuditAction
from accessctl.audit.models import AuditEvent
from partners import actions
from partners.errors import ActionError
from partners.models import Release
from tests import factories as f
from tests.accessctl.test_portal import portal_client
from tests.evidence import last_event_id, the_refusal_since
from tests.partners.api.test_edge import ROUTES, methods_of, params, url

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)
SHARD = b"x" * 5000


def test_every_public_action_records_its_refusals():
    """The wrapper is applied to every public action, from one table: a new action not in
    ``REFUSAL_EVENTS`` fails at import, one not wrapped fails here."""
    public = {name for name in actions.__all__ if name[0].islower()}
    assert set(actions.REFUSAL_EVENTS) == public
    for name in public:
        assert getattr(actions, name).refused_event == actions.REFUSAL_EVENTS[name], name
    assert all(str(e).endswith((".refused", ".denied")) for e in actions.REFUSAL_EVENTS.values())


def _staff(role):
    user = f.staff(role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {f.token(user, scopes=['staff'])}")
    return client, user


@pytest.fixture
def blocked():
    """A launched release whose export policy excludes the partner's country."""
    partner = f.partner("volga", jurisdiction="RU")
    release = f.release("v4", public_in=-DAY, policy="deny", policy_jurisdictions=["RU"])
    return partner, release, f.checkpoint(release)


def test_refused_window_over_the_staff_api_is_evidence(blocked):
    partner, release, _ = blocked
    client, manager = _staff("Release manager")
    now, before = timezone.now(), last_event_id()
    response = client.post(
        "/api/v1/staff/windows/",
        {
            "release": release.slug,
            "partner": partner.slug,
            "opens_at": now.isoformat(),
            "closes_at": (now + 9 * DAY).isoformat(),
        },
        format="json",
    )
    assert response.status_code == 403 and response.json()["code"] == "jurisdiction_blocked"
    refusal = the_refusal_since(before, "jurisdiction_blocked", "window.refused")
    assert refusal.actor == manager and refusal.partner_id == partner.pk
    assert (refusal.target_type, refusal.target_id) == ("partners.release", str(release.pk))


def test_refused_staff_grant_issue_over_the_api_is_evidence(blocked):
    partner, _release, checkpoint = blocked
    client, manager = _staff("Release manager")
    before = last_event_id()
    response = client.post(
        "/api/v1/staff/grants/",
        {"partner": partner.slug, "checkpoint": checkpoint.pk, "quota_bytes": 100},
        format="json",
    )
    assert response.status_code in (403, 404, 409), response.content
    code = response.json()["code"]
    refusal = the_refusal_since(before, code, "grant.refused")
    assert refusal.actor == manager and refusal.partner_id == partner.pk
    assert refusal.changes["checkpoint"] == str(checkpoint.pk)


def test_refused_grant_request_of_a_partner_is_evidence():
    partner = f.partner("aurora")
    release = f.release("v5", public_in=-DAY)
    checkpoint = f.checkpoint(release)  # no window for this partner
    engineer = f.partner_user(partner)
    before = last_event_id()
    with pytest.raises(ActionError) as refused:
        actions.request_grant(actor=engineer, partner=partner, checkpoint=checkpoint, quota_bytes=1)
    refusal = the_refusal_since(before, refused.value.code, "grant.refused")
    assert refusal.actor == engineer and refusal.partner_id == partner.pk
    assert refusal.target_type == "partners.checkpoint"


def test_refused_grant_issue_in_the_portal_form_is_evidence(client, blocked):
    partner, _release, checkpoint = blocked
    manager = f.staff("Release manager")
    signed_in = portal_client(client, manager)
    before = last_event_id()
    response = signed_in.post(
        reverse("admin:partners_grant_add"),
        {"partner": partner.pk, "checkpoint": checkpoint.pk, "quota_bytes": 100},
    )
    assert response.status_code == 200  # the form again, with the refusal
    refusal = the_refusal_since(before, "jurisdiction_blocked", "grant.refused")
    assert refusal.actor == manager and refusal.partner_id == partner.pk


def test_refused_admin_action_is_evidence(client):
    """A portal action refused for one object (approving a request already decided)."""
    partner = f.partner("aurora")
    release = f.release("v6", public_in=30 * DAY)
    f.window(release, partner)
    request = actions.request_grant(
        actor=f.partner_user(partner), partner=partner, checkpoint=f.checkpoint(release)
    )
    actions.reject_grant_request(actor=None, request=request, reason="no")
    officer = f.superuser()
    before = last_event_id()
    portal_client(client, officer).post(
        reverse("admin:partners_grantrequest_changelist"),
        {"action": "approve", "_selected_action": [request.pk]},
    )
    refusal = the_refusal_since(before, "request_decided", "grant_request.refused")
    assert refusal.target_id == str(request.pk) and refusal.actor == officer


def test_unknown_claim_code_is_evidence(client):
    before = last_event_id()
    response = client.post("/tokens/claim", {"code": "acxc_" + "x" * 40})
    assert response.status_code == 400
    refusal = the_refusal_since(before, "invitation_invalid", "token.refused")
    assert refusal.target_type == "partners.accesstoken"
    assert "x" * 10 not in str(refusal.changes)  # the presented code is never recorded


# -- downloads: every rule that refuses one is one download.denied ------------------------


@pytest.fixture
def dl():
    partner = f.partner("aurora-gpu", jurisdiction="US")
    release = f.release("v7", public_in=-DAY)
    checkpoint = f.stored_checkpoint(release, {"shard.bin": SHARD})
    f.window(release, partner)
    grant = f.grant(checkpoint, partner, quota_bytes=10 * len(SHARD))
    user = f.partner_user(partner)
    secret = f.token(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    token = client.get(f"/api/v1/grants/{grant.pk}").json()["token"]
    return {"partner": partner, "grant": grant, "user": user, "secret": secret, "token": token}


def _suspend(w):
    actions.suspend_partner(actor=None, partner=w["partner"], reason="incident")


def _revoke_token(w):
    from partners.models import AccessToken

    token = AccessToken.objects.get(prefix=w["secret"][:12])
    actions.revoke_token(actor=None, token=token, reason="leaked")


def _revoke_grant(w):
    actions.revoke_grant(actor=None, grant=w["grant"], reason="r")


# name -> (prepare, path, extra headers, query, expected status, reason)
DOWNLOAD_REFUSALS = {
    "token revoked": (_revoke_token, "shard.bin", {}, "", 401, "token_revoked"),
    "partner suspended": (_suspend, "shard.bin", {}, "", 403, "partner_suspended"),
    "grant revoked": (_revoke_grant, "shard.bin", {}, "", 403, "grant_revoked"),
    "no such file": (None, "nope.bin", {}, "", 404, "file_not_found"),
    "range outside the file": (
        None,
        "shard.bin",
        {"HTTP_RANGE": "bytes=99999-"},
        "",
        416,
        "range_not_satisfiable",
    ),
    "no grant token": (
        None,
        "shard.bin",
        {"HTTP_X_GRANT_TOKEN": ""},
        "",
        403,
        "grant_token_missing",
    ),
    "grant token in the URL": (
        None,
        "shard.bin",
        {},
        "?grant_token=T",
        400,
        "grant_token_in_query",
    ),
}


@pytest.mark.parametrize("name", sorted(DOWNLOAD_REFUSALS))
def test_a_refused_download_is_one_download_denied_naming_grant_file_and_range(dl, name):
    prepare, path, headers, query, status, reason = DOWNLOAD_REFUSALS[name]
    if prepare:
        prepare(dl)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {dl['secret']}")
    headers = {"HTTP_X_GRANT_TOKEN": dl["token"], "HTTP_RANGE": "bytes=0-99", **headers}
    query = query.replace("T", dl["token"])
    before = last_event_id()
    response = client.get(f"/api/v1/grants/{dl['grant'].pk}/files/{path}{query}", **headers)
    assert response.status_code == status, response.content
    refusal = the_refusal_since(before, reason, str(AuditAction.DOWNLOAD_DENIED))
    assert (refusal.target_type, refusal.target_id) == ("partners.grant", str(dl["grant"].pk))
    assert refusal.target_label.startswith(f"grant #{dl['grant'].pk}")
    assert refusal.changes["artifact"] == path
    assert refusal.changes["range"] in (headers["HTTP_RANGE"], "0-99")
    assert refusal.partner_id == dl["partner"].pk
    assert dl["token"] not in str(refusal.changes) and dl["secret"] not in str(refusal.changes)


def test_a_download_hidden_by_export_control_is_one_download_denied(dl):
    # Behind the actions' back, on purpose: the actions would end the grant first.
    Release.objects.filter(pk=dl["grant"].checkpoint.release_id).update(
        policy="deny", policy_jurisdictions=["US"]
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {dl['secret']}")
    before = last_event_id()
    response = client.get(
        f"/api/v1/grants/{dl['grant'].pk}/files/shard.bin", HTTP_X_GRANT_TOKEN=dl["token"]
    )
    assert response.status_code == 404
    refusal = the_refusal_since(before, "jurisdiction_blocked", "download.denied")
    assert refusal.target_id == str(dl["grant"].pk)


# -- the edge's refusals of a download are download.denied too -----------------------------

# name -> (path after /api/v1/grants/, extra headers, method, status, code, target id)
EDGE_DOWNLOAD_REFUSALS = {
    "NUL in the file path": ("{g}/files/a%00b.bin", {}, "get", 400, "path_invalid", "{g}"),
    "control character in the file path": (
        "{g}/files/a%1bb.bin",
        {},
        "get",
        400,
        "path_invalid",
        "{g}",
    ),
    "path too long": ("{g}/files/" + "z" * 3000, {}, "get", 414, "uri_too_long", "{g}"),
    "query too long": (
        "{g}/files/shard.bin?x=" + "y" * 5000,
        {},
        "get",
        414,
        "uri_too_long",
        "{g}",
    ),
    "header too large": (
        "{g}/files/shard.bin",
        {"HTTP_X_JUNK": "j" * 9000},
        "get",
        431,
        "header_too_large",
        "{g}",
    ),
    "body too large": (
        "{g}/files/shard.bin",
        {"CONTENT_LENGTH": str(10**9)},
        "get",
        413,
        "body_too_large",
        "{g}",
    ),
    "grant id not a number": ("abc/files/shard.bin", {}, "get", 404, "not_found", "abc"),
    "grant id above bigint": (
        f"{2**63}/files/shard.bin",
        {},
        "get",
        404,
        "not_found",
        str(2**63),
    ),
    "method not allowed": ("{g}/files/shard.bin", {}, "post", 405, "method_not_allowed", "{g}"),
}


@pytest.mark.parametrize("name", sorted(EDGE_DOWNLOAD_REFUSALS))
def test_an_edge_refusal_of_a_download_is_one_download_denied(dl, name):
    path, headers, method, status, code, target = EDGE_DOWNLOAD_REFUSALS[name]
    grant = str(dl["grant"].pk)
    client = Client(raise_request_exception=False)
    before = last_event_id()
    response = getattr(client, method)(
        "/api/v1/grants/" + path.format(g=grant),
        HTTP_AUTHORIZATION=f"Bearer {dl['secret']}",
        HTTP_X_GRANT_TOKEN=dl["token"],
        HTTP_RANGE="bytes=0-99",
        **headers,
    )
    assert response.status_code == status, response.content[:300]
    assert response.json()["code"] == code
    refusal = the_refusal_since(before, code, str(AuditAction.DOWNLOAD_DENIED))
    assert (refusal.target_type, refusal.target_id) == ("partners.grant", target.format(g=grant))
    assert refusal.target_label.startswith(f"grant #{target.format(g=grant)}, file ")
    assert refusal.changes["artifact"]  # the file asked for, as far as the URL tells
    assert refusal.changes["range"] == "bytes=0-99"
    assert refusal.changes["prefix"] == dl["secret"][:12]  # the token, never its secret
    assert dl["token"] not in str(refusal.changes) and dl["secret"] not in str(refusal.changes)


def test_a_control_character_in_a_path_is_recorded_escaped(dl):
    before = last_event_id()
    Client().get(
        f"/api/v1/grants/{dl['grant'].pk}/files/a%00b.bin",
        HTTP_AUTHORIZATION=f"Bearer {dl['secret']}",
    )
    refusal = the_refusal_since(before, "path_invalid", "download.denied")
    assert refusal.changes["artifact"] == "a\\x00b.bin"


# -- what was asked for, not the token -----------------------------------------------------


def test_a_grant_request_of_a_suspended_partner_names_the_checkpoint(dl):
    checkpoint = dl["grant"].checkpoint
    _suspend(dl)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {dl['secret']}")
    before = last_event_id()
    response = client.post("/api/v1/grants/", {"checkpoint": checkpoint.pk}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "partner_suspended"
    refusal = the_refusal_since(before, "partner_suspended", "api.denied")
    assert (refusal.target_type, refusal.target_id) == ("partners.checkpoint", str(checkpoint.pk))
    assert refusal.target_label == f"checkpoint #{checkpoint.pk}"
    assert refusal.actor == dl["user"] and refusal.partner_id == dl["partner"].pk
    assert refusal.changes["prefix"] == dl["secret"][:12]


# -- bodies that do not validate ------------------------------------------------------------

# name -> (route, body, caller)
INVALID_BODIES = {
    "quota 0": ("/api/v1/grants/", {"quota_bytes": 0}, "partner"),
    "quota 2^63": ("/api/v1/grants/", {"quota_bytes": 2**63}, "partner"),
    "quota not a number": ("/api/v1/grants/", {"quota_bytes": "lots"}, "partner"),
    "note not text": ("/api/v1/grants/", {"note": {"a": 1}}, "partner"),
    "staff quota 2^63": ("/api/v1/staff/grants/", {"quota_bytes": 2**63}, "staff"),
    "staff quota 0": ("/api/v1/staff/grants/", {"quota_bytes": 0}, "staff"),
}


@pytest.mark.parametrize("name", sorted(INVALID_BODIES))
def test_a_body_that_does_not_validate_is_evidence_naming_what_it_asked_for(dl, name):
    route, extra, caller = INVALID_BODIES[name]
    checkpoint = dl["grant"].checkpoint
    secret = dl["secret"] if caller == "partner" else f.token(f.superuser(), scopes=["staff"])
    body = {"checkpoint": checkpoint.pk, "partner": dl["partner"].slug, **extra}
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    before = last_event_id()
    response = client.post(route, body, format="json")
    assert response.status_code == 400, response.content
    code = response.json()["code"]
    refusal = the_refusal_since(before, code)
    assert refusal.action in ("api.denied", "grant.refused"), refusal.action
    assert refusal.target_type == "partners.checkpoint"
    assert refusal.target_id == str(checkpoint.pk)


# -- generated: every route x every kind of refused caller ---------------------------------


def _caller_refusals():
    for route in ROUTES:
        methods = sorted(methods_of(route))
        yield route, "patch", "method not allowed"
        if not route.startswith("api/v1/"):
            continue  # the schema and its viewers are public
        for method in methods:
            yield route, method, "anonymous"
            yield route, method, "unknown token"
            if route != "api/v1/tokens/rotate":  # any token may rotate itself
                yield route, method, "token of the wrong kind"
            if not route.startswith("api/v1/staff/"):
                yield route, method, "suspended partner"
        for name in params(route, "id"):
            yield route, methods[0], f"no such {name}"


CALLER_REFUSALS = list(_caller_refusals())
UNKNOWN = "acx_" + "Q" * 36


@pytest.mark.parametrize(
    ("route", "method", "kind"),
    CALLER_REFUSALS,
    ids=[f"{c[0]}:{c[1]}:{c[2]}" for c in CALLER_REFUSALS],
)
def test_every_refusal_of_every_route_is_one_event_naming_its_target(settings, route, method, kind):
    """Exactly one event with a target and the answered code, for each route the URL
    resolver knows (a new route is covered the day it is added)."""
    settings.ACCESSCTL_API_RATE = "1000000/min"
    partner = f.partner("gen-gpu")
    staff_route = route.startswith("api/v1/staff/")
    headers = {}
    if kind == "token of the wrong kind":
        user = f.partner_user(partner) if staff_route else f.superuser()
        headers["HTTP_AUTHORIZATION"] = (
            f"Bearer {f.token(user, scopes=['staff'] if not staff_route else ['read'])}"
        )
    elif kind == "unknown token":
        headers["HTTP_AUTHORIZATION"] = f"Bearer {UNKNOWN}"
    elif kind != "anonymous":
        if staff_route:
            secret = f.token(f.superuser(), scopes=["staff"])
        else:
            secret = f.token(f.partner_user(partner))
        headers["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    if kind == "suspended partner":
        actions.suspend_partner(actor=None, partner=partner, reason="generated")
    spoiled = (
        {name: "987654321" for name in params(route, "id")} if kind.startswith("no such") else {}
    )
    client = Client(raise_request_exception=False)
    before = last_event_id()
    kwargs = (
        {"data": "{}", "content_type": "application/json"}
        if method in ("post", "put", "patch")
        else {}
    )
    response = getattr(client, method)(url(route, **spoiled), **kwargs, **headers)
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    code = response.json()["code"]
    refusal = the_refusal_since(before, code)
    if route.endswith("/files/<path:path>") and route.startswith("api/v1/grants/"):
        assert refusal.action == "download.denied"
    assert refusal.target_id or refusal.target_type == "partners.accesstoken", refusal.target_type
    assert UNKNOWN[12:] not in str(refusal.changes)  # a token's public prefix at most


# Every spelling a client (or a tool that "helpfully" moves headers into the URL) might
# use, and the token as a parameter's name: "@" is where the grant token goes.
TOKEN_IN_URL = [
    "?grant_token=@",
    "?token=@",
    "?access_token=@",
    "?X-Grant-Token=@",
    "?Grant_Token=@",
    "?grant_token%5B%5D=@",
    "?t=x&t=@",
    "?@=1",
    "?note=prefix-@-suffix",
]


@pytest.mark.parametrize("route", ["file", "batch"])
@pytest.mark.parametrize("query", TOKEN_IN_URL)
def test_a_grant_token_anywhere_in_the_url_is_refused_and_recorded(dl, route, query):
    """The grant token belongs in ``X-Grant-Token``: in the URL, under any name, it is
    400 ``grant_token_in_query`` (the URL reaches the logs of every proxy on the way),
    even with the right header beside it; nothing is authorized, one ``download.denied``
    names the grant and never holds the token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {dl['secret']}")
    query = query.replace("@", dl["token"])
    before = last_event_id()
    if route == "file":
        response = client.get(
            f"/api/v1/grants/{dl['grant'].pk}/files/shard.bin{query}",
            HTTP_X_GRANT_TOKEN=dl["token"],
        )
    else:
        response = client.post(
            f"/api/v1/grants/{dl['grant'].pk}/authorizations{query}",
            {"files": [{"path": "shard.bin"}]},
            format="json",
            HTTP_X_GRANT_TOKEN=dl["token"],
        )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "grant_token_in_query"
    refusal = the_refusal_since(before, "grant_token_in_query", str(AuditAction.DOWNLOAD_DENIED))
    assert (refusal.target_type, refusal.target_id) == ("partners.grant", str(dl["grant"].pk))
    assert dl["token"] not in str(refusal.changes)
    assert not AuditEvent.objects.filter(
        id__gt=before, action=AuditAction.DOWNLOAD_AUTHORIZED
    ).exists()


def test_other_query_parameters_are_not_mistaken_for_a_grant_token(dl):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {dl['secret']}")
    response = client.get(
        f"/api/v1/grants/{dl['grant'].pk}/files/shard.bin?download=1&a.b.c=eyJ",
        HTTP_X_GRANT_TOKEN=dl["token"],
    )
    assert response.status_code in (200, 206)
    b"".join(response.streaming_content)  # read and closed: the file is not left open
    response.close()
