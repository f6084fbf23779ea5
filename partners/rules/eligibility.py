"""Eligibility: may a window be set, a grant be asked for or issued, a window be used.

Each rule takes plain facts the caller read from locked, committed rows, and returns
``Success`` or the first ``Failure`` that applies. The actions (``partners.actions``)
raise ``failure.error()``; the partner API answers with the same code.
"""

from dataclasses import dataclass
from datetime import datetime

from django_countries import countries

from accessctl_wire import formats

from .result import SUCCESS, Failure, Result
from .visibility import jurisdiction_allowed

__all__ = [
    "MAX_QUOTA_BYTES",
    "GrantEligibility",
    "WindowChange",
    "country_name",
    "export_policy",
    "grant_eligible",
    "grant_terms",
    "quota_valid",
    "quota_within_limit",
    "window_access",
    "window_valid",
]

# The largest quota the database holds (a signed 64-bit column): anything above it is a
# typing error, refused as ``quota_invalid`` rather than failing on save.
MAX_QUOTA_BYTES = 2**63 - 1


def country_name(code: object) -> str:
    return str(countries.name(str(code))) or str(code)


def export_policy(
    *, release_slug: str, policy: str, jurisdictions: frozenset[str], partner_jurisdiction: str
) -> Result:
    """``jurisdiction_blocked`` for a partner the release's export policy excludes."""
    if jurisdiction_allowed(policy, jurisdictions, partner_jurisdiction):
        return SUCCESS
    return Failure(
        "jurisdiction_blocked",
        f"Release {release_slug}'s export policy does not allow partners in "
        f"{country_name(partner_jurisdiction)}.",
    )


@dataclass(frozen=True, slots=True)
class GrantEligibility:
    """What a grant (issued, or asked for) depends on, read from the committed rows."""

    now: datetime
    partner_slug: str
    partner_status: str
    partner_jurisdiction: str
    nda_expires_at: datetime
    release_slug: str
    release_status: str
    release_policy: str
    release_jurisdictions: frozenset[str]
    checkpoint_label: str
    checkpoint_status: str
    # The partner has an open or upcoming window for the release.
    has_window: bool


def grant_eligible(facts: GrantEligibility) -> Result:
    """The rules a grant must pass when it is issued or asked for."""
    if facts.partner_status != "active":
        return Failure(
            "partner_suspended", f"Partner {facts.partner_slug} is {facts.partner_status}."
        )
    if facts.nda_expires_at <= facts.now:
        return Failure("nda_expired", f"Partner {facts.partner_slug}'s NDA has expired.")
    policy = export_policy(
        release_slug=facts.release_slug,
        policy=facts.release_policy,
        jurisdictions=facts.release_jurisdictions,
        partner_jurisdiction=facts.partner_jurisdiction,
    )
    if not policy:
        return policy
    if facts.release_status == "withdrawn":
        return Failure("release_withdrawn", f"Release {facts.release_slug} was withdrawn.")
    if facts.checkpoint_status != "available":
        return Failure("checkpoint_pulled", f"Checkpoint {facts.checkpoint_label} was pulled.")
    if not facts.has_window:
        return Failure(
            "no_window",
            f"Partner {facts.partner_slug} has no open or upcoming window for release "
            f"{facts.release_slug}.",
        )
    return SUCCESS


def quota_valid(quota_bytes: int) -> Result:
    if not 0 < quota_bytes <= MAX_QUOTA_BYTES:
        return Failure(
            "quota_invalid",
            f"The byte quota must be between 1 and {MAX_QUOTA_BYTES}.",
            fields={"quota_bytes": [f"Between 1 and {MAX_QUOTA_BYTES} bytes."]},
        )
    return SUCCESS


def quota_within_limit(
    *, quota_bytes: int, limit: int, quota_factor: int, release_slug: str
) -> Result:
    """A partner asks for at most ``limit`` bytes (the release's ``quota_factor`` times the
    checkpoint's size): after the public release nobody looks at the request."""
    quota = quota_valid(quota_bytes)
    if not quota:
        return quota
    if quota_bytes > limit:
        return Failure(
            "quota_too_large",
            f"The byte quota may be at most {limit} bytes ({quota_factor} "
            f"times the checkpoint's size) for release {release_slug}.",
            fields={"quota_bytes": [f"At most {limit} bytes."]},
        )
    return SUCCESS


def grant_terms(
    *, now: datetime, quota_bytes: int, expires_at: datetime, window_closes_at: datetime
) -> Result:
    """A grant's quota and expiry: a real quota, expiring in the future, within its window."""
    quota = quota_valid(quota_bytes)
    if not quota:
        return quota
    if expires_at > window_closes_at:
        return Failure(
            "grant_outlives_window",
            f"A grant cannot outlive its window, which closes {formats.moment(window_closes_at)}.",
        )
    if expires_at <= now:
        return Failure("grant_invalid", "A grant must expire in the future.")
    return SUCCESS


@dataclass(frozen=True, slots=True)
class WindowChange:
    """A window to create or move, with what the database says about its neighbours."""

    release_slug: str
    release_withdrawn: bool
    release_policy: str
    release_jurisdictions: frozenset[str]
    partner_jurisdiction: str
    opens_at: datetime
    closes_at: datetime
    embargo_lifts_at: datetime
    # Another window of the partner for the release overlaps these times.
    overlaps: bool
    # Grants of this (existing) window were issued at or after the new close.
    grants_after_close: bool


def window_valid(facts: WindowChange) -> Result:
    if facts.release_withdrawn:
        return Failure("release_withdrawn", f"Release {facts.release_slug} was withdrawn.")
    if facts.opens_at >= facts.closes_at:
        return Failure("window_invalid", "The window must open before it closes.")
    if facts.embargo_lifts_at < facts.opens_at:
        return Failure("window_invalid", "The embargo cannot lift before the window opens.")
    policy = export_policy(
        release_slug=facts.release_slug,
        policy=facts.release_policy,
        jurisdictions=facts.release_jurisdictions,
        partner_jurisdiction=facts.partner_jurisdiction,
    )
    if not policy:
        return policy
    if facts.overlaps:
        return Failure(
            "window_overlap",
            "This partner already has a window for this release that overlaps these times.",
        )
    if facts.grants_after_close:
        return Failure(
            "window_invalid",
            "Grants were issued in this window after the new close time; revoke them first.",
        )
    return SUCCESS


def window_access(
    *,
    now: datetime,
    release_slug: str,
    opens_at: datetime | None,
    closes_at: datetime | None,
) -> Result:
    """May the partner see a release's checkpoints and manifests now? Only while the
    window shown to it (``queries.window_for_display``; ``None``: none) is open."""
    if opens_at is None or closes_at is None:
        return Failure("no_window", f"You have no window for release {release_slug}.")
    if now < opens_at:
        return Failure(
            "window_not_open",
            f"Your window opens {opens_at.isoformat()}.",
            extra={"opens_at": opens_at.isoformat()},
        )
    if now >= closes_at:
        return Failure("window_closed", f"Your window closed {closes_at.isoformat()}.")
    return SUCCESS
