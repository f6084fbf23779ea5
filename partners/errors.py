"""Errors an action raises when it refuses a change; ``code`` is stable and documented."""

from typing import Any

__all__ = ["ActionError", "ActionForbidden"]


class ActionError(Exception):
    """A refused change. Nothing was written when this is raised."""

    status = 409

    def __init__(self, code: str, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or {}
        # The refusal's audit event, once ``partners.refusals`` built it (see there).
        self.evidence: Any = None


class ActionForbidden(ActionError):
    status = 403

    def __init__(self, operation: str, reason: str = "") -> None:
        because = f": {reason}" if reason else ""
        super().__init__("forbidden", f"You may not do {operation!r}{because}.")
        self.operation = operation
        self.reason = reason
