"""Time-driven transitions, run by the beat-scheduled tasks in ``partners.tasks``.

Each transition changes only rows still in their old state, marks them (a status, or
the window's ``opened_at``/``closed_at``/``embargo_lifted_at``), writes one audit event
per row and queues its notifications, all in one short transaction of at most ``batch``
rows taken with ``SKIP LOCKED``. So a run that is late catches up on everything due, two
runs at once split the work, and a second run changes nothing: each transition is
audited exactly once. Enforcement never waits for these: ``decide`` compares the
current time with the rows' times on every request.
"""

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q

from accessctl.audit.events import AuditAction, event, record
from accessctl.audit.models import AuditEvent
from partners import notify, rules, states
from partners.models import (
    EmbargoWindow,
    Grant,
    GrantRequest,
    Notification,
    Partner,
    Release,
    Revocation,
)

from ._common import now
from .partners import suspend_partner

__all__ = [
    "announce_deadlines",
    "close_windows",
    "expire_grants",
    "expire_ndas",
    "lift_embargoes",
    "open_windows",
    "queue_staff_digest",
    "remind_pending_requests",
]

BATCH = 1000


def _late_by(due: datetime, at: datetime) -> float:
    return round(max((at - due).total_seconds(), 0.0), 3)


def _expire(grants: Iterable[tuple[int, int, datetime]], at: datetime) -> int:
    """Mark these (id, partner, expiry) grants expired, one event each."""
    grants = list(grants)
    Grant.objects.filter(pk__in=[pk for pk, _, _ in grants], status=Grant.Status.ACTIVE).update(
        status=Grant.Status.EXPIRED
    )
    AuditEvent.objects.bulk_create(
        event(
            AuditAction.GRANT_EXPIRED,
            actor=None,
            target=Grant(pk=pk),  # named as every grant is ("grant #3"), no query
            partner_id=partner_id,
            changes={"status": ["active", "expired"], "late_by_seconds": _late_by(due, at)},
            at=at,
        )
        for pk, partner_id, due in grants
    )
    return len(grants)


@transaction.atomic
def expire_grants(*, at: datetime | None = None, batch: int = BATCH) -> int:
    """Mark active grants past their expiry as expired, one audit event each.

    ``decide`` already refuses a grant past its expiry; this makes the state and the
    evidence say so. Returns how many grants it expired (at most ``batch``; callers loop).
    """
    at = at or now()
    due = (
        Grant.objects.select_for_update(skip_locked=True)
        .filter(status=Grant.Status.ACTIVE, expires_at__lte=at)
        .order_by("expires_at")
        .values_list("pk", "partner_id", "expires_at")[:batch]
    )
    return _expire(due, at)


def _due_windows(condition: Q, batch: int) -> list[EmbargoWindow]:
    return list(
        EmbargoWindow.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("release", "partner")
        .filter(condition)
        .order_by("pk")[:batch]
    )


def _withdrawn(window: EmbargoWindow, at: datetime) -> bool:
    """The kill switch ended the window already, and its email said so: the window's own
    moments are not announced (no "window opened" for a withdrawn release)."""
    return states.window_state(window, at) == EmbargoWindow.State.WITHDRAWN


def _window_context(window: EmbargoWindow) -> dict:
    return {
        "partner": window.partner.legal_name,
        "release": window.release.name,
        "release_slug": window.release.slug,
        "opens_at": notify.when(window.opens_at),
        "closes_at": notify.when(window.closes_at),
        "embargo_lifts_at": notify.when(window.embargo_lifts_at),
    }


def _record_windows(
    windows: list[EmbargoWindow],
    *,
    marker: str,
    due_field: str,
    action: AuditAction,
    kind: Notification.Kind,
    at: datetime,
    extra: dict[int, dict] | None = None,
    announce: Callable[[EmbargoWindow], bool] = lambda window: True,
) -> int:
    EmbargoWindow.objects.filter(pk__in=[w.pk for w in windows]).update(**{marker: at})
    AuditEvent.objects.bulk_create(
        event(
            action,
            actor=None,
            target=w,
            partner_id=w.partner_id,
            changes={
                due_field: getattr(w, due_field).isoformat(),
                "late_by_seconds": _late_by(getattr(w, due_field), at),
                **(extra or {}).get(w.pk, {}),
            },
            at=at,
        )
        for w in windows
    )
    for w in windows:
        if announce(w):
            notify.queue(
                kind,
                f"{action}:{w.pk}:{getattr(w, due_field).isoformat()}",
                notify.partner_recipients([w.partner_id]),
                {**_window_context(w), **(extra or {}).get(w.pk, {})},
            )
    return len(windows)


@transaction.atomic
def open_windows(*, at: datetime | None = None, batch: int = BATCH) -> int:
    """Record windows that have opened and tell the partner (unless already closed)."""
    at = at or now()
    windows = _due_windows(Q(opened_at__isnull=True, opens_at__lte=at), batch)
    # A withdrawn release's window never opens: it is marked (not due again), with no
    # ``window.opened`` event after the ``release.withdrawn`` one.
    withdrawn = [w for w in windows if _withdrawn(w, at)]
    EmbargoWindow.objects.filter(pk__in=[w.pk for w in withdrawn]).update(opened_at=at)
    return len(withdrawn) + _record_windows(
        [w for w in windows if w not in withdrawn],
        marker="opened_at",
        due_field="opens_at",
        action=AuditAction.WINDOW_OPENED,
        kind=Notification.Kind.WINDOW_OPENED,
        at=at,
        announce=lambda window: window.closes_at > at and not _withdrawn(window, at),
    )


@transaction.atomic
def close_windows(*, at: datetime | None = None, batch: int = BATCH) -> int:
    """Record windows that have closed: their grants end (expired: no grant outlives its
    window), the partner is told."""
    at = at or now()
    windows = _due_windows(
        Q(closed_at__isnull=True, closes_at__lte=at, opened_at__isnull=False), batch
    )
    grants = list(
        Grant.objects.select_for_update()
        .filter(window__in=windows, status=Grant.Status.ACTIVE)
        .values_list("pk", "partner_id", "expires_at", "window_id")
    )
    _expire(((pk, partner_id, due) for pk, partner_id, due, _ in grants), at)
    ended: dict[int, dict] = {w.pk: {"grants_ended": 0} for w in windows}
    for *_, window_id in grants:
        ended[window_id]["grants_ended"] += 1
    return _record_windows(
        windows,
        marker="closed_at",
        due_field="closes_at",
        action=AuditAction.WINDOW_CLOSED,
        kind=Notification.Kind.WINDOW_CLOSED,
        at=at,
        extra=ended,
        announce=lambda window: not _withdrawn(window, at),
    )


@transaction.atomic
def lift_embargoes(*, at: datetime | None = None, batch: int = BATCH) -> int:
    """Record embargoes that have lifted: the partner may now publish results."""
    at = at or now()
    windows = _due_windows(Q(embargo_lifted_at__isnull=True, embargo_lifts_at__lte=at), batch)
    return _record_windows(
        windows,
        marker="embargo_lifted_at",
        due_field="embargo_lifts_at",
        action=AuditAction.EMBARGO_LIFTED,
        kind=Notification.Kind.EMBARGO_LIFTED,
        at=at,
    )


def expire_ndas(*, at: datetime | None = None, batch: int = BATCH) -> int:
    """Suspend active partners whose NDA has expired (reason code ``nda_expired``).

    Each suspension is the ordinary ``suspend_partner`` action by the system: its own
    transaction, its revocation cascade, its notifications.
    """
    at = at or now()
    due = Partner.objects.filter(status=Partner.Status.ACTIVE, nda_expires_at__lte=at).order_by(
        "pk"
    )[:batch]
    done = 0
    for partner in due:
        with transaction.atomic():
            locked = Partner.objects.select_for_update(skip_locked=True).filter(
                pk=partner.pk, status=Partner.Status.ACTIVE
            )
            if not locked.exists():
                continue
            suspend_partner(
                actor=None,
                partner=partner,
                reason=f"NDA {partner.nda_reference} expired {partner.nda_expires_at:%Y-%m-%d}",
                reason_code="nda_expired",
            )
            notify.queue(
                Notification.Kind.PARTNER_SUSPENDED,
                f"partner.suspended:{partner.pk}:{at.isoformat()}",
                notify.partner_recipients([partner.pk]),
                {
                    "partner": partner.legal_name,
                    "nda_reference": partner.nda_reference,
                    "nda_expires_at": notify.when(partner.nda_expires_at),
                },
            )
            done += 1
    return done


@transaction.atomic
def remind_pending_requests(*, at: datetime | None = None, batch: int = BATCH) -> int:
    """Remind approvers of requests pending longer than the reminder interval, then again
    every interval while they stay pending."""
    at = at or now()
    interval = timedelta(hours=settings.ACCESSCTL_REQUEST_REMINDER_HOURS)
    due = list(
        GrantRequest.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("partner", "checkpoint__release")
        .filter(status=GrantRequest.Status.PENDING, requested_at__lte=at - interval)
        .filter(Q(reminded_at__isnull=True) | Q(reminded_at__lte=at - interval))
        .order_by("pk")[:batch]
    )
    if not due:
        return 0
    GrantRequest.objects.filter(pk__in=[r.pk for r in due]).update(reminded_at=at)
    approvers = notify.staff_recipients("partners.approve_grantrequest")
    for request in due:
        waited = round((at - request.requested_at).total_seconds() / 3600, 1)
        needed = rules.approvals_needed(request.approvals_required)
        record(
            AuditAction.GRANT_REQUEST_REMINDED,
            actor=None,
            target=request,
            partner_id=request.partner_id,
            changes={"pending_hours": waited, "approvals_required": needed},
            at=at,
        )
        notify.queue(
            Notification.Kind.REQUEST_PENDING,
            f"grant_request.reminded:{request.pk}:{at.isoformat()}",
            approvers,
            {
                "request": request.pk,
                "partner": request.partner.legal_name,
                "checkpoint": str(request.checkpoint),
                "pending_hours": waited,
                "approvals": request.approvals.count(),
                "approvals_required": needed,
                "url": f"{settings.ACCESSCTL_PUBLIC_URL}/admin/partners/grantrequest/{request.pk}/",
            },
        )
    return len(due)


@transaction.atomic
def announce_deadlines(*, at: datetime | None = None) -> int:
    """Warn partners of windows closing and grants expiring within the notice period.

    Not a change of state, so not audited; each warning is queued once per deadline (a
    moved deadline is announced again). Returns how many deadlines are within notice.
    """
    at = at or now()
    soon = at + timedelta(hours=settings.ACCESSCTL_DEADLINE_NOTICE_HOURS)
    deadlines = 0
    for window in (
        EmbargoWindow.objects.select_related("release", "partner")
        .filter(opens_at__lte=at, closes_at__gt=at, closes_at__lte=soon)
        .exclude(release__status=Release.Status.WITHDRAWN)
    ):
        deadlines += 1
        notify.queue(
            Notification.Kind.WINDOW_CLOSING,
            f"window.closing:{window.pk}:{window.closes_at.isoformat()}",
            notify.partner_recipients([window.partner_id]),
            _window_context(window),
        )
    for grant in (
        Grant.objects.select_related("checkpoint__release")
        .filter(status=Grant.Status.ACTIVE, expires_at__gt=at, expires_at__lte=soon)
        .filter(checkpoint__status="available")
        .exclude(checkpoint__release__status=Release.Status.WITHDRAWN)
        .exclude(expires_at=F("window__closes_at"))
    ):
        deadlines += 1
        notify.queue(
            Notification.Kind.GRANT_EXPIRING,
            f"grant.expiring:{grant.pk}:{grant.expires_at.isoformat()}",
            notify.partner_recipients([grant.partner_id]),
            {
                "grant": grant.pk,
                "checkpoint": str(grant.checkpoint),
                "expires_at": notify.when(grant.expires_at),
                "bytes_left": grant.bytes_left,
            },
        )
    return deadlines


def queue_staff_digest(*, at: datetime | None = None) -> int:
    """Queue today's digest for every staff member (once per day): what waits for a
    decision, what opens, closes or expires this week, what was revoked or denied in the
    last day."""
    at = at or now()
    week, day = at + timedelta(days=7), at - timedelta(days=1)
    pending = GrantRequest.objects.filter(status=GrantRequest.Status.PENDING)
    denied = (
        AuditEvent.objects.filter(action=AuditAction.DOWNLOAD_DENIED, occurred_at__gte=day)
        .values_list("reason")
        .order_by("reason")
        .annotate(count=Count("id"))
    )
    context = {
        "date": at.date().isoformat(),
        "pending_requests": pending.count(),
        "oldest_request": [
            {"id": r.pk, "partner": r.partner.slug, "checkpoint": str(r.checkpoint)}
            for r in pending.select_related("partner", "checkpoint__release").order_by(
                "requested_at"
            )[:10]
        ],
        "windows_opening": EmbargoWindow.objects.filter(
            opens_at__gt=at, opens_at__lte=week
        ).count(),
        "windows_closing": EmbargoWindow.objects.filter(
            closes_at__gt=at, closes_at__lte=week
        ).count(),
        "grants_expiring": Grant.objects.filter(
            status=Grant.Status.ACTIVE, expires_at__gt=at, expires_at__lte=week
        ).count(),
        "ndas_expiring": sorted(
            Partner.objects.filter(
                status=Partner.Status.ACTIVE,
                nda_expires_at__gt=at,
                nda_expires_at__lte=at + timedelta(days=30),
            ).values_list("slug", flat=True)
        ),
        "revocations": Revocation.objects.filter(effective_at__gte=day).count(),
        "denied": {reason or "unknown": count for reason, count in denied},
        "url": f"{settings.ACCESSCTL_PUBLIC_URL}/admin/",
    }
    return notify.queue(
        Notification.Kind.STAFF_DIGEST,
        f"staff.digest:{context['date']}",
        notify.staff_recipients("partners.view_grant"),
        context,
    )
