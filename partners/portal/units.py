"""Sizes and times as the portal's home pages show them: binary units, labelled
(``1.5 GiB``), and ISO-like UTC times (``2026-11-29 16:05 UTC``)."""

from datetime import UTC, datetime, timedelta

__all__ = ["age", "binary_size", "utc", "utc_date"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def binary_size(size: int) -> str:
    """``size`` bytes in the largest binary unit it reaches (IEC 80000-13), at most one
    decimal, trailing ``.0`` dropped: ``0 B``, ``1023 B``, ``1.5 KiB``, ``4 GiB``."""
    value = float(size)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            text = f"{value:.1f}".removesuffix(".0") if unit != "B" else f"{int(value)}"
            return f"{text} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def utc(moment: datetime | None, *, seconds: bool = False) -> str:
    """``moment`` in UTC, ``YYYY-MM-DD HH:MM[:SS] UTC``; empty for ``None``."""
    if moment is None:
        return ""
    fmt = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return f"{moment.astimezone(UTC):{fmt}} UTC"


def utc_date(moment: datetime) -> str:
    """``moment``'s UTC date, ``YYYY-MM-DD``."""
    return f"{moment.astimezone(UTC):%Y-%m-%d}"


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
