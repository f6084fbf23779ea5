"""Template filters for how people are shown sizes and times, in every template
(``TEMPLATES`` ``builtins``): the portal's pages and the emails use the same functions
as the CLI (``accessctl_wire.formats``).

``{{ grant.quota_bytes|size }}`` -> ``9.8 GiB``; ``{{ event.occurred_at|moment }}`` ->
``2026-11-29 16:40:05 UTC`` (``-`` for none).
"""

import re
from datetime import datetime
from typing import Any

from django import template

from accessctl_wire import formats

__all__ = ["BYTE_FIELDS", "is_byte_field", "moment", "reformatted", "register", "shown", "size"]

# Byte counts by name, besides every ``*_bytes``: shown as sizes wherever a value is shown
# by its field's name (audit changes, read-only fields, list columns).
BYTE_FIELDS = frozenset({"size", "bytes", "bytes_used", "bytes_left", "charged", "byte_count"})
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")

register = template.Library()


@register.filter
def size(n: int | None) -> str:
    """Bytes in binary units, labelled (``KiB``, ``MiB``, ``GiB``); ``-`` for none."""
    return "-" if n is None or n == "" else formats.size(int(n))


@register.filter
def moment(at: datetime | None) -> str:
    """A time to the second, in UTC, saying so; ``-`` for none."""
    return formats.moment(at or None)


def is_byte_field(name: str) -> bool:
    """Whether a value named ``name`` is a count of bytes (``quota_bytes``, ``size``)."""
    return name.endswith("_bytes") or name in BYTE_FIELDS


def shown(value: Any, name: str = "") -> str:
    """A stored value (a JSON value, a field's) as people read it: a byte count named as
    one (``is_byte_field``) in binary units, an RFC 3339 time as ``moment``, lists
    joined with commas, mappings as ``key: value``; ``-`` for none."""
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(shown(v, name) for v in value) or "(none)"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {shown(v, str(k))}" for k, v in value.items()) or "(none)"
    if isinstance(value, int) and not isinstance(value, bool) and is_byte_field(name):
        return formats.size(value)
    if isinstance(value, str) and _RFC3339.match(value):
        return formats.moment(datetime.fromisoformat(value.replace("Z", "+00:00")))
    return str(value)


def reformatted(value: Any, name: str = "") -> bool:
    """Whether ``shown`` shows ``value`` other than as stored (a time or a size in it)."""
    if isinstance(value, list | tuple):
        return any(reformatted(v, name) for v in value)
    if isinstance(value, dict):
        return any(reformatted(v, str(k)) for k, v in value.items())
    if isinstance(value, int) and not isinstance(value, bool):
        return is_byte_field(name)
    return isinstance(value, str) and bool(_RFC3339.match(value))
