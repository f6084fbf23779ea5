"""Fair quota (``partners.rules.leases.lease_charge``): what one request costs, as a table."""

from datetime import UTC, datetime, timedelta

import pytest

from partners.rules.leases import MAX_INTERVALS, LeaseState, lease_charge

T0 = datetime(2026, 11, 1, tzinfo=UTC)
DAY = 86_400
NONE = LeaseState(opened_at=None, expires_at=None, covered=(), reauthorizations=0)


def live(covered, *, reauthorizations=0, opened=T0):
    return LeaseState(
        opened_at=opened,
        expires_at=opened + timedelta(seconds=DAY),
        covered=tuple(covered),
        reauthorizations=reauthorizations,
    )


def charge(state, start, end, *, at=T0 + timedelta(hours=1), limit=3):
    return lease_charge(
        state, start=start, end=end, now=at, seconds=DAY, max_reauthorizations=limit
    )


@pytest.mark.parametrize(
    ("state", "start", "end", "cost", "covered", "reauthorizations", "renewed"),
    [
        # A file never asked for: its length, and a lease opens over it.
        (NONE, 0, 100, 100, [(0, 100)], 0, True),
        # Bytes already paid for: free, counted as a re-authorization.
        (live([(0, 100)]), 0, 100, 0, [(0, 100)], 1, False),
        (live([(0, 100)]), 10, 20, 0, [(0, 100)], 1, False),
        # Partly paid: only the new bytes, and the lease grows.
        (live([(0, 100)]), 50, 150, 50, [(0, 150)], 1, False),
        # Adjacent new bytes (the next chunk) are not a re-authorization.
        (live([(0, 100)]), 100, 200, 100, [(0, 200)], 0, False),
        # A gap stays a gap; bridging it pays for the gap only.
        (live([(0, 10)]), 20, 30, 10, [(0, 10), (20, 30)], 0, False),
        (live([(0, 10), (20, 30)]), 0, 30, 10, [(0, 30)], 1, False),
        # The re-authorization bound: the lease is used up, the request pays in full.
        (live([(0, 100)], reauthorizations=3), 0, 100, 100, [(0, 100)], 0, True),
        # A HEAD (no bytes) costs nothing and changes nothing.
        (live([(0, 100)]), 5, 5, 0, [(0, 100)], 0, False),
    ],
)
def test_a_request_costs_the_bytes_its_lease_does_not_cover(
    state, start, end, cost, covered, reauthorizations, renewed
):
    result = charge(state, start, end)
    assert result.charge == cost
    assert list(result.lease.covered) == covered
    assert result.lease.reauthorizations == reauthorizations
    assert result.renewed is renewed


def test_an_expired_lease_charges_again_and_opens_a_new_one():
    at = T0 + timedelta(seconds=DAY)  # the instant it expires
    result = charge(live([(0, 100)]), 0, 100, at=at)
    assert (result.charge, result.renewed) == (100, True)
    assert result.lease.opened_at == at
    assert result.lease.expires_at == at + timedelta(seconds=DAY)


def test_a_lease_holds_a_bounded_number_of_intervals():
    full = live([(2 * i, 2 * i + 1) for i in range(MAX_INTERVALS)])
    inside = charge(full, 0, 1)  # a covered byte: still free
    assert (inside.charge, inside.renewed) == (0, False)
    beyond = charge(full, 10 * MAX_INTERVALS, 10 * MAX_INTERVALS + 1)  # one more interval
    assert (beyond.charge, beyond.renewed) == (1, True)
    assert list(beyond.lease.covered) == [(10 * MAX_INTERVALS, 10 * MAX_INTERVALS + 1)]
