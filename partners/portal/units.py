"""Sizes and times as the portal's home, matrix and timeline show them: the one way of
``accessctl_wire.formats`` (``1.5 GiB``; ``2026-11-29 16:05:00 UTC``), plus a day alone
(``2026-11-29``, UTC) where a cell or a bar has room for no more, and an age."""

from datetime import UTC, datetime, timedelta

from accessctl_wire.formats import moment, size

__all__ = ["age", "binary_size", "utc", "utc_date"]


def binary_size(n: int) -> str:
    """``n`` bytes in binary units, labelled (``accessctl_wire.formats.size``)."""
    return size(n)


def utc(at: datetime | None) -> str:
    """``at`` to the second in UTC, saying so (``accessctl_wire.formats.moment``); empty
    for ``None``."""
    return moment(at) if at is not None else ""


def utc_date(at: datetime) -> str:
    """``at``'s UTC day, ``YYYY-MM-DD``."""
    return f"{at.astimezone(UTC):%Y-%m-%d}"


def age(delta: timedelta) -> str:
    """A duration to the largest whole unit: ``42 s``, ``5 min``, ``3 h``, ``2 days``."""
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
