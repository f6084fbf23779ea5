"""The download decision: one pure function from plain facts and the time.

Callers load the facts (``partners.queries.download_facts``), call ``decide`` and act on
the result (``partners.actions.downloads.authorize_download``); every rule is a row of
the table-driven tests in tests/partners/test_decisions.py.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from partners.decisions import ALLOW, Decision, Reason, deny

from .caller import decide_caller
from .visibility import jurisdiction_allowed

__all__ = ["DownloadFacts", "decide"]


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
        return deny(Reason.JURISDICTION_BLOCKED)
    if facts.release_status == "withdrawn":
        return deny(Reason.RELEASE_WITHDRAWN)
    if facts.checkpoint_status != "available":
        return deny(Reason.CHECKPOINT_PULLED)
    if now < facts.window_opens_at:
        return deny(Reason.WINDOW_NOT_OPEN)
    if now >= facts.window_closes_at:
        return deny(Reason.WINDOW_CLOSED)
    if facts.grant_status == "revoked":
        return deny(Reason.GRANT_REVOKED)
    if facts.grant_status == "expired" or facts.grant_expires_at <= now:
        return deny(Reason.GRANT_EXPIRED)
    if (
        facts.grant_status == "exhausted"
        or facts.bytes_used + facts.requested_bytes > facts.quota_bytes
    ):
        return deny(Reason.QUOTA_EXHAUSTED)
    if facts.grant_status != "active":
        return deny(Reason.GRANT_REVOKED)
    return ALLOW
