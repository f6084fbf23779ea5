"""What a rule returns: ``Success``, or ``Failure`` with a stable code and what to say.

Warehouse's caveats have the shape: each rule is a small function of plain values that
returns one of these, never raises and never reads the database. Callers turn a failure
into their own refusal: an action raises ``failure.error()`` (``ActionError``), a view
answers problem+json with the same code.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from partners.errors import ActionError

__all__ = ["SUCCESS", "Failure", "Result", "Success"]


@dataclass(frozen=True, slots=True)
class Success:
    allowed: Literal[True] = True

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Failure:
    """A refusal: ``code`` is a stable snake_case code (docs/decisions.md, docs/api.md)."""

    code: str
    message: str
    # Per-field messages, for forms and the API's ``fields`` member.
    fields: Mapping[str, list[str]] = field(default_factory=dict)
    # Extra problem+json members (e.g. ``opens_at``).
    extra: Mapping[str, Any] = field(default_factory=dict)
    allowed: Literal[False] = False

    def __bool__(self) -> bool:
        return False

    def error(self) -> ActionError:
        return ActionError(self.code, self.message, fields=dict(self.fields) or None)


SUCCESS = Success()

Result = Success | Failure
