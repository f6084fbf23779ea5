"""Secrets stay out of the shipped gunicorn's access log, and out of caches (issue #12).

The log read here is the real one: gunicorn started with ``deploy/gunicorn.conf.py``
(``accesslog = "-"``: its standard output), in front of this worktree's code."""

import datetime
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests import factories as f
from tests.servers import free_port
from tests.workers import database_url, wait_for

ROOT = Path(__file__).resolve().parents[2]
# Names a redaction by name would miss (the encoded ones mean ``grant_token`` once decoded).
ENCODED_SPELLINGS = ("%67rant_token", "grant%5Ftoken", "grant_token[]", "grant-token", "grantToken")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_grant_token_never_reaches_the_access_log_nor_a_cache(tmp_path, settings):
    artifacts = tmp_path / "artifacts"
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(artifacts)},
        },
    }
    partner = f.partner()
    release = f.release(public_in=-datetime.timedelta(days=1))
    checkpoint = f.stored_checkpoint(release, {"shard.bin": b"w" * 4000})
    f.window(release, partner)
    grant = f.grant(checkpoint, partner, quota_bytes=100_000)
    secret = f.token(f.partner_user(partner))
    port, log = free_port(), tmp_path / "access.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "ACCESSCTL_DATA_DIR": str(settings.DATA_DIR),
        "ACCESSCTL_ARTIFACT_ROOT": str(artifacts),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "DJANGO_ALLOWED_HOSTS": "*",
        "PYTHONPATH": str(ROOT),
    }
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "-c",
                str(ROOT / "deploy" / "gunicorn.conf.py"),
                "accessctl.wsgi",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                wait_for(lambda: _answers(client), what="gunicorn", timeout=60)
                auth = {"Authorization": f"Bearer {secret}"}
                listing = client.get("/api/v1/grants/", headers=auth)
                detail = client.get(f"/api/v1/grants/{grant.pk}", headers=auth)
                for answer in (listing, detail):
                    assert answer.status_code == 200
                    assert answer.headers["cache-control"] == "no-store"
                token = detail.json()["token"]
                url = f"/api/v1/grants/{grant.pk}/files/shard.bin"
                in_header = client.get(url, headers={**auth, "X-Grant-Token": token})
                assert in_header.status_code == 200
                in_query = client.get(f"{url}?grant_token={token}", headers=auth)
                assert in_query.status_code == 400
                assert in_query.json()["code"] == "grant_token_in_query"
                # Any spelling is blanked from the log (this one is not a parameter the API
                # knows, so the request is refused as having no grant token).
                shouted = client.get(f"{url}?x=1&GRANT_TOKEN={token}", headers=auth)
                assert shouted.status_code == 403
                # Nor any other way to write it: the log has no query string at all.
                for spelling in ENCODED_SPELLINGS:
                    answer = client.get(f"{url}?{spelling}={token}", headers=auth)
                    assert answer.status_code in (400, 403), spelling
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    written = log.read_text()
    assert f"/api/v1/grants/{grant.pk}/files/shard.bin" in written  # the log is the real one
    assert "?" not in written and "grant_token" not in written.lower()  # no query string
    assert token not in written
    assert token.split(".")[2] not in written  # not even its signature
    assert secret not in written


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False
