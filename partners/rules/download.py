"""The download decision: one pure function from plain facts and the time.

Callers read a grant with its relations (``partners.queries.download_target``), turn it
into facts with ``download_facts`` (the one place that maps rows to facts), call
``decide`` and act on the result (``partners.actions.downloads.authorize_download``);
every rule is a row of the table-driven tests in tests/partners/rules/test_decisions.py.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from partners.decisions import ALLOW, Decision, Reason, deny

from .caller import decide_caller
from .visibility import jurisdiction_allowed

if TYPE_CHECKING:
    from partners.models import Grant

__all__ = ["DownloadFacts", "decide", "download_facts"]


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


def download_facts(
    grant: "Grant",
    *,
    now: datetime,
    client_address: str | None,
    requested_bytes: int,
    token_expires_at: datetime | None = None,
    token_revoked: bool = False,
    token_networks: Sequence[str] = (),
) -> DownloadFacts:
    """The facts of downloading ``requested_bytes`` (bytes) of ``grant`` at ``now``.

    ``grant`` must come with its partner, window and checkpoint's release already read
    (``select_related``): this function reads attributes only, never the database. The
    token fields describe the credential presented; the defaults are a valid, unrestricted
    one (a staff-side check that has no token).
    """
    partner, checkpoint = grant.partner, grant.checkpoint
    release = checkpoint.release
    return DownloadFacts(
        now=now,
        client_address=client_address,
        token_expires_at=token_expires_at,
        token_revoked=token_revoked,
        token_networks=tuple(token_networks),
        partner_status=partner.status,
        partner_jurisdiction=str(partner.jurisdiction),
        partner_networks=tuple(partner.allowed_networks),
        nda_expires_at=partner.nda_expires_at,
        release_status=release.status,
        release_policy=release.policy,
        release_jurisdictions=frozenset(str(c) for c in release.policy_jurisdictions),
        checkpoint_status=checkpoint.status,
        window_opens_at=grant.window.opens_at,
        window_closes_at=grant.window.closes_at,
        grant_status=grant.status,
        grant_expires_at=grant.expires_at,
        quota_bytes=grant.quota_bytes,
        bytes_used=grant.bytes_used,
        requested_bytes=requested_bytes,
    )


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
