"""Reads, scoped by partner where a partner can reach them."""

from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet

from accessctl.audit.models import AuditEvent, Outcome
from partners.models import EmbargoWindow, Grant, GrantRequest, Partner, Release

__all__ = [
    "current_window",
    "expiring_grants",
    "pending_requests",
    "recent_denials",
    "timeline_windows",
    "visible_releases",
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
