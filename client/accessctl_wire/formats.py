"""How people are shown sizes and times: one way, in the portal, emails and the CLI.

Sizes in binary units, labelled (``B``, ``KiB``, ``MiB``, ``GiB``, ``TiB``: powers of
1024, IEC 80000-13), never the ambiguous ``MB``. Times ISO-like to the second, in UTC and
saying so: ``2026-11-29 16:40:05 UTC`` (RFC 3339's date and time with a space, as its
section 5.6 allows, and the zone spelled out for a reader). The machine formats (the
API's RFC 3339 strings, byte counts as integers) are unchanged; these are for people.
"""

from datetime import UTC, datetime

__all__ = ["SIZE_UNITS", "moment", "size"]

SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def size(n: int) -> str:
    """``n`` bytes for a person: ``"512 B"``, ``"1.5 KiB"``, ``"9.8 GiB"`` (one decimal
    above bytes). A negative count is shown with its sign (``"-1.0 KiB"``)."""
    sign = "-" if n < 0 else ""
    value = float(abs(n))
    for unit in SIZE_UNITS:
        if unit == "B" and value < 1024:
            return f"{sign}{int(value)} B"
        if value < 1024 or unit == SIZE_UNITS[-1]:
            return f"{sign}{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover - the last unit returns


def moment(at: datetime | None) -> str:
    """A time for a person: ``"2026-11-29 16:40:05 UTC"`` (to the second, in UTC);
    ``"-"`` for none. A naive time is refused (``ValueError``): it names no instant."""
    if at is None:
        return "-"
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a naive time names no instant")
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
