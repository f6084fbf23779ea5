"""One way to show sizes and times to people: portal, emails and CLI share these."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from accessctl_wire import formats


@pytest.mark.parametrize(
    ("n", "shown"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (10 * 1024**2, "10.0 MiB"),
        (int(9.8 * 1024**3), "9.8 GiB"),
        (3 * 1024**4, "3.0 TiB"),
        (2048 * 1024**5, "2048.0 PiB"),  # the largest unit takes what is left
        (-1024, "-1.0 KiB"),
    ],
)
def test_sizes_are_binary_and_labelled(n, shown):
    assert formats.size(n) == shown


def test_times_are_to_the_second_in_utc_and_say_so():
    at = datetime(2026, 11, 29, 16, 40, 5, 999_999, tzinfo=UTC)
    assert formats.moment(at) == "2026-11-29 16:40:05 UTC"
    # Another zone is shown as the same instant in UTC.
    paris = at.astimezone(timezone(timedelta(hours=1)))
    assert formats.moment(paris) == "2026-11-29 16:40:05 UTC"


def test_no_time_is_a_dash():
    assert formats.moment(None) == "-"


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="naive"):
        formats.moment(datetime(2026, 11, 29, 16, 40, 5))  # noqa: DTZ001
