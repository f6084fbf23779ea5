"""The early-access approval rule (four eyes) and the one place its setting is read."""

from datetime import datetime

from django.conf import settings
from django.db.models import F, Value
from django.db.models.functions import Greatest

from .result import SUCCESS, Failure, Result

__all__ = [
    "approvals_needed",
    "approvals_needed_sql",
    "direct_issue",
    "early_access_approvals",
    "early_access_approved",
    "is_early_access",
    "may_approve",
]


def early_access_approvals() -> int:
    """How many distinct staff approvals early access needs, the requester excluded.

    The one place the setting is read (admin texts, emails, actions and API all ask here).
    Never fewer than one: a setting of 0 cannot turn the two-person rule into a one-person
    rule (the requester never approves).
    """
    return max(1, int(settings.ACCESSCTL_EARLY_ACCESS_APPROVALS))


def approvals_needed(approvals_required: int) -> int:
    """What a request must hold to issue a grant before the public time: the number fixed
    when it was filed, or the current setting if that is higher."""
    return max(int(approvals_required), early_access_approvals())


def approvals_needed_sql(field: str = "approvals_required") -> Greatest:
    """``approvals_needed`` as a query expression over a ``GrantRequest`` field path."""
    return Greatest(F(field), Value(early_access_approvals()))


def is_early_access(now: datetime, public_release_at: datetime) -> bool:
    return now < public_release_at


def direct_issue(*, now: datetime, public_release_at: datetime, release_slug: str) -> Result:
    """Staff may issue a grant without a request only once the release is public."""
    if is_early_access(now, public_release_at):
        return Failure(
            "approval_required",
            f"Release {release_slug} is not public yet: file a grant request instead; early "
            f"access needs it approved by {early_access_approvals()} staff members.",
        )
    return SUCCESS


def may_approve(*, is_requester: bool, approved_before: bool) -> Result:
    """Four eyes: whoever filed a request cannot approve it, and nobody approves twice."""
    if is_requester:
        return Failure(
            "self_approval", "You filed this request; another staff member must approve it."
        )
    if approved_before:
        return Failure(
            "already_approved", "You already approved this request; it needs another approver."
        )
    return SUCCESS


def early_access_approved(
    *,
    now: datetime,
    public_release_at: datetime,
    release_slug: str,
    has_request: bool,
    approvals_given: int,
    approvals_required: int,
) -> Result:
    """Defence in depth: whatever path leads to a grant, none exists before the public time
    unless its request holds the early-access approvals (requester excluded)."""
    if not is_early_access(now, public_release_at):
        return SUCCESS
    if not has_request or approvals_given < approvals_needed(approvals_required):
        return Failure(
            "early_access_unapproved",
            f"Release {release_slug} is not public yet: a grant needs a request approved by "
            f"{early_access_approvals()} staff members other than its requester.",
        )
    return SUCCESS
