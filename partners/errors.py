"""Errors an action raises when it refuses a change; ``code`` is stable and documented."""

__all__ = ["ActionError", "ActionForbidden"]


class ActionError(Exception):
    """A refused change. Nothing was written when this is raised."""

    status = 409

    def __init__(self, code: str, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or {}


class ActionForbidden(ActionError):
    status = 403

    def __init__(self, permission: str) -> None:
        super().__init__("forbidden", f"You lack the permission {permission!r} for this change.")
