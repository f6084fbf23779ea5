"""Reads, scoped by partner where a partner can reach them."""

from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404

from accessctl.audit.models import AuditEvent, Outcome
from partners.models import Checkpoint, EmbargoWindow, Grant, GrantRequest, Partner, Release

__all__ = [
    "current_window",
    "expiring_grants",
    "partner_checkpoint",
    "partner_grant",
    "partner_grant_request",
    "partner_grants",
    "partner_release",
    "partner_windows",
    "pending_requests",
    "recent_denials",
    "timeline_windows",
    "visible_releases",
    "window_for_display",
]


def current_window(*, partner: Partner, release: Release, at: datetime) -> EmbargoWindow | None:
    """The partner's open window for the release, or else its next upcoming one."""
    return (
        EmbargoWindow.objects.filter(partner=partner, release=release, closes_at__gt=at)
        .order_by("opens_at")
        .first()
    )


def visible_releases(partner: Partner) -> QuerySet[Release]:
    """Releases this partner has a window for."""
    return Release.objects.filter(windows__partner=partner).distinct()


def timeline_windows(*, at: datetime, horizon: timedelta) -> QuerySet[EmbargoWindow]:
    """Windows open now or opening within ``horizon``, for the staff dashboard."""
    return (
        EmbargoWindow.objects.filter(closes_at__gt=at, opens_at__lt=at + horizon)
        .select_related("release", "partner")
        .order_by("release__public_release_at", "release__slug", "opens_at")
    )


def expiring_grants(*, at: datetime, within: timedelta) -> QuerySet[Grant]:
    return (
        Grant.objects.filter(
            status=Grant.Status.ACTIVE, expires_at__gt=at, expires_at__lte=at + within
        )
        .select_related("partner", "checkpoint__release")
        .order_by("expires_at")
    )


def pending_requests() -> QuerySet[GrantRequest]:
    return (
        GrantRequest.objects.filter(status=GrantRequest.Status.PENDING)
        .select_related("partner", "checkpoint__release", "requested_by")
        .annotate(approval_count=Count("approvals"))
        .order_by("requested_at")
    )


def recent_denials(*, limit: int = 10) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(
        Q(outcome=Outcome.DENIED) | Q(outcome=Outcome.FAILURE)
    ).order_by("-occurred_at", "-id")[:limit]


# Partner-scoped selectors for the API: each takes the partner first, and an object of
# another partner is simply not found (404, never 403).


def partner_release(partner: Partner, slug: str) -> Release:
    return get_object_or_404(visible_releases(partner), slug=slug)


def partner_windows(partner: Partner, release: Release) -> QuerySet[EmbargoWindow]:
    return EmbargoWindow.objects.filter(partner=partner, release=release).order_by("opens_at")


def window_for_display(partner: Partner, release: Release, at: datetime) -> EmbargoWindow | None:
    """The open window, else the next, else the last one that closed."""
    windows = list(partner_windows(partner, release))
    for window in windows:
        if window.closes_at > at:
            return window
    return windows[-1] if windows else None


def partner_checkpoint(partner: Partner, checkpoint_id: int) -> Checkpoint:
    return get_object_or_404(
        Checkpoint.objects.select_related("release")
        .filter(release__windows__partner=partner)
        .distinct(),
        pk=checkpoint_id,
    )


def partner_grants(partner: Partner) -> QuerySet[Grant]:
    return Grant.objects.filter(partner=partner).select_related("checkpoint__release", "window")


def partner_grant(partner: Partner, grant_id: int) -> Grant:
    return get_object_or_404(partner_grants(partner), pk=grant_id)


def partner_grant_request(partner: Partner, request_id: int) -> GrantRequest:
    return get_object_or_404(
        GrantRequest.objects.filter(partner=partner).select_related("checkpoint__release"),
        pk=request_id,
    )
