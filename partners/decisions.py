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
    TOKEN_EXPIRED = "token_expired"
    TOKEN_REVOKED = "token_revoked"
    PARTNER_SUSPENDED = "partner_suspended"
    PARTNER_TERMINATED = "partner_terminated"
    NDA_EXPIRED = "nda_expired"
    JURISDICTION_BLOCKED = "jurisdiction_blocked"
    RELEASE_WITHDRAWN = "release_withdrawn"
    ADDRESS_NOT_ALLOWED = "address_not_allowed"
    CHECKPOINT_PULLED = "checkpoint_pulled"
    WINDOW_NOT_OPEN = "window_not_open"
    WINDOW_CLOSED = "window_closed"
    GRANT_REVOKED = "grant_revoked"
    GRANT_EXPIRED = "grant_expired"
    QUOTA_EXHAUSTED = "quota_exhausted"
    STAFF_ACCESS_ENDED = "staff_access_ended"


# What a refused partner is told, per reason: one text wherever the reason is raised.
DETAIL: dict[Reason, str] = {
    Reason.TOKEN_REVOKED: "This token was revoked.",
    Reason.TOKEN_EXPIRED: "This token has expired.",
    Reason.PARTNER_SUSPENDED: "Your organisation's access is suspended.",
    Reason.PARTNER_TERMINATED: "Your organisation's access has ended.",
    Reason.NDA_EXPIRED: "Your organisation's NDA has expired.",
    Reason.JURISDICTION_BLOCKED: "This release may not be shared with your jurisdiction.",
    Reason.ADDRESS_NOT_ALLOWED: "Requests from this address are not allowed for your organisation or token.",
    Reason.RELEASE_WITHDRAWN: "This release was withdrawn.",
    Reason.CHECKPOINT_PULLED: "This checkpoint was withdrawn.",
    Reason.WINDOW_NOT_OPEN: "Your window for this release has not opened yet.",
    Reason.WINDOW_CLOSED: "Your window for this release has closed.",
    Reason.GRANT_REVOKED: "This grant was revoked.",
    Reason.GRANT_EXPIRED: "This grant has expired.",
    Reason.QUOTA_EXHAUSTED: "This request would exceed the grant's byte quota.",
    Reason.STAFF_ACCESS_ENDED: "This token's owner is no longer active lab staff.",
}


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
