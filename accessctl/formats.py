"""Template filters for how people are shown sizes and times, in every template
(``TEMPLATES`` ``builtins``): the portal's pages and the emails use the same functions
as the CLI (``accessctl_wire.formats``).

``{{ grant.quota_bytes|size }}`` -> ``9.8 GiB``; ``{{ event.occurred_at|moment }}`` ->
``2026-11-29 16:40:05 UTC`` (``-`` for none).
"""

from datetime import datetime

from django import template

from accessctl_wire import formats

__all__ = ["moment", "register", "size"]

register = template.Library()


@register.filter
def size(n: int | None) -> str:
    """Bytes in binary units, labelled (``KiB``, ``MiB``, ``GiB``); ``-`` for none."""
    return "-" if n is None or n == "" else formats.size(int(n))


@register.filter
def moment(at: datetime | None) -> str:
    """A time to the second, in UTC, saying so; ``-`` for none."""
    return formats.moment(at or None)
