"""The decision's vocabulary: ``Reason`` codes, what a refused partner is told, and the
``Decision`` the caller and download rules return.

The rules themselves are in ``partners.rules`` (one pure function each); the names
imported from here before they moved still work. Every reason code is documented in
docs/decisions.md. Codes never change once shipped.
"""

from dataclasses import dataclass
from enum import StrEnum
from importlib import import_module
from typing import TYPE_CHECKING, Any

from accessctl_wire.codes import Code

__all__ = [
    "ALLOW",
    "DETAIL",
    "CallerFacts",
    "Decision",
    "DownloadFacts",
    "Reason",
    "StaffCallerFacts",
    "decide",
    "decide_caller",
    "decide_staff_caller",
    "deny",
    "jurisdiction_allowed",
]


class Reason(StrEnum):
    """The rules' reasons: each is a member of the code registry (``accessctl_wire.codes``),
    which holds its status, exit family and detail."""

    TOKEN_EXPIRED = Code.TOKEN_EXPIRED.value
    TOKEN_REVOKED = Code.TOKEN_REVOKED.value
    PARTNER_SUSPENDED = Code.PARTNER_SUSPENDED.value
    PARTNER_TERMINATED = Code.PARTNER_TERMINATED.value
    NDA_EXPIRED = Code.NDA_EXPIRED.value
    JURISDICTION_BLOCKED = Code.JURISDICTION_BLOCKED.value
    RELEASE_WITHDRAWN = Code.RELEASE_WITHDRAWN.value
    ADDRESS_NOT_ALLOWED = Code.ADDRESS_NOT_ALLOWED.value
    CHECKPOINT_PULLED = Code.CHECKPOINT_PULLED.value
    WINDOW_NOT_OPEN = Code.WINDOW_NOT_OPEN.value
    WINDOW_CLOSED = Code.WINDOW_CLOSED.value
    GRANT_REVOKED = Code.GRANT_REVOKED.value
    GRANT_EXPIRED = Code.GRANT_EXPIRED.value
    QUOTA_EXHAUSTED = Code.QUOTA_EXHAUSTED.value
    STAFF_ACCESS_ENDED = Code.STAFF_ACCESS_ENDED.value


# What a refused partner is told, per reason: the registry's detail.
DETAIL: dict[Reason, str] = {reason: Code[reason.name].detail for reason in Reason}


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: Reason | None = None

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def detail(self) -> str:
        """What the partner is told when refused."""
        return DETAIL[self.reason] if self.reason else ""


ALLOW = Decision(allowed=True)


def deny(reason: Reason) -> Decision:
    return Decision(allowed=False, reason=reason)


# The rules moved to ``partners.rules``; these names keep ``from partners.decisions import
# decide`` working. Resolved on first use: the rules import ``Reason`` from here, so an
# import at the top would be a cycle.
_MOVED = {
    "CallerFacts": "partners.rules.caller",
    "StaffCallerFacts": "partners.rules.caller",
    "decide_caller": "partners.rules.caller",
    "decide_staff_caller": "partners.rules.caller",
    "DownloadFacts": "partners.rules.download",
    "decide": "partners.rules.download",
    "jurisdiction_allowed": "partners.rules.visibility",
}

if TYPE_CHECKING:
    from partners.rules.caller import (
        CallerFacts,
        StaffCallerFacts,
        decide_caller,
        decide_staff_caller,
    )
    from partners.rules.download import DownloadFacts, decide
    from partners.rules.visibility import jurisdiction_allowed


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
