"""Fair quota: a byte range paid for once is not paid for again within its lease.

A grant's quota is debited when bytes are authorized, before they arrive. A retry, a
resume after a crash, or a fresh presigned URL asks again for bytes already paid for;
charging them again would burn the quota on failures. So each (grant, file) has a
*lease*: the byte intervals already charged, from ``opened_at`` to ``expires_at``.
Re-requesting covered bytes within the lease costs nothing; bytes outside it cost their
length. The lease is bounded, so covered bytes cannot be fetched endlessly for free:

- it lasts ``seconds`` (docs/decisions.md: ``ACCESSCTL_DOWNLOAD_LEASE_SECONDS``) from the
  first bytes it covers;
- it allows ``max_reauthorizations`` requests that touch covered bytes
  (``ACCESSCTL_DOWNLOAD_LEASE_REAUTHORIZATIONS``);
- it holds at most ``MAX_INTERVALS`` disjoint intervals.

When any bound is reached the next request opens a new lease and pays in full: the quota
then counts a second download of the file, as it should.

Pure: plain values in, plain values out; ``partners.actions.downloads`` reads and writes
the lease row under its lock.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["MAX_INTERVALS", "Interval", "LeaseCharge", "LeaseRead", "LeaseState", "lease_charge"]

# [start, end): bytes start..end-1 of the file.
Interval = tuple[int, int]
MAX_INTERVALS = 256


@dataclass(frozen=True, slots=True)
class LeaseState:
    """A lease as stored; ``opened_at`` is ``None`` for a file never authorized."""

    opened_at: datetime | None
    expires_at: datetime | None
    covered: Sequence[Interval]
    reauthorizations: int


@dataclass(frozen=True, slots=True)
class LeaseRead:
    """A (grant, file) lease as read with the grant (``queries.download_target``): its row
    id (``None``: the file has no lease row yet) and its state then. The debit writes the
    lease only if its row still holds ``state`` (else it decides again under the row's
    lock), so the read may be stale but is never trusted stale."""

    id: int | None
    state: LeaseState


@dataclass(frozen=True, slots=True)
class LeaseCharge:
    """What one request costs (``charge``, bytes) and the lease to store if it is allowed."""

    charge: int
    lease: LeaseState
    renewed: bool  # a new lease was opened (first request, or a bound was reached)


def _merge(intervals: Sequence[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _uncovered(covered: Sequence[Interval], start: int, end: int) -> int:
    """Bytes of [start, end) outside ``covered`` (sorted, disjoint)."""
    inside = sum(max(0, min(end, b) - max(start, a)) for a, b in covered)
    return (end - start) - inside


def lease_charge(
    state: LeaseState,
    *,
    start: int,
    end: int,
    now: datetime,
    seconds: int,
    max_reauthorizations: int,
) -> LeaseCharge:
    """The cost of authorizing bytes [``start``, ``end``) of a file at ``now``.

    ``end - start`` bytes if the lease is absent, expired or exhausted (then the lease is
    renewed: it covers only this request); otherwise the bytes not yet covered. A request
    that touches covered bytes counts as a re-authorization. ``start <= end``; an empty
    request (HEAD) costs 0 and leaves the lease as it was.
    """
    if end <= start:
        return LeaseCharge(0, state, renewed=False)
    covered = list(state.covered)
    live = (
        state.opened_at is not None
        and state.expires_at is not None
        and now < state.expires_at
        and state.reauthorizations < max_reauthorizations
    )
    if live:
        charge = _uncovered(covered, start, end)
        touches = charge < end - start
        merged = _merge([*covered, (start, end)])
        if len(merged) <= MAX_INTERVALS:
            lease = LeaseState(
                opened_at=state.opened_at,
                expires_at=state.expires_at,
                covered=merged,
                reauthorizations=state.reauthorizations + int(touches),
            )
            return LeaseCharge(charge, lease, renewed=False)
    opened = LeaseState(
        opened_at=now,
        expires_at=now + timedelta(seconds=seconds),
        covered=[(start, end)],
        reauthorizations=0,
    )
    return LeaseCharge(end - start, opened, renewed=True)
