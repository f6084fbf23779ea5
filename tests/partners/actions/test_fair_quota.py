"""Fair quota on a real PostgreSQL: bytes paid for once are not paid for again within the
file's lease (a retry, a resume after a crash, a refreshed presigned URL), exactly, under
concurrency; the lease is bounded (docs/decisions.md, *Fair quota*)."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connections
from django.test import override_settings
from django.utils import timezone

from accessctl.audit.models import AuditEvent
from partners import actions
from partners.models import DownloadLease, Grant
from tests import factories as f

SIZE = 10_000
RACERS = 64


def world(quota):
    partner = f.partner()
    release = f.release()
    checkpoint = f.stored_checkpoint(release, {"w.bin": b"w" * SIZE, "x.bin": b"x" * SIZE})
    f.window(release, partner)
    grant = f.grant(checkpoint, partner, quota_bytes=quota)
    return grant, checkpoint.artifacts.get(path="w.bin"), checkpoint.artifacts.get(path="x.bin")


def ask(grant, artifact, start, length):
    return actions.authorize_download(
        actor=None,
        grant=grant,
        artifact=artifact,
        requested_bytes=length,
        offset=start,
        client_address="203.0.113.5",
    )


def used(grant):
    return Grant.objects.values_list("bytes_used", flat=True).get(pk=grant.pk)


@pytest.mark.django_db
def test_a_resume_pays_only_for_the_missing_bytes():
    grant, w, _ = world(quota=SIZE)  # exactly one copy of the file
    chunk = 1_000
    for start in range(0, 6 * chunk, chunk):  # six chunks, then the client is killed
        assert ask(grant, w, start, chunk)
    # The resume asks again for the chunk it was writing, then the rest.
    for start in range(5 * chunk, SIZE, chunk):
        assert ask(grant, w, start, chunk), start
    assert used(grant) == SIZE
    # A whole-file retry after that is free too; a byte of another file is not.
    assert ask(grant, w, 0, SIZE)
    refused = ask(grant, _other := w.checkpoint.artifacts.get(path="x.bin"), 0, 1)
    assert not refused and str(refused.reason) == "quota_exhausted"
    assert used(grant) == SIZE
    charged = AuditEvent.objects.filter(action="download.authorized").values_list(
        "changes__charged", flat=True
    )
    assert sum(charged) == SIZE


@pytest.mark.django_db
def test_a_lease_ends_by_time_and_by_reauthorizations():
    grant, w, _ = world(quota=10 * SIZE)
    assert ask(grant, w, 0, SIZE)
    with override_settings(ACCESSCTL_DOWNLOAD_LEASE_REAUTHORIZATIONS=2):
        assert ask(grant, w, 0, SIZE) and ask(grant, w, 0, SIZE)
        assert used(grant) == SIZE
        assert ask(grant, w, 0, SIZE)  # the third re-request opens a new lease: paid
        assert used(grant) == 2 * SIZE
    DownloadLease.objects.filter(grant=grant).update(expires_at=timezone.now() - timedelta(1))
    assert ask(grant, w, 0, 1)
    assert used(grant) == 2 * SIZE + 1


@pytest.mark.django_db
def test_a_refused_request_leaves_the_lease_as_it_was():
    grant, w, _ = world(quota=SIZE)
    assert ask(grant, w, 0, SIZE - 1)
    lease = DownloadLease.objects.get(grant=grant, artifact=w)
    actions.revoke_grant(actor=None, grant=grant, reason="test")
    assert not ask(grant, w, SIZE - 1, 1)
    assert DownloadLease.objects.get(pk=lease.pk).covered == lease.covered


@pytest.mark.usefixtures("many_connections")  # dozens of connections at once
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_racing_retries_of_one_file_pay_for_it_once():
    grant, w, _ = world(quota=SIZE)
    start = threading.Barrier(RACERS)

    def race(_: int) -> bool:
        try:
            start.wait()
            return bool(ask(grant, w, 0, SIZE))
        finally:
            connections.close_all()

    with ThreadPoolExecutor(RACERS) as pool:
        results = list(pool.map(race, range(RACERS)))
    assert all(results)
    assert used(grant) == SIZE


@pytest.mark.usefixtures("many_connections")  # dozens of connections at once
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_racing_new_ranges_never_authorize_more_than_the_quota():
    chunk = 1_000
    grant, w, x = world(quota=SIZE + 5 * chunk - 1)  # one file and 4.999 chunks of the other
    start = threading.Barrier(RACERS)

    def race(i: int) -> bool:
        try:
            start.wait()
            artifact, offset = (w, i) if i < SIZE // chunk else (x, i - SIZE // chunk)
            return bool(ask(grant, artifact, (offset % 10) * chunk, chunk))
        finally:
            connections.close_all()

    with ThreadPoolExecutor(RACERS) as pool:
        list(pool.map(race, range(RACERS)))
    charged = sum(
        AuditEvent.objects.filter(action="download.authorized").values_list(
            "changes__charged", flat=True
        )
    )
    assert used(grant) == charged <= grant.quota_bytes
    assert used(grant) >= grant.quota_bytes - chunk + 1  # nothing left that a chunk fits in


# The same races through the read a request makes (``queries.download_target``: the grant,
# the file and its lease in one statement), so the debit is the one-statement path of a
# server (``_charge_read``) with its fallback under the lease row's lock.


def ask_as_a_request(grant, artifact, start, length):
    from partners import queries

    read_grant, read_artifact = queries.download_target(grant.partner, grant.pk, artifact.path)
    assert read_artifact is not None and read_artifact.lease_read is not None
    return actions.authorize_download(
        actor=None,
        grant=read_grant,
        artifact=read_artifact,
        requested_bytes=length,
        offset=start,
        client_address="203.0.113.5",
        fresh=True,
    )


@pytest.mark.usefixtures("many_connections")  # dozens of connections at once
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("lease_first", [False, True])
def test_racing_requests_read_with_the_grant_pay_for_a_file_once(lease_first):
    grant, w, _ = world(quota=SIZE)
    if lease_first:  # the lease row exists (a first chunk): the held-row statement races
        assert ask_as_a_request(grant, w, 0, 10)
    start = threading.Barrier(RACERS)

    def race(_: int) -> bool:
        try:
            start.wait()
            return bool(ask_as_a_request(grant, w, 0, SIZE))
        finally:
            connections.close_all()

    with ThreadPoolExecutor(RACERS) as pool:
        results = list(pool.map(race, range(RACERS)))
    assert all(results)
    assert used(grant) == SIZE
    charged = AuditEvent.objects.filter(action="download.authorized").values_list(
        "changes__charged", flat=True
    )
    assert sum(charged) == SIZE and len(charged) == RACERS + lease_first
    lease = DownloadLease.objects.get(grant=grant, artifact=w)
    assert [list(i) for i in lease.covered] == [[0, SIZE]]


@pytest.mark.usefixtures("many_connections")  # dozens of connections at once
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_racing_new_ranges_read_with_the_grant_never_authorize_more_than_the_quota():
    chunk = 1_000
    grant, w, x = world(quota=SIZE + 5 * chunk - 1)
    start = threading.Barrier(RACERS)

    def race(i: int) -> bool:
        try:
            start.wait()
            artifact, offset = (w, i) if i < SIZE // chunk else (x, i - SIZE // chunk)
            return bool(ask_as_a_request(grant, artifact, (offset % 10) * chunk, chunk))
        finally:
            connections.close_all()

    with ThreadPoolExecutor(RACERS) as pool:
        list(pool.map(race, range(RACERS)))
    charged = sum(
        AuditEvent.objects.filter(action="download.authorized").values_list(
            "changes__charged", flat=True
        )
    )
    assert used(grant) == charged <= grant.quota_bytes
    assert used(grant) >= grant.quota_bytes - chunk + 1
    denied = AuditEvent.objects.filter(action="download.denied")
    assert set(denied.values_list("reason", flat=True)) <= {"quota_exhausted"}
    for lease in DownloadLease.objects.filter(grant=grant):  # what was charged is covered
        covered = sum(b - a for a, b in lease.covered)
        paid = sum(
            AuditEvent.objects.filter(
                action="download.authorized", changes__artifact=lease.artifact.path
            ).values_list("changes__charged", flat=True)
        )
        assert covered == paid


@pytest.mark.usefixtures("many_connections")  # dozens of connections at once
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_stale_read_is_decided_again_and_charges_nothing_twice():
    from partners import queries

    grant, w, _ = world(quota=SIZE)
    stale_grant, stale = queries.download_target(grant.partner, grant.pk, "w.bin")
    assert ask(grant, w, 0, SIZE)  # the lease changed after the read
    decision = actions.authorize_download(
        actor=None,
        grant=stale_grant,
        artifact=stale,
        requested_bytes=SIZE,
        offset=0,
        client_address="203.0.113.5",
        fresh=True,
    )
    assert decision and used(grant) == SIZE
