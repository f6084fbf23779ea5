"""The staff portal's home: one panel per role the signed-in person holds, each shown only
to those who may view its rows.

``accessctl.portal.PortalSite`` renders it through ``settings.ACCESSCTL_PORTAL_DASHBOARD``
(``templates/admin/dashboard.html``). The roles are the groups of ``partners.roles``; a
superuser holds them all.

- Everyone who may view them: warnings about lifecycle schedules switched off, slowed,
  changed, stalled or failing; the timeline (``partners.portal.timeline``).
- Release manager, security officer, partner manager: the access matrix's first page
  (``partners.portal.matrix``).
- Release manager: pending approvals, windows opening within ``UPCOMING_DAYS``, grants
  expiring within ``EXPIRING_DAYS``.
- Security officer: revocations whose fan-out is still running, with their counts; the
  kill switch (withdrawn releases, pulled checkpoints, suspended partners); denied
  decisions of the last ``DENIALS_HOURS`` hours by reason, and the latest ones; controls
  switched off (schedules, sign-in lockouts).
- Compliance: the last signed audit checkpoint and its age, the latest exports, the
  latest sensitive actions (``SENSITIVE_ACTIONS``).
"""

from datetime import timedelta
from typing import Any

from axes.models import AccessAttempt
from django.db.models import Count, Q
from django.http import HttpRequest
from django.utils import timezone

from accessctl.audit.events import AuditAction
from accessctl.audit.models import AuditCheckpoint, AuditEvent, AuditExport, Outcome
from partners import queries
from partners.models import Checkpoint, EmbargoWindow, Partner, Release, Revocation
from partners.portal.matrix import access_matrix
from partners.portal.timeline import period, releases_in, timeline
from partners.portal.units import age
from partners.portal.views import may_see_matrix
from partners.roles import ROLES

__all__ = [
    "CHECKPOINT_STALE",
    "DENIALS_HOURS",
    "EXPIRING_DAYS",
    "MATRIX_ROLES",
    "SENSITIVE_ACTIONS",
    "TIMELINE_DAYS",
    "UPCOMING_DAYS",
    "dashboard",
]

TIMELINE_DAYS = 60
# The home shows the top of the matrix and of the timeline; their pages show the rest.
HOME_MATRIX_ROWS = 10
HOME_TIMELINE_RELEASES = 3
HOME_TIMELINE_ROWS = 8
UPCOMING_DAYS = 14
EXPIRING_DAYS = 7
DENIALS_HOURS = 24
# The sealer signs every few seconds (audit 0004): a checkpoint older than this is a fault.
CHECKPOINT_STALE = timedelta(minutes=10)

RELEASE_MANAGER, PARTNER_MANAGER = "Release manager", "Partner manager"
SECURITY_OFFICER, COMPLIANCE = "Security officer", "Compliance"
MATRIX_ROLES = frozenset({RELEASE_MANAGER, SECURITY_OFFICER, PARTNER_MANAGER})

# What compliance reviews first: access ended or widened by hand, keys, controls, accounts.
SENSITIVE_ACTIONS = frozenset(
    {
        AuditAction.PARTNER_SUSPENDED,
        AuditAction.PARTNER_REINSTATED,
        AuditAction.PARTNER_TERMINATED,
        AuditAction.RELEASE_WITHDRAWN,
        AuditAction.CHECKPOINT_PULLED,
        AuditAction.GRANT_REQUEST_APPROVED,
        AuditAction.GRANT_ISSUED,
        AuditAction.GRANT_REVOKED,
        AuditAction.TOKEN_REVOKED,
        AuditAction.SIGNING_KEY_ROTATED,
        AuditAction.SCHEDULE_CHANGED,
        AuditAction.AUDIT_EXPORT_REQUESTED,
        AuditAction.AUDIT_RETENTION_APPLIED,
        AuditAction.STAFF_LOCKOUT_CLEARED,
        AuditAction.ACCOUNT_CREATED,
        AuditAction.ACCOUNT_CHANGED,
        AuditAction.ACCOUNT_PASSWORD_SET,
        AuditAction.SECOND_FACTOR_REMOVED,
    }
)


def roles_of(user: Any) -> list[str]:
    """The roles (``partners.roles.ROLES`` groups) ``user`` holds, in the table's order;
    a superuser holds every one."""
    if user.is_superuser:
        return list(ROLES)
    held = set(user.groups.values_list("name", flat=True))
    return [name for name in ROLES if name in held]


def dashboard(request: HttpRequest) -> dict[str, Any]:
    """The home page's context (see the module): ``roles`` and one key per panel, absent
    for a panel the person does not get."""
    user = request.user
    now = timezone.now()
    roles = roles_of(user)
    context: dict[str, Any] = {"now": now, "roles": roles, "timeline_days": TIMELINE_DAYS}
    if user.has_perm("django_celery_beat.view_periodictask"):
        context["disabled_schedules"] = queries.disabled_schedules()
        context["schedule_warnings"] = queries.schedule_warnings(at=now)
    if may_see_matrix(user):
        if MATRIX_ROLES.intersection(roles):
            context["matrix"] = access_matrix(None, at=now, rows=HOME_MATRIX_ROWS)
        start, end = period(now)
        shown = list(releases_in(start, end)[: HOME_TIMELINE_RELEASES + 1])
        context["timeline"] = timeline(
            at=now,
            start=start,
            end=end,
            releases=shown[:HOME_TIMELINE_RELEASES],
            rows=HOME_TIMELINE_ROWS,
        )
        context["timeline_more"] = len(shown) > HOME_TIMELINE_RELEASES
    if RELEASE_MANAGER in roles:
        context.update(_release_manager(user, now))
    if SECURITY_OFFICER in roles:
        context.update(_security_officer(user, now))
    if COMPLIANCE in roles:
        context.update(_compliance(user, now))
    return context


def _release_manager(user: Any, now: Any) -> dict[str, Any]:
    panel: dict[str, Any] = {}
    if user.has_perm("partners.view_grantrequest"):
        panel["pending_requests"] = list(queries.pending_requests()[:10])
    if user.has_perm("partners.view_embargowindow"):
        panel["upcoming_windows"] = list(
            EmbargoWindow.objects.filter(
                opens_at__gt=now,
                opens_at__lte=now + timedelta(days=UPCOMING_DAYS),
            )
            .exclude(release__status=Release.Status.WITHDRAWN)
            .select_related("release", "partner")
            .order_by("opens_at", "pk")[:10]
        )
        panel["upcoming_days"] = UPCOMING_DAYS
    if user.has_perm("partners.view_grant"):
        panel["expiring_grants"] = list(
            queries.expiring_grants(at=now, within=timedelta(days=EXPIRING_DAYS))[:10]
        )
        panel["expiring_days"] = EXPIRING_DAYS
    return panel


def _security_officer(user: Any, now: Any) -> dict[str, Any]:
    panel: dict[str, Any] = {}
    if user.has_perm("partners.view_revocation"):
        panel["revocations_in_progress"] = [
            {"revocation": r, "running_for": age(now - r.effective_at)}
            for r in Revocation.objects.filter(status=Revocation.Status.PENDING)
            .select_related("partner", "release", "checkpoint__release", "grant", "token")
            .order_by("effective_at", "pk")[:10]
        ]
    if user.has_perm("partners.view_release"):
        panel["kill_switch"] = {
            "withdrawn": list(
                Release.objects.filter(status=Release.Status.WITHDRAWN).order_by("-withdrawn_at")[
                    :5
                ]
            ),
            **Release.objects.aggregate(
                live=Count("pk", filter=~Q(status=Release.Status.WITHDRAWN)),
                withdrawn_count=Count("pk", filter=Q(status=Release.Status.WITHDRAWN)),
            ),
            "pulled": Checkpoint.objects.filter(status=Checkpoint.Status.PULLED).count(),
            "suspended": list(
                Partner.objects.exclude(status=Partner.Status.ACTIVE).order_by("slug")[:10]
            ),
        }
    if user.has_perm("audit.view_auditevent"):
        denied = Q(outcome=Outcome.DENIED) | Q(outcome=Outcome.FAILURE)
        panel["denials_by_reason"] = list(
            AuditEvent.objects.filter(denied, occurred_at__gte=now - timedelta(hours=DENIALS_HOURS))
            .values("reason")
            .annotate(count=Count("pk"))
            .order_by("-count", "reason")[:10]
        )
        panel["denials_hours"] = DENIALS_HOURS
        panel["recent_denials"] = list(queries.recent_denials(limit=10))
    if user.has_perm("axes.view_accessattempt"):
        panel["lockouts"] = AccessAttempt.objects.count()
    return panel


def _compliance(user: Any, now: Any) -> dict[str, Any]:
    panel: dict[str, Any] = {}
    if user.has_perm("audit.view_auditevent"):
        last = AuditCheckpoint.objects.order_by("-tree_size").first()
        panel["audit_seal"] = {
            "checkpoint": last,
            "age": age(now - last.sealed_at) if last else "",
            "stale": last is None or now - last.sealed_at > CHECKPOINT_STALE,
            "stale_after": age(CHECKPOINT_STALE),
        }
        panel["sensitive_actions"] = list(
            AuditEvent.objects.filter(action__in=[str(a) for a in SENSITIVE_ACTIONS]).order_by(
                "-occurred_at", "-id"
            )[:10]
        )
    if user.has_perm("audit.export_auditevent"):
        panel["exports"] = list(
            AuditExport.objects.select_related("requested_by").order_by("-requested_at")[:5]
        )
    return panel
