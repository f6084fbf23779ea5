"""Errors an action raises when it refuses a change; ``code`` is stable and registered
(``accessctl_wire.codes``), and decides the API's status."""

from typing import TYPE_CHECKING

from accessctl.codes import Code, registered, status_of

if TYPE_CHECKING:  # the rules (model-free) import this module: no model at import time
    from accessctl.audit.models import AuditEvent

__all__ = ["ActionError", "ActionForbidden"]


class ActionError(Exception):
    """A refused change. Nothing was written when this is raised.

    ``code`` is a registry member (a string is accepted if registered: an unknown one
    raises here in development and tests); ``message`` defaults to the code's detail.
    """

    def __init__(
        self,
        code: Code | str,
        message: str | None = None,
        fields: dict[str, list[str]] | None = None,
    ) -> None:
        member = registered(code)
        message = message if message is not None else getattr(member, "detail", str(member))
        super().__init__(message)
        self.code = member
        self.message = message
        self.fields = fields or {}
        # The API's status for it, from the registry.
        self.status = status_of(member)
        # The refusal's audit event, once ``partners.refusals`` built it (see there).
        self.evidence: AuditEvent | None = None


class ActionForbidden(ActionError):
    def __init__(self, operation: str, reason: str = "") -> None:
        because = f": {reason}" if reason else ""
        super().__init__(Code.FORBIDDEN, f"You may not do {operation!r}{because}.")
        self.operation = operation
        self.reason = reason
