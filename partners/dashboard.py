"""The staff portal's dashboard: the release timeline, grants expiring, recent denials,
pending requests, disabled, changed, stalled or failing schedules; each shown to those who may view its rows.

``accessctl.portal.PortalSite`` renders it through ``settings.ACCESSCTL_PORTAL_DASHBOARD``.
"""

from datetime import timedelta
from typing import Any

from django.http import HttpRequest
from django.utils import timezone

from partners import queries, states

__all__ = ["TIMELINE_DAYS", "dashboard"]

TIMELINE_DAYS = 60


def dashboard(request: HttpRequest) -> dict[str, Any]:
    user = request.user
    now = timezone.now()
    start = now - timedelta(days=7)
    span = timedelta(days=TIMELINE_DAYS)
    context: dict[str, Any] = {"now": now, "timeline_days": TIMELINE_DAYS}
    if user.has_perm("partners.view_embargowindow"):
        rows: dict[str, list[dict[str, Any]]] = {}
        for window in queries.timeline_windows(at=start, horizon=span):
            left = max((window.opens_at - start) / span, 0.0)
            right = min((window.closes_at - start) / span, 1.0)
            rows.setdefault(window.release.slug, []).append(
                {
                    "window": window,
                    "state": states.window_state(window, now).value,
                    "left": round(left * 100, 2),
                    "width": round(max(right - left, 0.005) * 100, 2),
                }
            )
        context["timeline"] = rows
        context["timeline_start"], context["timeline_end"] = start, start + span
        context["now_left"] = round((now - start) / span * 100, 2)
    if user.has_perm("partners.view_grant"):
        context["expiring_grants"] = list(
            queries.expiring_grants(at=now, within=timedelta(days=7))[:10]
        )
    if user.has_perm("audit.view_auditevent"):
        context["recent_denials"] = list(queries.recent_denials(limit=10))
    if user.has_perm("partners.view_grantrequest"):
        context["pending_requests"] = list(queries.pending_requests()[:10])
    if user.has_perm("django_celery_beat.view_periodictask"):
        context["disabled_schedules"] = queries.disabled_schedules()
        context["schedule_warnings"] = queries.schedule_warnings(at=now)
    return context
