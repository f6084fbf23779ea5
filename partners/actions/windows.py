from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Least

from accessctl.actors import Actor
from accessctl.audit.events import AuditAction, record
from partners import rules
from partners.authority import Operation, authorize
from partners.errors import ActionError
from partners.models import EmbargoWindow, Grant, Partner, Release

from ._common import (
    field_changes,
    integrity_as_action_error,
    now,
    release_withdrawn,
    snapshot,
)

__all__ = ["check_window", "set_window"]

_FIELDS = ("opens_at", "closes_at", "embargo_lifts_at", "tier")


def check_window(
    *,
    release: Release,
    partner: Partner,
    opens_at: datetime,
    closes_at: datetime,
    embargo_lifts_at: datetime | None,
    window: EmbargoWindow | None,
) -> datetime:
    """Refuse a window that cannot be set; return its embargo lift time (default: the
    release's public time, or the opening if that is later). Forms call this too."""
    embargo_lifts_at = embargo_lifts_at or max(release.public_release_at, opens_at)
    # A release not saved yet (the portal's add form) has no windows to overlap.
    overlapping = EmbargoWindow.objects.filter(
        release=release.pk, partner=partner, opens_at__lt=closes_at, closes_at__gt=opens_at
    )
    if window is not None:
        overlapping = overlapping.exclude(pk=window.pk)
    result = rules.window_valid(
        rules.WindowChange(
            release_slug=release.slug,
            release_withdrawn=release_withdrawn(release),
            release_policy=release.policy,
            release_jurisdictions=frozenset(str(c) for c in release.policy_jurisdictions),
            partner_jurisdiction=str(partner.jurisdiction),
            opens_at=opens_at,
            closes_at=closes_at,
            embargo_lifts_at=embargo_lifts_at,
            overlaps=release.pk is not None and overlapping.exists(),
            grants_after_close=window is not None
            and window.grants.filter(issued_at__gte=closes_at).exists(),
        )
    )
    if isinstance(result, rules.Failure):
        raise result.error()
    return embargo_lifts_at


@transaction.atomic
def set_window(
    *,
    actor: Actor,
    release: Release,
    partner: Partner,
    opens_at: datetime,
    closes_at: datetime,
    embargo_lifts_at: datetime | None = None,
    tier: str = "",
    window: EmbargoWindow | None = None,
) -> EmbargoWindow:
    """Create a window, or move an existing one (``window``).

    Closing a window earlier clips the expiry of its grants to the new close, in the same
    transaction, so no grant ever outlives its window.
    """
    authorize(actor, Operation.WINDOW_CHANGE if window else Operation.WINDOW_CREATE, partner)
    embargo_lifts_at = check_window(
        release=release,
        partner=partner,
        opens_at=opens_at,
        closes_at=closes_at,
        embargo_lifts_at=embargo_lifts_at,
        window=window,
    )
    if window is None:
        window = EmbargoWindow(release=release, partner=partner)
        before: dict[str, Any] = {}
    else:
        window = EmbargoWindow.objects.select_for_update().get(pk=window.pk)
        if (window.release_id, window.partner_id) != (release.pk, partner.pk):
            raise ActionError(
                "window_invalid", "A window cannot move to another release or partner."
            )
        before = snapshot(window, _FIELDS)
    window.opens_at, window.closes_at = opens_at, closes_at
    window.embargo_lifts_at, window.tier = embargo_lifts_at, tier
    # A moment moved into the future will be recorded (and announced) again when due.
    at = now()
    for marker, due in (
        ("opened_at", opens_at),
        ("closed_at", closes_at),
        ("embargo_lifted_at", embargo_lifts_at),
    ):
        if due > at:
            setattr(window, marker, None)
    changes = field_changes(window, before, _FIELDS)
    if window.pk and not changes:
        return window  # nothing moved: nothing to save or record
    with integrity_as_action_error():
        if window.pk:
            # Clip first, so the database rule "no grant outlives its window" holds at
            # every statement.
            Grant.objects.filter(window=window, expires_at__gt=closes_at).update(
                expires_at=Least(F("expires_at"), closes_at)
            )
        window.save()
    record(
        AuditAction.WINDOW_SET,
        actor=actor,
        target=window,
        partner=partner,
        changes=changes,
    )
    return window
