"""Batch authorization (``authorize_downloads``) on a real PostgreSQL: its bulk path
answers, charges, stores leases and records events exactly as deciding the files one by
one would, and racing batches and single-file requests on one grant never over-debit it
nor deadlock (docs/decisions.md, *Fair quota*)."""

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from accessctl.audit.models import AuditEvent
from partners import actions, queries
from partners.actions import downloads
from partners.models import DownloadLease, Grant
from tests import factories as f

SIZES = [1_000 * (i + 1) for i in range(12)] + [0]
NAMES = [f"f{i:02d}.bin" for i in range(len(SIZES))]
BATCHES = 16
SINGLES = 32


def world(quota):
    partner = f.partner()
    release = f.release()
    files = {
        name: bytes([i]) * size for i, (name, size) in enumerate(zip(NAMES, SIZES, strict=True))
    }
    checkpoint = f.stored_checkpoint(release, files)
    f.window(release, partner)
    return f.grant(checkpoint, partner, quota_bytes=quota)


def batch(grant, files):
    """``files``: (path, start, end) as the API takes them; as the view calls it."""
    read, _ = queries.download_target(grant.partner, grant.pk, "")
    found = queries.download_files(read, [p for p, _, _ in files])
    return actions.authorize_downloads(
        actor=None,
        grant=read,
        asks=[actions.FileAsk(p, found.get(p), s, e) for p, s, e in files],
        client_address="203.0.113.5",
        details={"via": "batch"},
    )


def single(grant, path, start, length):
    read, artifact = queries.download_target(grant.partner, grant.pk, path)
    return actions.authorize_download(
        actor=None,
        grant=read,
        artifact=artifact,
        requested_bytes=length,
        offset=start,
        client_address="203.0.113.5",
        fresh=True,
    )


def charged_by_file(grant):
    out: dict[str, int] = {}
    for e in AuditEvent.objects.filter(action="download.authorized", target_id=str(grant.pk)):
        out[e.changes["artifact"]] = out.get(e.changes["artifact"], 0) + e.changes.get("charged", 0)
    return out


def used(grant):
    return Grant.objects.values_list("bytes_used", flat=True).get(pk=grant.pk)


# A batch that runs the quota out part way (a later, smaller file still fits), with
# files already leased, ranges, a missing file, a range past the end and an empty file.
SCENARIO = [
    [("f00.bin", None, None), ("f03.bin", 0, 1_499)],
    [
        ("f11.bin", None, None),
        ("f00.bin", None, None),  # leased: free
        ("f03.bin", 1_000, None),  # half leased: pays 2 500
        ("nope.bin", None, None),
        ("f05.bin", 9_999, None),  # past the end: 416
        ("f09.bin", None, None),  # does not fit
        ("f12.bin", None, None),  # empty
        ("f01.bin", None, None),  # fits after the refusal
        ("f10.bin", 0, 99),
        ("f02.bin", None, None),
    ],
]


def run_scenario(grant):
    return [
        [(a.ask.path, a.code, a.status, a.detail, a.start, a.end) for a in batch(grant, files)]
        for files in SCENARIO
    ]


def trail(grant):
    events = AuditEvent.objects.filter(target_id=str(grant.pk), action__startswith="download.")
    leases = DownloadLease.objects.filter(grant=grant).order_by("artifact__path")
    return (
        used(grant),
        [(e.action, e.outcome, e.reason, e.changes) for e in events.order_by("pk")],
        # A refused new file's empty row: left by the one-statement-at-a-time path inside
        # a caller's transaction (as here), not by a server's request nor the bulk path.
        [(x.artifact.path, x.covered, x.reauthorizations) for x in leases if x.covered],
    )


@pytest.mark.django_db
def test_the_bulk_path_decides_as_one_request_per_file(monkeypatch):
    quota = 1_000 + 1_500 + 12_000 + 2_500 + 2_000 + 100 + 500
    bulk = world(quota)
    bulk_answers = run_scenario(bulk)
    monkeypatch.setattr(downloads, "_authorize_bulk", lambda **_: None)
    one_by_one = world(quota)
    answers = run_scenario(one_by_one)
    assert bulk_answers == answers
    assert [a[1] for a in answers[1]] == [
        "",
        "",
        "",
        "file_not_found",
        "range_not_satisfiable",
        "quota_exhausted",
        "",
        "",
        "",
        "quota_exhausted",
    ]
    got, want = trail(bulk), trail(one_by_one)
    assert got[0] == want[0] == quota - 500
    assert got[1] == want[1]
    assert got[2] == want[2]


@pytest.mark.usefixtures("many_connections")  # dozens of connections at once
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("quota", [sum(SIZES) // 2, sum(SIZES) + 1])
@pytest.mark.parametrize("seed", [1, 2])
def test_racing_batches_and_single_requests_never_over_debit(quota, seed):
    grant = world(quota)
    start = threading.Barrier(BATCHES + SINGLES)
    rng = random.Random(quota + seed)  # noqa: S311 (the orders of a test, not a secret)
    # Half the batches ask for every file, half for 4 files of their own choosing: batches
    # of disjoint new files race too (each makes lease rows referencing the grant).
    orders = [rng.sample(NAMES, len(NAMES) if i % 2 else 4) for i in range(BATCHES)]

    def race(i: int) -> int:
        try:
            start.wait()
            if i < BATCHES:  # whole files, or a first half, in a shuffled order
                files = [(p, None, None if j % 3 else 499) for j, p in enumerate(orders[i])]
                return sum(a.allowed for a in batch(grant, files))
            name = NAMES[i % (len(NAMES) - 1)]
            size = SIZES[NAMES.index(name)]
            return int(bool(single(grant, name, 0 if i % 2 else size // 2, size // 2)))
        finally:
            connections.close_all()

    with ThreadPoolExecutor(BATCHES + SINGLES) as pool:
        list(pool.map(race, range(BATCHES + SINGLES)))
    charged = charged_by_file(grant)
    assert used(grant) == sum(charged.values()) <= quota
    if quota > sum(SIZES):
        assert used(grant) == sum(SIZES)  # every byte paid once, no file twice
    for lease in DownloadLease.objects.filter(grant=grant):  # what was charged is covered
        assert sum(b - a for a, b in lease.covered) == charged.get(lease.artifact.path, 0)
    events = AuditEvent.objects.filter(target_id=str(grant.pk), action__startswith="download.")
    assert events.count() == sum(map(len, orders)) + SINGLES  # one per file asked
    denied = events.filter(action="download.denied").exclude(changes__artifact="f12.bin")
    assert set(denied.values_list("reason", flat=True)) <= {"quota_exhausted"}  # no deadlock
