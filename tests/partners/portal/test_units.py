"""The home, matrix and timeline show sizes and times the one way
(``accessctl_wire.formats``), a day alone as ``YYYY-MM-DD`` in UTC, ages to the largest
unit."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from partners.portal.units import age, binary_size, utc, utc_date


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (10_000, "9.8 KiB"),
     (3 * 1024**3 // 2, "1.5 GiB"), (4 * 1024**3, "4.0 GiB"), (5 * 1024**4, "5.0 TiB")],
)  # fmt: skip
def test_sizes_are_binary_and_labelled(size, shown):
    assert binary_size(size) == shown


def test_times_are_to_the_second_in_utc_whatever_zone_they_come_in():
    tokyo = datetime(2026, 11, 30, 1, 2, 3, tzinfo=timezone(timedelta(hours=9)))
    assert utc(tokyo) == "2026-11-29 16:02:03 UTC"
    assert utc_date(tokyo) == "2026-11-29"
    assert utc(None) == ""
    assert utc(datetime(2026, 1, 2, 3, 4, tzinfo=UTC)) == "2026-01-02 03:04:00 UTC"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0 s"), (119, "119 s"), (120, "2 min"), (7199, "119 min"), (7200, "2 h"),
     (2 * 86400 - 1, "47 h"), (2 * 86400, "2 days")],
)  # fmt: skip
def test_ages_use_the_largest_whole_unit(seconds, shown):
    assert age(timedelta(seconds=seconds)) == shown
