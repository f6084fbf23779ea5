"""Every partner endpoint against every kind of caller that must be refused.

Generated: a new endpoint added to ENDPOINTS is checked against every caller, and a new
caller against every endpoint. No refused body may carry another partner's objects.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accessctl.audit.models import AuditEvent
from accessctl.signing.keys import sign_token
from partners import actions, tokens
from partners.models import AccessToken, EmbargoWindow, Grant, Membership, Partner, Release
from tests import factories as f

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)

ENDPOINTS = {
    "me": ("get", "/api/v1/me", None, "read"),
    "releases": ("get", "/api/v1/releases/", None, "read"),
    "checkpoints": ("get", "/api/v1/releases/v4/checkpoints/", None, "read"),
    "manifest": ("get", "/api/v1/checkpoints/{checkpoint}/manifest", None, "read"),
    "grants": ("get", "/api/v1/grants/", None, "read"),
    "request": ("post", "/api/v1/grants/", {"checkpoint": "{checkpoint}"}, "grants:request"),
    "grant": ("get", "/api/v1/grants/{grant}", None, "read"),
    "grant-request": ("get", "/api/v1/grant-requests/{request}", None, "read"),
    "file": ("get", "/api/v1/grants/{grant}/files/config.json", None, "download"),
    "authorizations": (
        "post",
        "/api/v1/grants/{grant}/authorizations",
        lambda ids: {"files": [{"path": "config.json"}, {"path": "w.bin", "start": 1}]},
        "download",
    ),
}
OBJECT_ENDPOINTS = {
    "checkpoints",
    "manifest",
    "request",
    "grant",
    "grant-request",
    "file",
    "authorizations",
}
DOWNLOAD_ENDPOINTS = ("file", "authorizations")


@pytest.fixture
def world():
    partner = f.partner("aurora-gpu")
    release = f.release("v4")
    checkpoint = f.stored_checkpoint(release, {"config.json": b"{}", "w.bin": b"w" * 100})
    window = f.window(release, partner)
    grant = f.grant(checkpoint, partner, quota_bytes=1000)
    user = f.partner_user(partner)
    ids = {"checkpoint": checkpoint.pk, "grant": grant.pk, "request": grant.request_id}
    return {
        "partner": partner,
        "release": release,
        "checkpoint": checkpoint,
        "window": window,
        "grant": grant,
        "user": user,
        "ids": ids,
        "grant_token": sign_token(
            {
                "grant": grant.pk,
                "partner": partner.pk,
                "checkpoint": checkpoint.pk,
                "nbf": int(window.opens_at.timestamp()),
                "exp": int(grant.expires_at.timestamp()),
            }
        ),
    }


def call(world, name, authorization=None, grant_token=None):
    method, path, data, _ = ENDPOINTS[name]
    ids = world["ids"]
    path = path.format(**ids)
    if callable(data):
        data = data(ids)
    elif data:
        data = {k: int(v.format(**ids)) for k, v in data.items()}
    headers = {"HTTP_X_GRANT_TOKEN": grant_token or world["grant_token"]}
    if authorization:
        headers["HTTP_AUTHORIZATION"] = authorization
    response = getattr(APIClient(), method)(path, data, format="json", **headers)
    if response.streaming:
        response.body = b"".join(response.streaming_content)
    return response


def bearer(secret):
    return f"Bearer {secret}"


def expired(world):
    secret = f.token(world["user"])
    past = timezone.now() - DAY
    AccessToken.objects.filter(prefix=secret[:12]).update(created_at=past - DAY, expires_at=past)
    return bearer(secret)


def revoked(world):
    secret = f.token(world["user"])
    actions.revoke_token(
        actor=None, token=AccessToken.objects.get(prefix=secret[:12]), reason="leak"
    )
    return bearer(secret)


def wrong_checksum(world):
    secret = f.token(world["user"])
    return bearer(secret[:-1] + ("A" if secret[-1] != "A" else "B"))


def suspended(world):
    secret = f.token(world["user"])
    actions.suspend_partner(actor=None, partner=world["partner"], reason="audit")
    return bearer(secret)


def nda_expired(world):
    secret = f.token(world["user"])
    Partner.objects.filter(pk=world["partner"].pk).update(nda_expires_at=timezone.now() - DAY)
    return bearer(secret)


def address_not_allowed(world):
    secret = f.token(world["user"])
    Partner.objects.filter(pk=world["partner"].pk).update(allowed_networks=["198.51.100.0/24"])
    return bearer(secret)


def token_address_not_allowed(world):
    return bearer(f.token(world["user"], allowed_networks=["2001:db8::/32"]))


def member_removed(world):
    secret = f.token(world["user"])
    actions.remove_member(actor=None, membership=Membership.objects.get(user=world["user"]))
    return bearer(secret)


def membership_gone(world):
    """A revocation missed (the row removed behind the actions' back, on purpose)."""
    secret = f.token(world["user"])
    Membership.objects.filter(user=world["user"]).delete()
    return bearer(secret)


def staff_token(world):
    return bearer(f.token(f.staff("Release manager"), scopes=["staff"]))


REFUSED_CALLERS = {
    "anonymous": (lambda w: None, 401, "not_authenticated"),
    "not bearer": (lambda w: "Basic dXNlcjpwYXNz", 401, "token_malformed"),
    "malformed": (lambda w: "Bearer acx_short", 401, "token_malformed"),
    "wrong checksum": (wrong_checksum, 401, "token_malformed"),
    "unknown": (lambda w: bearer(tokens.generate()), 401, "token_invalid"),
    "expired": (expired, 401, "token_expired"),
    "revoked": (revoked, 401, "token_revoked"),
    "suspended partner": (suspended, 403, "partner_suspended"),
    "nda expired": (nda_expired, 403, "nda_expired"),
    "partner address": (address_not_allowed, 403, "address_not_allowed"),
    "token address": (token_address_not_allowed, 403, "address_not_allowed"),
    "staff token": (staff_token, 403, "partner_token_required"),
    "member removed": (member_removed, 401, "token_revoked"),
    "membership gone": (membership_gone, 401, "token_membership_ended"),
}


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@pytest.mark.parametrize("caller", sorted(REFUSED_CALLERS))
def test_refused_callers(world, endpoint, caller):
    make, status, code = REFUSED_CALLERS[caller]
    response = call(world, endpoint, make(world))
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code and body["status"] == status and body["detail"]
    assert "aurora-gpu" not in response.content.decode()
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert Grant.objects.get(pk=world["grant"].pk).bytes_used == 0


@pytest.mark.parametrize("caller", sorted(set(REFUSED_CALLERS) - {"staff token"}))
def test_refused_callers_cannot_rotate(world, caller):
    """``POST /api/v1/tokens/rotate`` needs no scope, but every caller rule (a staff token
    rotates itself: ``test_a_staff_token_rotates_itself``)."""
    make, status, code = REFUSED_CALLERS[caller]
    authorization = make(world)
    before = AccessToken.objects.filter(revoked_at=None).count()
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = APIClient().post("/api/v1/tokens/rotate", **headers)
    assert response.status_code == status
    assert response.json()["code"] == code
    assert AccessToken.objects.filter(revoked_at=None).count() == before


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_token_without_the_scope_is_refused(world, endpoint):
    needed = ENDPOINTS[endpoint][3]
    others = [s for s in ("read", "grants:request", "download") if s != needed]
    response = call(world, endpoint, bearer(f.token(world["user"], scopes=others)))
    assert response.status_code == 403
    assert response.json()["code"] == "scope_missing"


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_another_partner_never_sees_our_objects(world, endpoint):
    other = f.partner("tessel-accel", jurisdiction="DE")
    response = call(world, endpoint, bearer(f.token(f.partner_user(other))))
    if endpoint in OBJECT_ENDPOINTS:
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    else:
        assert response.status_code == 200
    text = response.content.decode()
    assert "aurora-gpu" not in text and '"v4"' not in text
    assert (
        str(world["grant"].pk) not in response.json().get("results", [{}]).__repr__()
        or endpoint == "me"
    )


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_the_owner_is_allowed(world, endpoint):
    response = call(world, endpoint, bearer(f.token(world["user"])))
    if endpoint == "request":  # the owner already holds a grant for this checkpoint
        assert response.status_code == 409
        assert response.json()["code"] == "grant_exists"
    else:
        assert response.status_code == 200, response.content


# Download-only refusals: the grant, its window and its signed token.


def _window_later(w):
    EmbargoWindow.objects.filter(pk=w["window"].pk).update(
        opens_at=timezone.now() + DAY, embargo_lifts_at=timezone.now() + DAY
    )


def _window_closed(w):
    Grant.objects.filter(pk=w["grant"].pk).update(
        issued_at=timezone.now() - 3 * DAY, expires_at=timezone.now() - DAY
    )
    EmbargoWindow.objects.filter(pk=w["window"].pk).update(
        opens_at=timezone.now() - 5 * DAY,
        closes_at=timezone.now() - DAY,
        embargo_lifts_at=timezone.now() - DAY,
    )


def _tampered(w):
    header, payload, signature = w["grant_token"].split(".")
    flipped = "A" if signature[5] != "A" else "B"
    return ".".join([header, payload, signature[:5] + flipped + signature[6:]])


def _forged(w):
    import jwt
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from accessctl.signing.keys import current_key

    claims = jwt.decode(w["grant_token"], options={"verify_signature": False})
    return jwt.encode(
        claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": current_key().kid}
    )


def _other_grant(w):
    other = f.stored_checkpoint(w["release"], {"x.bin": b"x"}, tag="step-2")
    g = f.grant(other, w["partner"], quota_bytes=1000)
    return sign_token(
        {
            "grant": g.pk,
            "partner": w["partner"].pk,
            "checkpoint": other.pk,
            "nbf": int(w["window"].opens_at.timestamp()),
            "exp": int(g.expires_at.timestamp()),
        }
    )


DOWNLOAD_REFUSALS = {
    "window not open": (_window_later, None, "window_not_open"),
    "window closed": (_window_closed, None, "window_closed"),
    "grant revoked": (
        lambda w: actions.revoke_grant(actor=None, grant=w["grant"], reason="x"),
        None,
        "grant_revoked",
    ),
    "grant expired": (
        lambda w: Grant.objects.filter(pk=w["grant"].pk).update(
            expires_at=timezone.now() - timedelta(seconds=1), issued_at=timezone.now() - DAY
        ),
        None,
        "grant_expired",
    ),
    "grant exhausted": (
        lambda w: Grant.objects.filter(pk=w["grant"].pk).update(quota_bytes=1),
        None,
        "quota_exhausted",
    ),
    "checkpoint pulled": (
        lambda w: actions.pull_checkpoint(actor=None, checkpoint=w["checkpoint"], reason="x"),
        None,
        "checkpoint_pulled",
    ),
    "tampered signature": (None, _tampered, "grant_token_invalid"),
    "signed by another key": (None, _forged, "grant_token_invalid"),
    "token for another grant": (None, _other_grant, "grant_token_invalid"),
    "no grant token": (None, lambda w: "", "grant_token_missing"),
    "garbage grant token": (None, lambda w: "not-a-jws", "grant_token_invalid"),
}


@pytest.mark.parametrize("endpoint", DOWNLOAD_ENDPOINTS)
@pytest.mark.parametrize("case", sorted(DOWNLOAD_REFUSALS))
def test_download_refusals(world, case, endpoint):
    change, make_token, code = DOWNLOAD_REFUSALS[case]
    secret = f.token(world["user"])
    grant_token = make_token(world) if make_token else None
    if change:
        change(world)
    method, path, data, _ = ENDPOINTS[endpoint]
    headers = {"HTTP_AUTHORIZATION": bearer(secret)}
    token = world["grant_token"] if grant_token is None else grant_token
    if token:
        headers["HTTP_X_GRANT_TOKEN"] = token
    body = data(world["ids"]) if data else None
    response = getattr(APIClient(), method)(
        path.format(**world["ids"]), body, format="json", **headers
    )
    if endpoint == "authorizations" and code == "quota_exhausted":
        # The quota is each file's rule (as for the GET of a file): refused file by file.
        assert response.status_code == 200, response.content
        answers = response.json()["files"]
        assert {(a["status"], a["code"]) for a in answers} == {(403, code)}
        assert Grant.objects.get(pk=world["grant"].pk).bytes_used == 0
        denied = AuditEvent.objects.filter(action="download.denied")
        assert {(e.reason, e.target_id) for e in denied} == {(code, str(world["grant"].pk))}
        assert denied.count() == len(answers)
        return
    assert response.status_code == 403, response.content
    assert response.json()["code"] == code
    assert Grant.objects.get(pk=world["grant"].pk).bytes_used == 0
    denied = AuditEvent.objects.filter(action="download.denied").get()
    assert denied.reason == code and denied.target_id == str(world["grant"].pk)


# Export control: a release whose policy blocks the partner does not exist for it.


def _policy_tightened(w):
    """The release's export policy now excludes the partner's jurisdiction (US)."""
    Release.objects.filter(pk=w["release"].pk).update(policy="allow", policy_jurisdictions="DE,FR")


def _deny_listed(w):
    Release.objects.filter(pk=w["release"].pk).update(policy="deny", policy_jurisdictions="CN,US")


def _partner_moved(w):
    """The partner's jurisdiction now is one the release's policy denies (written directly:
    the action refuses to do it without ending the access, see test_export_control)."""
    Release.objects.filter(pk=w["release"].pk).update(policy="deny", policy_jurisdictions="RU")
    Partner.objects.filter(pk=w["partner"].pk).update(jurisdiction="RU")


BLOCKINGS = {
    "allow-list without it": _policy_tightened,
    "deny-list with it": _deny_listed,
    "partner moved": _partner_moved,
}


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@pytest.mark.parametrize("blocking", sorted(BLOCKINGS))
def test_blocked_jurisdiction_sees_nothing_of_the_release(world, endpoint, blocking):
    secret = f.token(world["user"])
    BLOCKINGS[blocking](world)
    response = call(world, endpoint, bearer(secret))
    if endpoint in OBJECT_ENDPOINTS:
        assert response.status_code == 404, response.content
        assert response.json() == {
            "type": "https://accessctl.invalid/problems/not_found",
            "title": "Not found",
            "status": 404,
            "detail": "No such object, or not yours.",
            "code": "not_found",
        }
    else:
        assert response.status_code == 200
        results = response.json().get("results", [])
        assert results == [], results
    assert '"v4"' not in response.content.decode()
    assert Grant.objects.get(pk=world["grant"].pk).bytes_used == 0


@pytest.mark.parametrize("endpoint", DOWNLOAD_ENDPOINTS)
def test_blocked_download_is_evidence(world, endpoint):
    secret = f.token(world["user"])
    _policy_tightened(world)
    assert call(world, endpoint, bearer(secret)).status_code == 404
    denied = AuditEvent.objects.filter(action="download.denied").get()
    assert denied.reason == "jurisdiction_blocked"
    assert denied.target_id == str(world["grant"].pk)


def test_blocked_release_does_not_hide_an_allowed_one(world):
    secret = f.token(world["user"])
    other = f.release("v5", policy="allow", policy_jurisdictions=["US"])
    f.window(other, world["partner"])
    _policy_tightened(world)
    response = call(world, "releases", bearer(secret))
    assert [r["slug"] for r in response.json()["results"]] == ["v5"]


def test_a_staff_token_rotates_itself(world):
    """docs/api.md: any token may rotate itself; a staff token under the staff rules."""
    officer = f.staff("Release manager")
    secret = f.token(officer, allowed_networks=["127.0.0.0/8"])
    old = AccessToken.objects.get(user=officer)
    response = APIClient().post("/api/v1/tokens/rotate", HTTP_AUTHORIZATION=bearer(secret))
    assert response.status_code == 201, response.content
    body = response.json()
    new = AccessToken.objects.get(prefix=body["prefix"])
    assert (new.user, new.partner_id, new.scopes, new.expires_at) == (
        officer,
        None,
        old.scopes,
        old.expires_at,
    )
    assert new.allowed_networks == ["127.0.0.0/8"] and body["replaces"] == old.prefix
    old.refresh_from_db()
    assert old.revoked_at is not None
    # The new secret works on the staff API, the old one no longer.
    staff_api = "/api/v1/staff/revocations/999999"  # authenticated: no such revocation
    assert APIClient().get(staff_api, HTTP_AUTHORIZATION=bearer(body["token"])).status_code == 404
    refused = APIClient().post("/api/v1/tokens/rotate", HTTP_AUTHORIZATION=bearer(secret))
    assert refused.status_code == 401 and refused.json()["code"] == "token_revoked"


@pytest.mark.parametrize(
    ("how", "code"),
    [("address", "address_not_allowed"), ("no longer staff", "staff_access_ended")],
)
def test_a_refused_staff_token_cannot_rotate(world, how, code):
    officer = f.staff("Release manager")
    networks = ["198.51.100.0/24"] if how == "address" else None
    secret = f.token(officer, allowed_networks=networks)
    if how == "no longer staff":
        type(officer).objects.filter(pk=officer.pk).update(is_staff=False)
    before = AccessToken.objects.filter(revoked_at=None).count()
    response = APIClient().post("/api/v1/tokens/rotate", HTTP_AUTHORIZATION=bearer(secret))
    assert response.status_code == 403 and response.json()["code"] == code
    assert AccessToken.objects.filter(revoked_at=None).count() == before
