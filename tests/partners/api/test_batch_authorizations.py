"""``POST /api/v1/grants/{id}/authorizations`` (docs/api.md, *Batch authorization*): each
file decided, debited under its lease and recorded as its own GET; the grant's refusals
refuse the whole request as the GET does; hostile bodies are 400 problem+json."""

import hashlib
import os
import time

import httpx
import pytest
from rest_framework.test import APIClient

from accessctl.audit.models import AuditEvent
from partners import actions
from partners.api.batch import MAX_FILES
from partners.models import Grant, Release
from tests import factories as f

A, B, EMPTY = os.urandom(70_000), os.urandom(30_000), b""
FILES = {"a.bin": A, "dir/b #1?.bin": B, "empty.bin": EMPTY}


def setup_grant(files=FILES, quota=None):
    partner = f.partner()
    release = f.release()
    checkpoint = f.stored_checkpoint(release, files, tag=f"t{time.monotonic_ns()}")
    f.window(release, partner)
    grant = f.grant(checkpoint, partner, quota_bytes=quota or 10 * sum(map(len, files.values())))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {f.token(f.partner_user(partner))}")
    token = client.get(f"/api/v1/grants/{grant.pk}").json()["token"]
    client.credentials(
        HTTP_AUTHORIZATION=client._credentials["HTTP_AUTHORIZATION"], HTTP_X_GRANT_TOKEN=token
    )
    return grant, client


def ask(client, grant, files, **kwargs):
    return client.post(
        f"/api/v1/grants/{grant.pk}/authorizations", {"files": files}, format="json", **kwargs
    )


def used(grant) -> int:
    return Grant.objects.get(pk=grant.pk).bytes_used


def events(grant, action):
    return list(AuditEvent.objects.filter(action=action, target_id=str(grant.pk)).order_by("pk"))


@pytest.mark.django_db
def test_s3_batch_gives_presigned_urls_that_storage_serves(s3_mode, settings):
    grant, client = setup_grant()
    response = ask(
        client,
        grant,
        [
            {"path": "a.bin"},
            {"path": "dir/b #1?.bin", "start": 10, "end": 99},
            {"path": "empty.bin"},
        ],
    )
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "private, no-store"
    body = response.json()
    assert body["grant"] == grant.pk
    a, b, empty = body["files"]
    assert a["status"] == 200 and a["size"] == len(A)
    assert a["sha256"] == hashlib.sha256(A).hexdigest() and a["expires_at"]
    assert f"X-Amz-Expires={settings.ACCESSCTL_PRESIGN_SECONDS}" in a["url"]
    assert "range" not in a
    fetched = httpx.get(a["url"])
    assert fetched.status_code == 200 and fetched.content == A
    # A whole-file URL takes any Range (the whole file was charged).
    assert httpx.get(a["url"], headers={"Range": "bytes=5-9"}).content == A[5:10]
    # A ranged URL only its own Range.
    assert b["range"] == "bytes=10-99"
    assert httpx.get(b["url"], headers={"Range": b["range"]}).content == B[10:100]
    assert httpx.get(b["url"]).status_code == 403
    assert httpx.get(empty["url"]).content == b""
    assert used(grant) == len(A) + 90
    authorized = events(grant, "download.authorized")
    assert [e.changes["artifact"] for e in authorized] == ["a.bin", "dir/b #1?.bin", "empty.bin"]
    assert {e.changes["via"] for e in authorized} == {"batch"}
    assert [e.changes["charged"] for e in authorized[:2]] == [len(A), 90]


@pytest.mark.django_db
def test_s3_batch_then_the_get_and_a_second_batch_are_not_charged_again(s3_mode):
    grant, client = setup_grant()
    assert ask(client, grant, [{"path": "a.bin"}]).status_code == 200
    assert used(grant) == len(A)
    again = ask(client, grant, [{"path": "a.bin"}, {"path": "dir/b #1?.bin"}])
    assert [f["status"] for f in again.json()["files"]] == [200, 200]
    redirect = client.get(f"/api/v1/grants/{grant.pk}/files/a.bin")
    assert redirect.status_code == 302
    assert used(grant) == len(A) + len(B)
    charged = [e.changes["charged"] for e in events(grant, "download.authorized")]
    assert charged == [len(A), 0, len(B), 0]


@pytest.mark.django_db
def test_local_batch_hands_out_hrefs_whose_get_is_covered_by_the_lease(settings):
    settings.ACCESSCTL_DOWNLOAD_MODE = "local"
    grant, client = setup_grant()
    body = ask(client, grant, [{"path": "dir/b #1?.bin"}, {"path": "a.bin", "end": 9}]).json()
    b, a = body["files"]
    assert b["href"] == f"/api/v1/grants/{grant.pk}/files/dir/b%20%231%3F.bin"
    assert "url" not in b and "expires_at" not in b
    assert a["range"] == "bytes=0-9"
    assert used(grant) == len(B) + 10
    got = client.get(b["href"])
    assert got.status_code == 200 and b"".join(got.streaming_content) == B
    ranged = client.get(a["href"], HTTP_RANGE=a["range"])
    assert ranged.status_code == 206 and b"".join(ranged.streaming_content) == A[:10]
    assert used(grant) == len(B) + 10  # the GETs were covered by the batch's leases


@pytest.mark.django_db
def test_each_file_gets_its_own_decision(settings):
    settings.ACCESSCTL_DOWNLOAD_MODE = "local"
    grant, client = setup_grant(quota=len(A) + 100)
    body = ask(
        client,
        grant,
        [
            {"path": "a.bin"},
            {"path": "missing.bin"},
            {"path": "dir/b #1?.bin"},
            {"path": "a.bin/x", "start": 0},
            {"path": "empty.bin", "start": 0},
            {"path": "dir/b #1?.bin/"},
        ],
    ).json()
    codes = [(x["status"], x.get("code")) for x in body["files"]]
    assert codes == [
        (200, None),
        (404, "file_not_found"),
        (403, "quota_exhausted"),
        (404, "file_not_found"),
        (416, "range_not_satisfiable"),
        (404, "file_not_found"),
    ]
    assert all(x["detail"] for x in body["files"][1:])
    assert used(grant) == len(A)
    denied = events(grant, "download.denied")
    assert [(e.reason, e.changes["artifact"]) for e in denied] == [
        ("file_not_found", "missing.bin"),
        ("quota_exhausted", "dir/b #1?.bin"),
        ("file_not_found", "a.bin/x"),
        ("range_not_satisfiable", "empty.bin"),
        ("file_not_found", "dir/b #1?.bin/"),
    ]
    assert len(events(grant, "download.authorized")) == 1


@pytest.mark.django_db
def test_a_range_past_the_end_is_refused_and_one_past_it_clipped(settings):
    settings.ACCESSCTL_DOWNLOAD_MODE = "local"
    grant, client = setup_grant()
    body = ask(
        client,
        grant,
        [{"path": "a.bin", "start": len(A)}, {"path": "dir/b #1?.bin", "start": 5, "end": 10**15}],
    ).json()
    past, clipped = body["files"]
    assert (past["status"], past["code"]) == (416, "range_not_satisfiable")
    assert clipped["range"] == f"bytes=5-{len(B) - 1}"
    assert used(grant) == len(B) - 5


GRANT_REFUSALS = {
    "revoked": (
        lambda g: actions.revoke_grant(actor=None, grant=g, reason="x"),
        403,
        "grant_revoked",
    ),
    "pulled": (
        lambda g: actions.pull_checkpoint(actor=None, checkpoint=g.checkpoint, reason="x"),
        403,
        "checkpoint_pulled",
    ),
    "jurisdiction blocked": (
        lambda g: Release.objects.filter(pk=g.checkpoint.release_id).update(
            policy="deny", policy_jurisdictions="US"
        ),
        404,
        "not_found",
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", sorted(GRANT_REFUSALS))
def test_a_refused_grant_refuses_the_whole_request(settings, case):
    settings.ACCESSCTL_DOWNLOAD_MODE = "local"
    change, status, code = GRANT_REFUSALS[case]
    grant, client = setup_grant()
    change(grant)
    before = used(grant)
    response = ask(client, grant, [{"path": "a.bin"}, {"path": "missing.bin"}])
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert "a.bin" not in response.content.decode()
    assert used(grant) == before
    denied = events(grant, "download.denied")
    assert len(denied) == 1  # one event for the request, none per file
    assert denied[0].reason == (code if code != "not_found" else "jurisdiction_blocked")


@pytest.mark.django_db
def test_an_exhausted_quota_refuses_each_new_file_but_not_a_leased_one(settings):
    """As the GET: the quota is the file's rule (a file already paid for in its lease
    costs nothing, so it is still authorized)."""
    settings.ACCESSCTL_DOWNLOAD_MODE = "local"
    grant, client = setup_grant(quota=len(A))
    assert ask(client, grant, [{"path": "a.bin"}]).json()["files"][0]["status"] == 200
    body = ask(client, grant, [{"path": "a.bin"}, {"path": "dir/b #1?.bin"}]).json()
    assert [(x["status"], x.get("code")) for x in body["files"]] == [
        (200, None),
        (403, "quota_exhausted"),
    ]
    assert used(grant) == len(A)


@pytest.mark.django_db
def test_the_grant_token_rules_are_the_gets(settings):
    settings.ACCESSCTL_DOWNLOAD_MODE = "local"
    grant, client = setup_grant()
    secret = client._credentials["HTTP_AUTHORIZATION"]
    bare = APIClient()
    bare.credentials(HTTP_AUTHORIZATION=secret)
    missing = ask(bare, grant, [{"path": "a.bin"}])
    assert (missing.status_code, missing.json()["code"]) == (403, "grant_token_missing")
    bare.credentials(HTTP_AUTHORIZATION=secret, HTTP_X_GRANT_TOKEN="not-a-jws")
    bad = ask(bare, grant, [{"path": "a.bin"}])
    assert (bad.status_code, bad.json()["code"]) == (403, "grant_token_invalid")
    assert used(grant) == 0


DEEP: list = []
for _ in range(40):
    DEEP = [DEEP]
HOSTILE = {
    "not json": ("{files:", "malformed_request"),
    "a list": ([{"path": "a.bin"}], "invalid"),
    "no files": ({}, "invalid"),
    "files not a list": ({"files": "a.bin"}, "invalid"),
    "empty list": ({"files": []}, "invalid"),
    "a file not an object": ({"files": ["a.bin"]}, "invalid"),
    "path not a string": ({"files": [{"path": 7}]}, "invalid"),
    "path empty": ({"files": [{"path": ""}]}, "invalid"),
    "path too long": ({"files": [{"path": "x" * 501}]}, "invalid"),
    "duplicate path": ({"files": [{"path": "a.bin"}, {"path": "a.bin", "start": 1}]}, "invalid"),
    "start a string": ({"files": [{"path": "a.bin", "start": "1"}]}, "invalid"),
    "start a float": ({"files": [{"path": "a.bin", "start": 1.5}]}, "invalid"),
    "start a boolean": ({"files": [{"path": "a.bin", "start": True}]}, "invalid"),
    "start negative": ({"files": [{"path": "a.bin", "start": -1}]}, "invalid"),
    "end before start": ({"files": [{"path": "a.bin", "start": 9, "end": 3}]}, "invalid"),
    "end huge": ({"files": [{"path": "a.bin", "end": 2**63}]}, "invalid"),
    "start null": ({"files": [{"path": "a.bin", "start": None}]}, "invalid"),
    "too many": ({"files": [{"path": f"f{i}"} for i in range(MAX_FILES + 1)]}, "too_many_files"),
    "nested deep": ({"files": [{"path": "a.bin", "x": DEEP}]}, "json_too_deep"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_bodies_are_400_problems(settings, case):
    settings.ACCESSCTL_DOWNLOAD_MODE = "local"
    body, code = HOSTILE[case]
    grant, client = setup_grant()
    url = f"/api/v1/grants/{grant.pk}/authorizations"
    if isinstance(body, str):
        response = client.generic("POST", url, body, content_type="application/json")
    else:
        response = client.post(url, body, format="json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert used(grant) == 0
    assert len(events(grant, "download.denied")) == 1
    assert not events(grant, "download.authorized")


@pytest.mark.django_db
def test_the_limit_itself_is_allowed(settings):
    settings.ACCESSCTL_DOWNLOAD_MODE = "local"
    files = {f"f{i:03d}": bytes([i % 256]) for i in range(MAX_FILES)}
    grant, client = setup_grant(files)
    response = ask(client, grant, [{"path": p} for p in files])
    assert response.status_code == 200
    assert [x["status"] for x in response.json()["files"]] == [200] * MAX_FILES
    assert used(grant) == MAX_FILES


@pytest.mark.django_db
def test_a_batch_counts_toward_the_api_rate_once_per_file(settings):
    """A batch of n files counts as n requests (as their GETs would): over the rate it is
    429 ``throttled`` with Retry-After, nothing authorized, charged or recorded per file,
    so a token writes no more audit events a minute through batches than through GETs."""
    grant, client = setup_grant()
    settings.ACCESSCTL_API_RATE = "6/min"  # the grant token's GET above is not counted
    from partners.api.ratelimit import _local

    _local.clear()
    three = [{"path": "a.bin"}, {"path": "dir/b #1?.bin"}, {"path": "nope.bin"}]
    assert ask(client, grant, three).status_code == 200  # 3 of 6
    charged, authorized = used(grant), len(events(grant, "download.authorized"))
    refused = ask(client, grant, [*three, {"path": "empty.bin"}])  # 1 counted, 3 more refused
    assert refused.status_code == 429, refused.content
    assert refused["Content-Type"] == "application/problem+json"
    assert refused.json()["code"] == "throttled" and int(refused["Retry-After"]) > 0
    assert used(grant) == charged
    assert len(events(grant, "download.authorized")) == authorized
    assert ask(client, grant, three[:2]).status_code == 200  # 4 + 2: fits exactly
    assert ask(client, grant, three[:1]).status_code == 429  # the request itself: 7
