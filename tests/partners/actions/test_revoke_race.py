"""A download attempted after a revoke call has returned is always refused.

Downloaders hammer the API from several threads (each its own database connection)
while the main thread revokes; every request that started after the revoke call
returned must be refused with the revocation's code, for each kind of revocation.
"""

import os
import threading
import time
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from partners import actions
from partners.models import AccessToken
from tests import factories as f

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

DAY = timedelta(days=1)
ROUNDS = 5
DOWNLOADERS = 4


def revoke(kind, world):
    officer = world["officer"]
    match kind:
        case "token":
            token = AccessToken.objects.get(prefix=world["secret"][:12])
            actions.revoke_token(actor=officer, token=token, reason="race")
        case "grant":
            actions.revoke_grant(actor=officer, grant=world["grant"], reason="race")
        case "partner":
            actions.suspend_partner(actor=officer, partner=world["partner"], reason="race")
        case "checkpoint":
            actions.pull_checkpoint(actor=officer, checkpoint=world["checkpoint"], reason="race")
        case "release":
            actions.withdraw_release(actor=officer, release=world["release"], reason="race")


EXPECTED = {  # the answer to every request after the revoke returned
    "token": (401, "token_revoked"),
    "grant": (403, "grant_revoked"),
    "partner": (403, "partner_suspended"),
    "checkpoint": (403, "checkpoint_pulled"),
    "release": (403, "release_withdrawn"),
}


def make_world(n):
    partner = f.partner(f"racer-{n}")
    release = f.release(f"race-{n}", public_in=-DAY)
    checkpoint = f.stored_checkpoint(release, {"shard.bin": os.urandom(4096)})
    f.window(release, partner)
    grant = f.grant(checkpoint, partner, quota_bytes=10**9)
    secret = f.token(f.partner_user(partner))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    token = client.get(f"/api/v1/grants/{grant.pk}").json()["token"]
    return {
        "partner": partner,
        "release": release,
        "checkpoint": checkpoint,
        "grant": grant,
        "secret": secret,
        "grant_token": token,
        "officer": f.staff("Security officer"),
    }


def downloader(world, stop, results):
    from django.db import connection

    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {world['secret']}", HTTP_X_GRANT_TOKEN=world["grant_token"]
    )
    url = f"/api/v1/grants/{world['grant'].pk}/files/shard.bin"
    try:
        while not stop.is_set():
            started = time.perf_counter()
            response = client.get(url, HTTP_RANGE="bytes=0-0")
            if response.streaming:
                b"".join(response.streaming_content)
            code = response.json()["code"] if response.status_code >= 400 else None
            results.append((started, response.status_code, code))
    finally:
        connection.close()


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_no_download_succeeds_after_the_revoke_call_returns(kind, settings):
    settings.ACCESSCTL_API_RATE = "1000000/min"
    for n in range(ROUNDS):
        world = make_world(f"{kind}-{n}")
        stop, results = threading.Event(), []
        threads = [
            threading.Thread(target=downloader, args=(world, stop, results))
            for _ in range(DOWNLOADERS)
        ]
        for thread in threads:
            thread.start()
        while sum(1 for _, status, _ in results if status == 206) < 8:
            time.sleep(0.005)
        revoke(kind, world)
        returned = time.perf_counter()
        while sum(1 for started, *_ in list(results) if started > returned) < 16:
            time.sleep(0.005)
        stop.set()
        for thread in threads:
            thread.join()
        after = [(status, code) for started, status, code in results if started > returned]
        assert after, "no download was attempted after the revoke call returned"
        assert set(after) == {EXPECTED[kind]}, f"round {n}: {set(after)}"
