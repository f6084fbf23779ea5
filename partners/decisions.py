"""The access rules: one pure function from plain facts and the time to a decision.

No I/O happens here. Callers load the facts (``partners.queries.download_facts``), call
``decide`` and act on the result; every rule is a row of a table-driven test, and every
reason code is documented in docs/decisions.md. Codes never change once shipped.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from accessctl_wire.codes import Code
from partners.networks import address_in_networks

__all__ = [
    "DETAIL",
    "CallerFacts",
    "Decision",
    "DownloadFacts",
    "Reason",
    "StaffCallerFacts",
    "decide",
    "decide_caller",
    "decide_staff_caller",
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
class CallerFacts:
    """Who is calling: the credential and its partner. Every partner API call checks these."""

    now: datetime
    client_address: str | None
    token_expires_at: datetime | None
    token_revoked: bool
    token_networks: Sequence[str]
    partner_status: str
    partner_networks: Sequence[str]
    nda_expires_at: datetime


@dataclass(frozen=True, slots=True)
class StaffCallerFacts:
    """Who is calling the staff API: the credential and its owner. The same credential
    rules as for partners (revocation, expiry, address ranges) and the owner's standing."""

    now: datetime
    client_address: str | None
    token_expires_at: datetime | None
    token_revoked: bool
    token_networks: Sequence[str]
    user_active: bool
    user_staff: bool


@dataclass(frozen=True, slots=True)
class DownloadFacts:
    """Everything the rules look at, as plain values read from current rows."""

    now: datetime
    client_address: str | None
    # The credential presented (an API token in the partner API).
    token_expires_at: datetime | None
    token_revoked: bool
    token_networks: Sequence[str]
    # The partner and its paperwork.
    partner_status: str
    partner_jurisdiction: str
    partner_networks: Sequence[str]
    nda_expires_at: datetime
    # The release: its status (the kill switch withdraws it) and its export-control
    # policy: "allow" or "deny" the listed jurisdictions.
    release_status: str
    release_policy: str
    release_jurisdictions: frozenset[str]
    # What is being downloaded and under which permission.
    checkpoint_status: str
    window_opens_at: datetime
    window_closes_at: datetime
    grant_status: str
    grant_expires_at: datetime
    quota_bytes: int
    bytes_used: int
    requested_bytes: int


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


def _deny(reason: Reason) -> Decision:
    return Decision(allowed=False, reason=reason)


def jurisdiction_allowed(policy: str, jurisdictions: frozenset[str], code: str) -> bool:
    listed = code in jurisdictions
    return listed if policy == "allow" else not listed


def decide_caller(facts: CallerFacts | DownloadFacts) -> Decision:
    """The rules about the caller alone: token, partner status, NDA, address."""
    now = facts.now
    if facts.token_revoked:
        return _deny(Reason.TOKEN_REVOKED)
    if facts.token_expires_at is not None and facts.token_expires_at <= now:
        return _deny(Reason.TOKEN_EXPIRED)
    if facts.partner_status == "terminated":
        return _deny(Reason.PARTNER_TERMINATED)
    if facts.partner_status != "active":
        return _deny(Reason.PARTNER_SUSPENDED)
    if facts.nda_expires_at <= now:
        return _deny(Reason.NDA_EXPIRED)
    for networks in (facts.partner_networks, facts.token_networks):
        if networks and not address_in_networks(facts.client_address, networks):
            return _deny(Reason.ADDRESS_NOT_ALLOWED)
    return ALLOW


def decide_staff_caller(facts: StaffCallerFacts) -> Decision:
    """The caller rules for a staff token: the credential first, then its owner, then the
    address, in the partner rules' order."""
    if facts.token_revoked:
        return _deny(Reason.TOKEN_REVOKED)
    if facts.token_expires_at is not None and facts.token_expires_at <= facts.now:
        return _deny(Reason.TOKEN_EXPIRED)
    if not (facts.user_active and facts.user_staff):
        return _deny(Reason.STAFF_ACCESS_ENDED)
    if facts.token_networks and not address_in_networks(facts.client_address, facts.token_networks):
        return _deny(Reason.ADDRESS_NOT_ALLOWED)
    return ALLOW


def decide(facts: DownloadFacts) -> Decision:
    """Allow, or deny with the first reason that applies.

    The order goes from the credential outwards to the byte count, so a caller always
    learns the most fundamental problem first: a revoked token says ``token_revoked``
    even when its grant has also run out.
    """
    now = facts.now
    caller = decide_caller(facts)
    if not caller:
        return caller
    if not jurisdiction_allowed(
        facts.release_policy, facts.release_jurisdictions, facts.partner_jurisdiction
    ):
        return _deny(Reason.JURISDICTION_BLOCKED)
    if facts.release_status == "withdrawn":
        return _deny(Reason.RELEASE_WITHDRAWN)
    if facts.checkpoint_status != "available":
        return _deny(Reason.CHECKPOINT_PULLED)
    if now < facts.window_opens_at:
        return _deny(Reason.WINDOW_NOT_OPEN)
    if now >= facts.window_closes_at:
        return _deny(Reason.WINDOW_CLOSED)
    if facts.grant_status == "revoked":
        return _deny(Reason.GRANT_REVOKED)
    if facts.grant_status == "expired" or facts.grant_expires_at <= now:
        return _deny(Reason.GRANT_EXPIRED)
    if (
        facts.grant_status == "exhausted"
        or facts.bytes_used + facts.requested_bytes > facts.quota_bytes
    ):
        return _deny(Reason.QUOTA_EXHAUSTED)
    if facts.grant_status != "active":
        return _deny(Reason.GRANT_REVOKED)
    return ALLOW
