"""Caller rules: the credential and whoever holds it, checked on every API call."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from partners.decisions import ALLOW, Decision, Reason, deny
from partners.networks import address_in_networks

__all__ = ["CallerFacts", "StaffCallerFacts", "decide_caller", "decide_staff_caller"]


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


class _Caller(Protocol):
    """The caller facts ``decide_caller`` reads (``DownloadFacts`` has them too)."""

    @property
    def now(self) -> datetime: ...
    @property
    def client_address(self) -> str | None: ...
    @property
    def token_expires_at(self) -> datetime | None: ...
    @property
    def token_revoked(self) -> bool: ...
    @property
    def token_networks(self) -> Sequence[str]: ...
    @property
    def partner_status(self) -> str: ...
    @property
    def partner_networks(self) -> Sequence[str]: ...
    @property
    def nda_expires_at(self) -> datetime: ...


def decide_caller(facts: _Caller) -> Decision:
    """The rules about the caller alone: token, partner status, NDA, address."""
    now = facts.now
    if facts.token_revoked:
        return deny(Reason.TOKEN_REVOKED)
    if facts.token_expires_at is not None and facts.token_expires_at <= now:
        return deny(Reason.TOKEN_EXPIRED)
    if facts.partner_status == "terminated":
        return deny(Reason.PARTNER_TERMINATED)
    if facts.partner_status != "active":
        return deny(Reason.PARTNER_SUSPENDED)
    if facts.nda_expires_at <= now:
        return deny(Reason.NDA_EXPIRED)
    for networks in (facts.partner_networks, facts.token_networks):
        if networks and not address_in_networks(facts.client_address, networks):
            return deny(Reason.ADDRESS_NOT_ALLOWED)
    return ALLOW


def decide_staff_caller(facts: StaffCallerFacts) -> Decision:
    """The caller rules for a staff token: the credential first, then its owner, then the
    address, in the partner rules' order."""
    if facts.token_revoked:
        return deny(Reason.TOKEN_REVOKED)
    if facts.token_expires_at is not None and facts.token_expires_at <= facts.now:
        return deny(Reason.TOKEN_EXPIRED)
    if not (facts.user_active and facts.user_staff):
        return deny(Reason.STAFF_ACCESS_ENDED)
    if facts.token_networks and not address_in_networks(facts.client_address, facts.token_networks):
        return deny(Reason.ADDRESS_NOT_ALLOWED)
    return ALLOW
