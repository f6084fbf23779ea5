"""The byte quota is exact under concurrency, on a real PostgreSQL."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from accessctl.audit.models import AuditEvent
from partners import actions
from partners.models import Grant
from tests import factories as f

RACERS = 64
REQUEST = 1000


@pytest.mark.usefixtures("many_connections")  # dozens of connections at once
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("quota", [10 * REQUEST, 10 * REQUEST + 999, 0 + REQUEST - 1])
def test_racing_requests_never_authorize_more_than_the_quota(quota):
    partner = f.partner()
    release = f.release()
    checkpoint = f.checkpoint(release)
    f.window(release, partner)
    grant = f.grant(checkpoint, partner, quota_bytes=quota)
    artifact = checkpoint.artifacts.first()
    start = threading.Barrier(RACERS)

    def race(_: int) -> bool:
        try:
            start.wait()
            return actions.authorize_download(
                actor=None,
                grant=grant,
                artifact=artifact,
                requested_bytes=REQUEST,
                client_address="127.0.0.1",
            ).allowed
        finally:
            connections.close_all()

    with ThreadPoolExecutor(RACERS) as pool:
        results = list(pool.map(race, range(RACERS)))

    grant.refresh_from_db()
    allowed = sum(results)
    assert allowed == quota // REQUEST
    assert grant.bytes_used == allowed * REQUEST <= quota
    assert AuditEvent.objects.filter(action="download.authorized").count() == allowed
    denied = AuditEvent.objects.filter(action="download.denied")
    assert denied.count() == RACERS - allowed
    assert set(denied.values_list("reason", flat=True)) <= {"quota_exhausted"}
    assert Grant.objects.filter(pk=grant.pk, bytes_used__lte=quota).exists()
