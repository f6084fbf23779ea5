"""The partner API, end to end through DRF (the test client, real PostgreSQL)."""

import base64
import hashlib
import json
import os
from datetime import timedelta

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.utils import timezone
from rest_framework.test import APIClient

from accessctl.audit.models import AuditEvent
from accessctl.signing.keys import BadSignature, rotate_key, verify_detached
from accessctl_wire import canonical_json
from partners import actions, tokens
from partners.errors import ActionError
from partners.models import AccessToken, Grant
from tests import factories as f

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)
SHARD = os.urandom(300_000)
FILES = {"model-00001.safetensors": SHARD, "config.json": b'{"layers": 2}'}


def b64d(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def client_for(secret=None, **headers):
    client = APIClient()
    if secret:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}", **headers)
    return client


@pytest.fixture
def world():
    partner = f.partner("aurora-gpu", jurisdiction="US")
    release = f.release("v4")
    checkpoint = f.stored_checkpoint(release, FILES)
    f.window(release, partner)
    grant = f.grant(checkpoint, partner, quota_bytes=10 * len(SHARD))
    engineer = f.partner_user(partner)
    secret = f.token(engineer)
    return {
        "partner": partner,
        "release": release,
        "checkpoint": checkpoint,
        "grant": grant,
        "user": engineer,
        "secret": secret,
        "client": client_for(secret),
    }


def grant_token(world, grant=None):
    grant = grant or world["grant"]
    body = world["client"].get(f"/api/v1/grants/{grant.pk}").json()
    return body["token"]


def download(world, path="model-00001.safetensors", grant=None, **headers):
    grant = grant or world["grant"]
    response = world["client"].get(
        f"/api/v1/grants/{grant.pk}/files/{path}",
        HTTP_X_GRANT_TOKEN=grant_token(world, grant),
        **headers,
    )
    if response.streaming:  # reading it all closes the file, as a server would
        response.body = b"".join(response.streaming_content)
    return response


def body_of(response):
    return getattr(response, "body", None) or response.content


# Tokens


def test_token_is_stored_only_as_a_keyed_digest(world):
    row = AccessToken.objects.get()
    secret = world["secret"]
    assert secret.startswith("acx_") and tokens.is_well_formed(secret)
    assert row.prefix == secret[:12]
    assert row.digest != secret and secret not in row.digest
    assert row.digest == tokens.digest(secret, row.pepper_id)
    for event in AuditEvent.objects.all():
        assert secret not in json.dumps(event.changes)


def test_mistyped_token_fails_its_checksum():
    secret = tokens.generate()
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert tokens.is_well_formed(secret)
    assert not tokens.is_well_formed(flipped)


def test_last_use_is_recorded_at_most_once_a_minute(world):
    world["client"].get("/api/v1/me")
    first = AccessToken.objects.get().last_used_at
    assert first is not None
    world["client"].get("/api/v1/me")
    assert AccessToken.objects.get().last_used_at == first


def test_token_expiry_is_bounded(world, settings):
    with pytest.raises(ActionError) as exc:
        actions.invite_member_token(
            actor=None,
            user=world["user"],
            name="long",
            scopes=["read"],
            expires_at=timezone.now() + timedelta(days=settings.ACCESSCTL_TOKEN_MAX_DAYS + 1),
        )
    assert exc.value.code == "token_invalid_expiry"


def test_partner_token_cannot_carry_the_staff_scope(world):
    with pytest.raises(ActionError) as exc:
        actions.invite_member_token(actor=None, user=world["user"], name="x", scopes=["staff"])
    assert exc.value.code == "token_invalid_scopes"


# Endpoints


def test_me_shows_partner_scopes_and_expiry_but_no_secret(world):
    body = world["client"].get("/api/v1/me").json()
    assert body["partner"]["slug"] == "aurora-gpu"
    assert body["token"]["scopes"] == ["download", "grants:request", "read"]
    assert world["secret"] not in json.dumps(body)


def test_releases_show_window_state(world):
    other = f.release("v5")
    f.window(other, world["partner"], opens=5 * DAY, closes=9 * DAY)
    f.release("v6")  # no window: invisible
    body = world["client"].get("/api/v1/releases/").json()
    states = {r["slug"]: r["window"]["state"] for r in body["results"]}
    assert states == {"v4": "open", "v5": "upcoming"}


def test_checkpoints_are_listed_while_the_window_is_open(world):
    body = world["client"].get("/api/v1/releases/v4/checkpoints/").json()
    [row] = body["results"]
    assert row["tag"] == "step-1" and row["files"] == 2
    assert row["size"] == sum(len(c) for c in FILES.values())


@pytest.mark.parametrize(
    ("opens", "closes", "code"),
    [(2 * DAY, 4 * DAY, "window_not_open"), (-4 * DAY, -2 * DAY, "window_closed")],
)
def test_checkpoints_are_hidden_outside_the_window(world, opens, closes, code):
    release = f.release("v5")
    f.stored_checkpoint(release, {"a.bin": b"a"})
    f.window(release, world["partner"], opens=opens, closes=closes)
    response = world["client"].get("/api/v1/releases/v5/checkpoints/")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code


def test_manifest_verifies_offline_against_the_published_key(world):
    cp = world["checkpoint"]
    signed = world["client"].get(f"/api/v1/checkpoints/{cp.pk}/manifest").json()
    files = {entry["path"]: entry for entry in signed["manifest"]["files"]}
    assert files["config.json"]["sha256"] == hashlib.sha256(FILES["config.json"]).hexdigest()
    jwks = APIClient().get("/.well-known/jwks.json").json()
    [key] = [k for k in jwks["keys"] if k["kid"] == signed["signature"]["kid"]]
    public = Ed25519PublicKey.from_public_bytes(b64d(key["x"]))
    public.verify(b64d(signed["signature"]["signature"]), canonical_json(signed["manifest"]))
    tampered = dict(signed["manifest"], tag="other")
    with pytest.raises(InvalidSignature):
        public.verify(b64d(signed["signature"]["signature"]), canonical_json(tampered))
    # The server-side verifier agrees with the offline one.
    verify_detached(canonical_json(signed["manifest"]), signed["signature"])
    with pytest.raises(BadSignature):
        verify_detached(canonical_json(tampered), signed["signature"])


def test_early_access_request_answers_202_and_waits_for_approval(world):
    other = f.stored_checkpoint(world["release"], {"b.bin": b"b"}, tag="step-2")
    response = world["client"].post("/api/v1/grants/", {"checkpoint": other.pk}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending" and body["approvals_required"] == 2
    assert response["Location"] == f"/api/v1/grant-requests/{body['id']}"
    assert world["client"].get(response["Location"]).json()["status"] == "pending"


def test_request_after_launch_answers_201_with_a_signed_grant(world):
    launched = f.release("v3", public_in=-DAY)
    cp = f.stored_checkpoint(launched, {"c.bin": b"c" * 10})
    f.window(launched, world["partner"])
    response = world["client"].post("/api/v1/grants/", {"checkpoint": cp.pk}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["quota_bytes"] == 20 and body["token"].count(".") == 2


def test_request_from_blocked_jurisdiction_is_refused(world):
    blocked = f.partner(jurisdiction="CN")
    release = f.release("v9", policy="allow", policy_jurisdictions=["US"])
    cp = f.stored_checkpoint(release, {"c.bin": b"c"})
    f.window(release, world["partner"])
    # the blocked partner cannot even get a window, so it cannot see the checkpoint
    secret = f.token(f.partner_user(blocked))
    response = client_for(secret).post("/api/v1/grants/", {"checkpoint": cp.pk}, format="json")
    assert response.status_code == 404
    assert not Grant.objects.filter(partner=blocked).exists()


def test_invalid_request_body_is_a_precise_problem(world):
    response = world["client"].post("/api/v1/grants/", {"checkpoint": "x"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "checkpoint" in response.json()["fields"]


# Downloads


def test_full_download_has_the_right_bytes_and_headers(world):
    response = download(world)
    assert response.status_code == 200
    data = body_of(response)
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(SHARD).hexdigest()
    assert response["ETag"] == f'"{hashlib.sha256(SHARD).hexdigest()}"'
    assert response["Accept-Ranges"] == "bytes"
    assert int(response["Content-Length"]) == len(SHARD)
    world["grant"].refresh_from_db()
    assert world["grant"].bytes_used == len(SHARD)


def test_range_downloads_reassemble_to_the_right_digest(world):
    parts, step = [], 70_001
    for start in range(0, len(SHARD), step):
        end = min(start + step, len(SHARD)) - 1
        response = download(world, HTTP_RANGE=f"bytes={start}-{end}")
        assert response.status_code == 206
        assert response["Content-Range"] == f"bytes {start}-{end}/{len(SHARD)}"
        parts.append(body_of(response))
    assert hashlib.sha256(b"".join(parts)).hexdigest() == hashlib.sha256(SHARD).hexdigest()
    world["grant"].refresh_from_db()
    assert world["grant"].bytes_used == len(SHARD)


def test_suffix_and_open_ranges(world):
    assert body_of(download(world, HTTP_RANGE="bytes=-10")) == SHARD[-10:]
    assert body_of(download(world, HTTP_RANGE=f"bytes={len(SHARD) - 5}-")) == SHARD[-5:]


def test_if_range_with_another_etag_sends_the_whole_file(world):
    response = download(world, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"stale"')
    assert response.status_code == 200
    assert len(body_of(response)) == len(SHARD)


@pytest.mark.parametrize(
    "header", [f"bytes={len(SHARD)}-", f"bytes={'9' * 5000}-", "bytes=-0", "bytes=0-1,5-6"]
)
def test_unsatisfiable_range_is_416_and_debits_nothing(world, header):
    response = download(world, HTTP_RANGE=header)
    assert response.status_code == 416
    assert response.json()["code"] == "range_not_satisfiable"
    assert response["Content-Range"] == f"bytes */{len(SHARD)}"
    world["grant"].refresh_from_db()
    assert world["grant"].bytes_used == 0


@pytest.mark.parametrize(
    "header", ["bytes=5-2", "items=0-1", "bytes=", "bytes=a-b", "0-1", f"bytes=0-{'1' * 5000}x"]
)
def test_unparsable_range_is_ignored_whole_file(world, header):
    """RFC 9110 section 14.2: a Range that does not parse, or names another unit, is
    ignored: 200 with the whole file (and the whole file debited)."""
    response = download(world, HTTP_RANGE=header)
    assert response.status_code == 200
    assert body_of(response) == SHARD


def test_head_authorizes_without_debiting(world):
    grant = world["grant"]
    response = world["client"].head(
        f"/api/v1/grants/{grant.pk}/files/config.json", HTTP_X_GRANT_TOKEN=grant_token(world)
    )
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(FILES["config.json"]))
    grant.refresh_from_db()
    assert grant.bytes_used == 0


def test_quota_is_debited_by_new_bytes_and_then_refused(world):
    grant = world["grant"]
    Grant.objects.filter(pk=grant.pk).update(quota_bytes=len(SHARD) + 5)
    assert download(world).status_code == 200
    # Bytes already paid for, asked again (a retry): served, not charged.
    assert download(world, HTTP_RANGE="bytes=0-4").status_code == 206
    grant.refresh_from_db()
    assert grant.bytes_used == len(SHARD)
    # Another file's bytes are new: 13 bytes do not fit in the 5 left.
    refused = download(world, path="config.json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "quota_exhausted"
    grant.refresh_from_db()
    assert grant.bytes_used == len(SHARD)


def test_every_decision_is_recorded_with_address_range_and_agent(world):
    download(world, HTTP_RANGE="bytes=0-99", HTTP_USER_AGENT="accessctl-cli/1.0")
    Grant.objects.filter(pk=world["grant"].pk).update(quota_bytes=100)
    download(world, HTTP_RANGE="bytes=100-199")
    allowed, denied = AuditEvent.objects.filter(action__startswith="download.").order_by("id")
    assert allowed.outcome == "success" and allowed.changes["range"] == "0-99"
    assert allowed.changes["charged"] == 100 and allowed.changes["lease_renewed"] is True
    assert allowed.changes["user_agent"] == "accessctl-cli/1.0"
    assert allowed.client_address == "127.0.0.1"
    assert denied.outcome == "denied" and denied.reason == "quota_exhausted"


def test_missing_file_is_404(world):
    response = download(world, path="nope.bin")
    assert response.status_code == 404
    assert response.json()["code"] == "file_not_found"


def test_rotating_the_signing_key_keeps_outstanding_grant_tokens_valid(world):
    old_token = grant_token(world)
    rotate_key()
    grant = world["grant"]
    response = world["client"].get(
        f"/api/v1/grants/{grant.pk}/files/config.json", HTTP_X_GRANT_TOKEN=old_token
    )
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == FILES["config.json"]
    kids = [k["kid"] for k in APIClient().get("/.well-known/jwks.json").json()["keys"]]
    assert len(kids) == 2
    assert grant_token(world) != old_token


def test_throttled_per_token(world, settings):
    from django.core.cache import cache

    cache.clear()
    settings.ACCESSCTL_API_RATE = "3/min"
    codes = [world["client"].get("/api/v1/me").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert world["client"].get("/api/v1/me").json()["code"] == "throttled"
    cache.clear()


def test_schema_and_offline_docs_are_served():
    client = APIClient()
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/api/v1/grants/{grant_id}/files/{path}" in schema.content.decode()
    docs = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in docs


def test_rotate_signing_key_command_is_audited_and_keeps_old_tokens(world):
    from io import StringIO

    from django.core.management import call_command

    old_token = grant_token(world)
    out = StringIO()
    call_command("rotate_signing_key", stdout=out)
    event = AuditEvent.objects.get(action="signing_key.rotated")
    assert out.getvalue().startswith(f"new signing key {event.changes['kid']}; retired: ")
    assert len(event.changes["retired"]) == 1
    response = world["client"].head(
        f"/api/v1/grants/{world['grant'].pk}/files/config.json", HTTP_X_GRANT_TOKEN=old_token
    )
    assert response.status_code == 200


def test_token_use_and_caller_refusals_are_audited_without_the_secret(world):
    client, secret = world["client"], world["secret"]
    assert client.get("/api/v1/releases/").status_code == 200
    assert client.get("/api/v1/releases/").status_code == 200
    used = AuditEvent.objects.filter(action="token.used")
    assert used.count() == 1  # at most once a minute per token, with its last_used_at
    assert used.get().changes == {
        "prefix": secret[:12],
        "method": "GET",
        "path": "/api/v1/releases/",
    }

    actions.suspend_partner(actor=None, partner=world["partner"], reason="audit")
    refused = client.get("/api/v1/releases/")
    assert refused.status_code == 403
    denied = AuditEvent.objects.get(action="api.denied")
    assert (denied.outcome, denied.reason, denied.partner_id) == (
        "denied",
        "partner_suspended",
        world["partner"].pk,
    )
    everything = str(list(AuditEvent.objects.values_list("changes", "target_label")))
    assert secret not in everything and secret[12:] not in everything
