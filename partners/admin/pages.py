"""What an object's portal page shows besides its form: its whole story, read-only.

A partner's page shows its windows, grants with their use, tokens with their last use,
members, recent downloads and open requests; a release's its windows with their state,
checkpoints, grants and export policy; a grant's its use, its download events and its
signed token's lifetime. Each panel is one query however many rows there are (related
rows are joined, counts annotated), and shows at most ``ROWS`` rows with a link to the
full list, so a page costs a fixed number of queries (tests/partners/admin/
test_object_pages.py measures them).
"""

from datetime import datetime
from typing import Any

from django.db.models import Count, F, Q, QuerySet, Sum
from django.urls import reverse

from accessctl.audit.events import AuditAction
from accessctl.audit.models import AuditEvent
from partners import states
from partners.models import (
    AccessToken,
    Checkpoint,
    Detection,
    EmbargoWindow,
    Grant,
    GrantRequest,
    Membership,
    Partner,
    Release,
)

__all__ = [
    "ROWS",
    "detection_story",
    "grant_story",
    "partner_story",
    "release_story",
    "usage",
]

ROWS = 50  # rows per panel; the rest is one click away in the filtered list
DOWNLOADS = (AuditAction.DOWNLOAD_AUTHORIZED, AuditAction.DOWNLOAD_DENIED)


def usage(grant: Grant) -> dict[str, Any]:
    """A grant's quota use: bytes used, left and the percentage used (0-100, whole)."""
    percent = 100 * grant.bytes_used // grant.quota_bytes if grant.quota_bytes else 100
    return {"used": grant.bytes_used, "left": grant.bytes_left, "percent": min(percent, 100)}


def _list_url(model: str, **filters: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return f"{reverse(f'admin:partners_{model}_changelist')}?{query}"


def _windows(windows: QuerySet[EmbargoWindow], at: datetime) -> list[dict[str, Any]]:
    return [
        {"window": w, "state": state, "held": states.access_held(state, w.partner.status)}
        for w in windows.select_related("release", "partner").order_by("-opens_at")[:ROWS]
        for state in [states.window_state(w, at)]
    ]


def _grants(grants: QuerySet[Grant]) -> list[dict[str, Any]]:
    rows = grants.select_related("partner", "checkpoint__release").order_by(
        # Active first, then the newest.
        F("revoked_at").desc(nulls_first=True),
        "-issued_at",
    )[:ROWS]
    return [{"grant": g, **usage(g)} for g in rows]


def _counts(queryset: QuerySet[Any], **conditions: Q) -> dict[str, int]:
    """Several counts of one table in one query."""
    return queryset.aggregate(
        total=Count("pk"), **{k: Count("pk", filter=q) for k, q in conditions.items()}
    )


def _recent_downloads(events: QuerySet[AuditEvent]) -> list[AuditEvent]:
    return list(events.filter(action__in=DOWNLOADS).order_by("-occurred_at", "-pk")[:ROWS])


def partner_story(partner: Partner, at: datetime) -> dict[str, Any]:
    """The partner page's panels (six queries)."""
    grants = Grant.objects.filter(partner=partner)
    active = Q(status=Grant.Status.ACTIVE)
    counts = grants.aggregate(
        total=Count("pk"),
        active=Count("pk", filter=active),
        quota=Sum("quota_bytes", filter=active, default=0),
        used=Sum("bytes_used", filter=active, default=0),
    )
    tokens = AccessToken.objects.filter(partner=partner).select_related("user")
    token_rows = [
        {"token": t, "state": _lifetime(t, at)} for t in tokens.order_by("-created_at")[:ROWS]
    ]
    members = Membership.objects.filter(partner=partner).select_related("user")
    requests = (
        GrantRequest.objects.filter(partner=partner, status=GrantRequest.Status.PENDING)
        .select_related("checkpoint__release", "requested_by")
        .annotate(approval_count=Count("approvals"))
        .order_by("requested_at")
    )
    windows = EmbargoWindow.objects.filter(partner=partner)
    return {
        "kind": "partner",
        "windows": _windows(windows, at),
        "grants": _grants(grants),
        "grant_counts": {**counts, "left": counts["quota"] - counts["used"]},
        "grants_url": _list_url("grant", partner__id__exact=partner.pk),
        "tokens": token_rows,
        "members": list(members.order_by("user__username")[:ROWS]),
        "downloads": _recent_downloads(AuditEvent.objects.filter(partner_id=partner.pk)),
        "requests": list(requests[:ROWS]),
        "requests_url": _list_url("grantrequest", partner__id__exact=partner.pk, status="pending"),
    }


def _lifetime(token: AccessToken, at: datetime) -> str:
    if token.revoked_at is not None:
        return "revoked"
    return "expired" if token.expires_at <= at else "active"


def release_story(release: Release, at: datetime) -> dict[str, Any]:
    """The release page's panels (four queries)."""
    checkpoints = (
        Checkpoint.objects.filter(release=release)
        .select_related("release")
        .annotate(
            file_count=Count("artifacts", distinct=True),
            byte_count=Sum("artifacts__size"),
        )
        .order_by("-registered_at")
    )
    grants = Grant.objects.filter(checkpoint__release=release)
    return {
        "kind": "release",
        "policy": {
            "policy": release.get_policy_display(),
            "jurisdictions": ", ".join(str(c) for c in release.policy_jurisdictions) or "-",
            "quota_factor": release.quota_factor,
            "public_release_at": release.public_release_at,
            "status": release.get_status_display(),
        },
        "windows": _windows(EmbargoWindow.objects.filter(release=release), at),
        "checkpoints": [
            {"checkpoint": c, "state": states.checkpoint_state(c)} for c in checkpoints[:ROWS]
        ],
        "grants": _grants(grants),
        "grant_counts": _counts(grants, active=Q(status=Grant.Status.ACTIVE)),
        "grants_url": _list_url("grant", checkpoint__release__id__exact=release.pk),
    }


def grant_story(grant: Grant, at: datetime) -> dict[str, Any]:
    """The grant page's panels (two queries): its use, its download events, and the
    lifetime of its signed grant token (``partners.api.views.grant_tokens``: valid from
    the window's opening to the grant's expiry, and only while the grant is usable)."""
    grant = Grant.objects.select_related("window", "checkpoint__release", "partner").get(
        pk=grant.pk
    )
    events = AuditEvent.objects.filter(target_type="partners.grant", target_id=str(grant.pk))
    usable = grant.status in {Grant.Status.ACTIVE, Grant.Status.EXHAUSTED}
    opens, expires = grant.window.opens_at, grant.expires_at
    if not usable:
        lifetime = f"ended: the grant is {grant.get_status_display().lower()}"
    elif at < opens:
        lifetime = "not valid yet: the window has not opened"
    elif at >= expires:
        lifetime = "expired"
    else:
        lifetime = "valid"
    return {
        "kind": "grant",
        "grant": grant,
        "usage": usage(grant),
        "downloads": _recent_downloads(events),
        "token": {"not_before": opens, "expires": expires, "state": lifetime},
    }


def _moment(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


def detection_story(detection: Detection, at: datetime) -> dict[str, Any]:
    """The detection page's panels (no query: everything is in its report): the verdict,
    each partner's z and false-positive probability (highest first), the tensors compared,
    the commitments with a link to each one's audit event, and the signed report's file."""
    report = detection.report or {}
    named = set(detection.named or [])
    partners = [
        {
            **row,
            "named": row.get("partner") in named,
            # Below what a double holds (z above ~38): say so rather than "0".
            "p_shown": (
                f"{row['p_false_positive']:.3g}" if row.get("p_false_positive") else "< 1e-300"
            ),
        }
        for row in report.get("partners", [])
    ]
    commitments = [
        {
            **c,
            "committed": _moment(c.get("committed_at")),
            "event_url": (
                reverse("admin:audit_auditevent_change", args=[c["audit_event"]])
                if c.get("audit_event")
                else ""
            ),
        }
        for c in report.get("commitments", [])
    ]
    tensors = report.get("tensors", [])
    return {
        "kind": "detection",
        "detection": detection,
        "verdict": detection.get_verdict_display() if detection.verdict else "",
        "named": sorted(named),
        "partners": partners,
        "tensors": tensors[:ROWS],
        "tensors_more": max(len(tensors) - ROWS, 0),
        "weights": report.get("weights"),
        "alpha": report.get("alpha"),
        "checkpoint": report.get("checkpoint"),
        "commitments": commitments,
        "report_url": (
            reverse("admin:partners_detection_report", args=[detection.pk])
            if detection.report is not None
            else ""
        ),
    }
