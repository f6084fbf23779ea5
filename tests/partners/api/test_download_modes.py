"""Downloads leaving through a real S3-compatible server and through real nginx."""

import hashlib
import os
import time

import httpx
import pytest
from rest_framework.test import APIClient

from tests import factories as f
from tests.servers import nginx

CONTENT = os.urandom(200_000)


def setup_grant(files):
    partner = f.partner()
    release = f.release()
    checkpoint = f.stored_checkpoint(release, files, tag=f"t{time.monotonic_ns()}")
    f.window(release, partner)
    grant = f.grant(checkpoint, partner, quota_bytes=10 * len(CONTENT))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {f.token(f.partner_user(partner))}")
    token = client.get(f"/api/v1/grants/{grant.pk}").json()["token"]
    return grant, client, token


@pytest.mark.django_db
def test_s3_mode_redirects_to_a_short_lived_presigned_url(s3_mode, settings):
    grant, client, token = setup_grant({"w.bin": CONTENT})
    response = client.get(f"/api/v1/grants/{grant.pk}/files/w.bin", HTTP_X_GRANT_TOKEN=token)
    assert response.status_code == 302
    url = response["Location"]
    assert url.startswith(s3_mode.endpoint) and "X-Amz-Signature=" in url
    assert f"X-Amz-Expires={settings.ACCESSCTL_PRESIGN_SECONDS}" in url
    fetched = httpx.get(url)
    assert fetched.status_code == 200
    assert hashlib.sha256(fetched.content).hexdigest() == hashlib.sha256(CONTENT).hexdigest()
    grant.refresh_from_db()
    assert grant.bytes_used == len(CONTENT)


@pytest.mark.django_db
def test_s3_range_reassembles(s3_mode):
    grant, client, token = setup_grant({"w.bin": CONTENT})
    parts = []
    for start in range(0, len(CONTENT), 65_536):
        end = min(start + 65_536, len(CONTENT)) - 1
        response = client.get(
            f"/api/v1/grants/{grant.pk}/files/w.bin",
            HTTP_X_GRANT_TOKEN=token,
            HTTP_RANGE=f"bytes={start}-{end}",
        )
        assert response.status_code == 302
        part = httpx.get(response["Location"], headers={"Range": f"bytes={start}-{end}"})
        assert part.status_code == 206
        parts.append(part.content)
    assert b"".join(parts) == CONTENT
    grant.refresh_from_db()
    assert grant.bytes_used == len(CONTENT)


@pytest.mark.django_db
def test_s3_server_refuses_tampered_anonymous_and_expired_urls(s3_mode, settings):
    settings.ACCESSCTL_PRESIGN_SECONDS = 1
    grant, client, token = setup_grant({"w.bin": CONTENT})
    url = client.get(f"/api/v1/grants/{grant.pk}/files/w.bin", HTTP_X_GRANT_TOKEN=token)["Location"]
    signature = url.split("X-Amz-Signature=")[1][:64]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    assert httpx.get(url.replace(signature, flipped)).status_code == 403
    assert httpx.get(url.split("?")[0]).status_code == 403
    time.sleep(2.5)
    assert httpx.get(url).status_code == 403


@pytest.mark.django_db
def test_s3_mode_refuses_before_redirecting(s3_mode):
    from partners import actions

    grant, client, token = setup_grant({"w.bin": CONTENT})
    actions.revoke_grant(actor=None, grant=grant, reason="leak")
    response = client.get(f"/api/v1/grants/{grant.pk}/files/w.bin", HTTP_X_GRANT_TOKEN=token)
    assert response.status_code == 403
    assert response.json()["code"] == "grant_revoked"
    assert "Location" not in response


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_nginx_serves_the_file_through_x_accel_redirect(
    live_server, settings, tmp_path, _artifact_root
):
    settings.ACCESSCTL_DOWNLOAD_MODE = "nginx"
    grant, _, token = setup_grant({"dir/w.bin": CONTENT})
    secret = f.token(grant.partner.memberships.first().user)
    with nginx(
        tmp_path / "nginx",
        upstream=live_server.url,
        artifact_root=_artifact_root,
        internal_prefix=settings.ACCESSCTL_NGINX_INTERNAL_PREFIX,
    ) as base:
        headers = {"Authorization": f"Bearer {secret}", "X-Grant-Token": token}
        url = f"{base}/api/v1/grants/{grant.pk}/files/dir/w.bin"
        full = httpx.get(url, headers=headers)
        assert full.status_code == 200
        assert full.content == CONTENT
        assert "X-Accel-Redirect" not in full.headers
        part = httpx.get(url, headers={**headers, "Range": "bytes=100-199"})
        assert part.status_code == 206
        assert part.content == CONTENT[100:200]
        refused = httpx.get(url, headers={"Authorization": f"Bearer {secret}"})
        assert refused.status_code == 403
        assert refused.json()["code"] == "grant_token_missing"
        internal = httpx.get(
            f"{base}{settings.ACCESSCTL_NGINX_INTERNAL_PREFIX}{grant.checkpoint.artifacts.get().storage_key}"
        )
        assert internal.status_code == 404  # the internal location is not reachable directly
    grant.refresh_from_db()
    assert grant.bytes_used == len(CONTENT)  # the range was already paid for: not again
