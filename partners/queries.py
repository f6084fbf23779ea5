"""Reads, scoped by partner where a partner can reach them."""

import copy
import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Case, Count, Model, OuterRef, Prefetch, Q, QuerySet, Subquery, When
from django.http import Http404
from django.shortcuts import get_object_or_404
from django_celery_beat.models import PeriodicTask

from accessctl.audit.events import AuditAction
from accessctl.audit.models import AuditEvent, Outcome
from accessctl.db import hot_cursor
from accessctl_wire import formats
from partners import rules
from partners.models import (
    AccessToken,
    Artifact,
    ArtifactVariant,
    Checkpoint,
    DownloadLease,
    EmbargoWindow,
    Grant,
    GrantRequest,
    Membership,
    Partner,
    PartnerContact,
    Release,
    Revocation,
)
from partners.rules import approvals_needed_sql, export_policy_q
from partners.rules.leases import LeaseRead, LeaseState

M = TypeVar("M", bound=Model)

__all__ = [
    "LIFECYCLE_TASKS",
    "EndedAccess",
    "access_ended_by_move",
    "allowed_releases",
    "approval_refusal",
    "current_window",
    "disabled_schedules",
    "display_window",
    "download_files",
    "download_target",
    "expiring_grants",
    "hub_checkpoints",
    "hub_grant",
    "hub_grants",
    "hub_release",
    "member_candidates",
    "partner_cascade_pending",
    "partner_checkpoint",
    "partner_files",
    "partner_grant",
    "partner_grant_request",
    "partner_grants",
    "partner_release",
    "partner_windows",
    "pending_request_exists",
    "pending_requests",
    "prefetched_windows",
    "recent_denials",
    "reinstate_refusal",
    "schedule_period",
    "schedule_warnings",
    "span",
    "timeline_windows",
    "token_by_digests",
    "unready_variants",
    "visible_releases",
    "visible_releases_with_windows",
    "window_for_display",
]


def current_window(*, partner: Partner, release: Release, at: datetime) -> EmbargoWindow | None:
    """The partner's open window for the release, or else its next upcoming one."""
    return (
        EmbargoWindow.objects.filter(partner=partner, release=release, closes_at__gt=at)
        .order_by("opens_at")
        .first()
    )


def allowed_releases(partner: Partner) -> QuerySet[Release]:
    """Releases whose export policy allows the partner's jurisdiction: the rule of
    ``rules.jurisdiction_allowed``, in SQL (``rules.export_policy_q``).

    Every partner-scoped selector below goes through this, so a release that blocks the
    partner (its policy changed, or the partner moved) is simply not found, like another
    partner's objects: absent from lists, 404 by id.
    """
    alias, allowed = export_policy_q(str(partner.jurisdiction))
    return Release.objects.alias(**alias).filter(allowed)


def visible_releases(partner: Partner) -> QuerySet[Release]:
    """Releases this partner has a window for and whose export policy allows it."""
    return Release.objects.filter(
        windows__partner=partner, pk__in=allowed_releases(partner).values("pk")
    ).distinct()


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
        .annotate(approval_count=Count("approvals"), approvals_needed=approvals_needed_sql())
        .order_by("requested_at")
    )


def recent_denials(*, limit: int = 10) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(
        Q(outcome=Outcome.DENIED) | Q(outcome=Outcome.FAILURE)
    ).order_by("-occurred_at", "-id")[:limit]


@dataclass(frozen=True, slots=True)
class EndedAccess:
    """What moving a partner to another jurisdiction ends: the windows (open or upcoming)
    of releases whose export policy blocks the new jurisdiction, their active grants, and
    the people who lose access (members) or are told (contacts)."""

    windows: list[EmbargoWindow] = dataclasses.field(default_factory=list)
    grants: list[Grant] = dataclasses.field(default_factory=list)
    members: list[str] = dataclasses.field(default_factory=list)
    contacts: list[str] = dataclasses.field(default_factory=list)

    @property
    def window_ids(self) -> list[int]:
        return [w.pk for w in self.windows]


def access_ended_by_move(partner: Partner, jurisdiction: str, at: datetime) -> EndedAccess:
    """What ``partner`` moving to ``jurisdiction`` at ``at`` ends (empty: nothing)."""
    if str(jurisdiction) == str(partner.jurisdiction):
        return EndedAccess()
    windows = [
        w
        for w in EmbargoWindow.objects.filter(partner=partner, closes_at__gt=at)
        .select_related("release")
        .order_by("opens_at", "pk")
        if not w.release.jurisdiction_allowed(str(jurisdiction))
    ]
    if not windows:
        return EndedAccess()
    return EndedAccess(
        windows=windows,
        grants=list(
            Grant.objects.filter(window__in=windows, status=Grant.Status.ACTIVE)
            .select_related("checkpoint__release")
            .order_by("pk")
        ),
        members=list(
            Membership.objects.filter(partner=partner)
            .order_by("user__username")
            .values_list("user__username", flat=True)
        ),
        contacts=[str(c) for c in PartnerContact.objects.filter(partner=partner, notify=True)],
    )


# The tasks the migrations schedule (audit 0004, partners 0006, 0008 and 0011), with how often
# they run as shipped: the controls the dashboard warns about when off, slowed, changed,
# not running or failing.
SHIPPED_PERIODS = {
    "accessctl.audit.tasks.seal_audit_log": timedelta(seconds=5),
    **{
        f"partners.tasks.{name}": timedelta(minutes=1)
        for name in (
            "expire_grants",
            "open_windows",
            "close_windows",
            "lift_embargoes",
            "expire_ndas",
            "remind_pending_requests",
            "announce_deadlines",
            "send_notifications",
        )
    },
    # Every 10 s since partners 0011: an interrupted cascade is picked up within 30 s.
    "partners.tasks.resume_revocations": timedelta(seconds=10),
    "partners.tasks.send_staff_digest": timedelta(days=1),  # crontab 07:00 UTC
}
LIFECYCLE_TASKS = frozenset(SHIPPED_PERIODS)

# A schedule may run at most this many times less often than shipped (see
# ``actions.change_schedule``); a task that has not run for STALE_FACTOR times its period
# is a warning. Beat writes ``last_run_at`` to the database every few minutes, not at
# each run, hence the slack.
MAX_SLOWDOWN = 10
STALE_FACTOR = 3
BEAT_SYNC_SLACK = timedelta(minutes=5)


def schedule_period(task: PeriodicTask, *, at: datetime) -> timedelta | None:
    """The longest time between two runs of ``task``'s schedule over the coming weeks
    (``None``: it has no schedule we can read)."""
    if task.interval is not None:
        return timedelta(seconds=task.interval.schedule.run_every.total_seconds())
    if task.crontab is None:
        return None
    cron = task.crontab.schedule
    # Eight days hold every weekly pattern; the wait after the last run in them is
    # measured too, so a rarer pattern shows its gap as well.
    horizon = at + timedelta(days=8)
    longest, moment = timedelta(0), at
    while moment < horizon and longest <= MAX_SLOWDOWN * timedelta(days=1):
        start, delta, _ = cron.remaining_delta(moment)
        following = start + delta
        longest = max(longest, following - moment)
        moment = max(following, moment + timedelta(seconds=1))
    return longest


def _last_event(task: PeriodicTask, **changes: Any) -> AuditEvent | None:
    return (
        AuditEvent.objects.filter(
            action=AuditAction.SCHEDULE_CHANGED,
            target_type=PeriodicTask._meta.label_lower,
            target_id=str(task.pk),
            **changes,
        )
        .order_by("-occurred_at", "-id")
        .first()
    )


def disabled_schedules() -> list[dict[str, Any]]:
    """Each lifecycle schedule that is switched off, with the event that switched it off
    (``None`` when no audited action did: a change behind the portal's back)."""
    return [
        {"task": task, "event": _last_event(task, changes__enabled__1=False)}
        for task in PeriodicTask.objects.filter(enabled=False, task__in=LIFECYCLE_TASKS).order_by(
            "name"
        )
    ]


def schedule_warnings(*, at: datetime) -> list[dict[str, Any]]:
    """What else makes a switched-on lifecycle schedule not do its job, one entry per
    finding (``kind``: ``changed``, ``not_running`` or ``failing``, with ``detail`` and,
    for a change, the ``event`` that made it)."""
    from django_celery_results.models import TaskResult

    found: list[dict[str, Any]] = []
    last_results = TaskResult.objects.filter(
        task_name=OuterRef("task"), date_done__isnull=False
    ).order_by("-date_done", "-id")
    tasks = (
        PeriodicTask.objects.filter(enabled=True, task__in=LIFECYCLE_TASKS)
        .select_related("interval", "crontab")
        .annotate(  # each task's last result, in the same query
            last_status=Subquery(last_results.values("status")[:1]),
            last_done=Subquery(last_results.values("date_done")[:1]),
        )
        .order_by("name")
    )
    for task in tasks:
        shipped = SHIPPED_PERIODS[task.task]
        period = schedule_period(task, at=at)
        if period is None or abs(period - shipped) > timedelta(seconds=1):
            found.append(
                {
                    "task": task,
                    "kind": "changed",
                    "detail": f"runs {task.interval or task.crontab or 'never'} "
                    f"(shipped: every {span(shipped)})",
                    "event": _last_event(task, changes__has_any_keys=["interval", "crontab"]),
                }
            )
        since = task.last_run_at or task.date_changed
        late = STALE_FACTOR * (period or shipped) + BEAT_SYNC_SLACK
        if since is not None and since < at - late:
            found.append(
                {
                    "task": task,
                    "kind": "not_running",
                    "detail": f"last ran {formats.moment(since)}"
                    if task.last_run_at
                    else f"has not run since it was set, {formats.moment(since)}",
                    "event": None,
                }
            )
        if task.last_status == "FAILURE":
            found.append(
                {
                    "task": task,
                    "kind": "failing",
                    "detail": f"its last run failed at {formats.moment(task.last_done)}",
                    "event": None,
                }
            )
    return found


def span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


# Partner-scoped selectors for the API: each takes the partner first, and an object of
# another partner is simply not found (404, never 403).


def partner_release(partner: Partner, slug: str) -> Release:
    return get_object_or_404(visible_releases(partner), slug=slug)


def partner_windows(partner: Partner, release: Release) -> QuerySet[EmbargoWindow]:
    return (
        EmbargoWindow.objects.filter(partner=partner, release=release)
        .select_related("release")
        .order_by("opens_at")
    )


def window_for_display(partner: Partner, release: Release, at: datetime) -> EmbargoWindow | None:
    """The open window, else the next, else the last one that closed."""
    return display_window(list(partner_windows(partner, release)), at)


def display_window(windows: list[EmbargoWindow], at: datetime) -> EmbargoWindow | None:
    """``window_for_display`` over a partner's windows of one release, sorted by opening."""
    for window in windows:
        if window.closes_at > at:
            return window
    return windows[-1] if windows else None


def prefetched_windows(release: Release) -> list[EmbargoWindow]:
    """The partner's windows ``visible_releases_with_windows`` attached to ``release``."""
    windows: list[EmbargoWindow] = release.partner_windows  # type: ignore[attr-defined]
    return windows


def visible_releases_with_windows(partner: Partner) -> QuerySet[Release]:
    """``visible_releases``, each with ``partner_windows``: this partner's windows of it,
    sorted by opening (one query for the whole page, not one per release)."""
    return visible_releases(partner).prefetch_related(
        Prefetch(
            "windows",
            queryset=EmbargoWindow.objects.filter(partner=partner).order_by("opens_at"),
            to_attr="partner_windows",
        )
    )


def partner_checkpoint(partner: Partner, checkpoint_id: int) -> Checkpoint:
    return get_object_or_404(
        Checkpoint.objects.select_related("release").filter(
            release__in=visible_releases(partner).values("pk")
        ),
        pk=checkpoint_id,
    )


def windowed_checkpoint(partner: Partner, checkpoint_id: int) -> tuple[Checkpoint, bool]:
    """A checkpoint of a release the partner has (or had) a window for, whatever its export
    policy, and whether that policy allows the partner (``partner_checkpoint`` finds it).

    For a request naming it: a blocked release still answers 404, but the request is a
    refusal of something the partner was given, so it leaves its evidence. 404 if no
    window of this partner ever named the release (another partner's: nothing to record).
    """
    checkpoint = get_object_or_404(
        Checkpoint.objects.select_related("release")
        .filter(release__windows__partner=partner)
        .distinct(),
        pk=checkpoint_id,
    )
    allowed = allowed_releases(partner).filter(pk=checkpoint.release_id).exists()
    return checkpoint, allowed


def partner_grants(partner: Partner) -> QuerySet[Grant]:
    return Grant.objects.filter(
        partner=partner, checkpoint__release__in=allowed_releases(partner).values("pk")
    ).select_related("checkpoint__release", "window")


def partner_grant(partner: Partner, grant_id: int) -> Grant:
    return get_object_or_404(partner_grants(partner), pk=grant_id)


def hub_release(partner: Partner, slug: str) -> tuple[Release, bool]:
    """The release the partner has (or had) a window for, by slug, and whether its export
    policy allows the partner (as ``windowed_checkpoint``): 404 without a window (another
    partner's release, or none); a blocked one is returned so the refusal is recorded."""
    release = get_object_or_404(
        Release.objects.filter(windows__partner=partner).distinct(), slug=slug
    )
    allowed = allowed_releases(partner).filter(pk=release.pk).exists()
    return release, allowed


def hub_checkpoints(partner: Partner, release: Release) -> list[Checkpoint]:
    """The checkpoints of a release the partner has a window for (``hub_release``), newest
    registration first, each with its artifacts (sorted by path): the repository's
    revisions on the Hub-compatible endpoint. None for a release without its window."""
    return list(
        Checkpoint.objects.filter(
            release=release, release__in=Release.objects.filter(windows__partner=partner)
        )
        .select_related("release")
        .prefetch_related(Prefetch("artifacts", queryset=Artifact.objects.order_by("path")))
        .order_by("-registered_at", "-pk")
    )


def hub_grant(partner: Partner, checkpoint: Checkpoint) -> Grant | None:
    """The partner's grant for the checkpoint that decides a download: the active one,
    else the latest (revoked, expired or exhausted: it refuses), else ``None`` (never had
    one: the first use may issue one)."""
    return (
        Grant.objects.filter(partner=partner, checkpoint=checkpoint)
        .order_by(Case(When(status=Grant.Status.ACTIVE, then=0), default=1), "-issued_at", "-pk")
        .first()
    )


def hub_grants(partner: Partner, checkpoints: list[Checkpoint]) -> dict[int, Grant]:
    """``hub_grant`` of each of ``checkpoints`` that has one, by checkpoint id, each with
    its partner, window and checkpoint's release (what ``rules.download_facts`` reads), in
    one query."""
    grants = (
        Grant.objects.filter(partner=partner, checkpoint__in=[c.pk for c in checkpoints])
        .select_related("partner", "window", "checkpoint__release")
        .order_by(
            "checkpoint_id",
            Case(When(status=Grant.Status.ACTIVE, then=0), default=1),
            "-issued_at",
            "-pk",
        )
    )
    found: dict[int, Grant] = {}
    for grant in grants:
        found.setdefault(grant.checkpoint_id, grant)
    return found


def pending_request_exists(partner: Partner, checkpoint: Checkpoint) -> bool:
    return GrantRequest.objects.filter(
        partner=partner, checkpoint=checkpoint, status=GrantRequest.Status.PENDING
    ).exists()


def partner_grant_request(partner: Partner, request_id: int) -> GrantRequest:
    return get_object_or_404(
        GrantRequest.objects.filter(
            partner=partner, checkpoint__release__in=allowed_releases(partner).values("pk")
        ).select_related("checkpoint__release"),
        pk=request_id,
    )


_Loaders = list[tuple[str, Any, tuple[Any, ...]]]
_LOADERS: dict[tuple[type[Model], tuple[str, ...], str], _Loaders] = {}


def _loaders(model: type[Model], names: tuple[str, ...], vendor: str) -> _Loaders:
    """Per (model, set of fields): the fields in the model's order, each with the
    converters the ORM's compiler applies when it loads it (the backend's: SQLite returns
    text for datetimes, integers for booleans; then the field's own). They depend on the
    model and the backend only, so they are worked out once per process."""
    key = (model, names, vendor)
    found = _LOADERS.get(key)
    if found is None:
        fields = [f for f in model._meta.concrete_fields if f.attname in names]
        found = []
        for field in fields:
            column = field.get_col(model._meta.db_table)
            converters = connection.ops.get_db_converters(column) + column.get_db_converters(
                connection
            )
            found.append((field.attname, column, tuple(converters)))
        _LOADERS[key] = found
    return found


def _partial(model: type[M], **values: Any) -> M:
    """An instance as the ORM would load it with ``only(*values)``: the other fields are
    deferred, so reading one queries the database instead of returning a wrong default."""
    loaders = _loaders(model, tuple(values), connection.vendor)
    converted = []
    for attname, column, converters in loaders:
        value = values[attname]
        for convert in converters:
            value = convert(value, column, connection)
        converted.append(value)
    return model.from_db("default", [attname for attname, _, _ in loaders], converted)


_DOWNLOAD_TARGET = """
    SELECT g.id, g.status, g.expires_at, g.quota_bytes, g.bytes_used, g.checkpoint_id,
           g.window_id, w.opens_at, w.closes_at, c.status, c.release_id, c.registered_at,
           r.policy,
           r.policy_jurisdictions, r.status, r.fingerprint, a.id, a.path, a.size, a.sha256,
           a.storage_key, v.status, v.size, v.sha256, v.storage_key,
           l.id, l.opened_at, l.expires_at, l.covered, l.reauthorizations
    FROM partners_grant g
    JOIN partners_embargowindow w ON w.id = g.window_id
    JOIN partners_checkpoint c ON c.id = g.checkpoint_id
    JOIN partners_release r ON r.id = c.release_id
    LEFT JOIN partners_artifact a ON a.checkpoint_id = g.checkpoint_id AND a.path = %s
    LEFT JOIN partners_artifactvariant v ON v.artifact_id = a.id AND v.partner_id = g.partner_id
    LEFT JOIN partners_downloadlease l ON l.grant_id = g.id AND l.artifact_id = a.id
    WHERE g.id = %s AND g.partner_id = %s
"""


def download_target(partner: Partner, grant_id: int, path: str) -> tuple[Grant, Artifact | None]:
    """The partner's grant (with its window, checkpoint and release) and the file, read in
    one statement: this is the hot path of every download.

    The related rows come back as instances holding only what the decision reads; any
    other field is deferred and loads on access, so nothing reads a wrong default.
    Another partner's grant is not found (404). A grant of a release whose export policy
    blocks the partner is returned, so the caller can record the denied attempt; it must
    then answer 404 like ``partner_grant`` (``FileView`` does).

    A file of a fingerprinted release is the partner's own copy (docs/fingerprints.md):
    when its variant is ready, the artifact's ``storage_key``, ``size`` and ``sha256`` are
    the variant's; ``artifact.variant_status`` says which (``None``: a release without
    fingerprinting, the shared file; ``pending``, ``failed`` or ``missing``: not servable
    yet, ``send_file`` refuses it). Every file of a fingerprinted release has a variant
    (configuration files too, made ready once the partner's commitment is sealed), so no
    byte of it is served before the seal.
    """
    with hot_cursor() as cursor:
        cursor.execute(_DOWNLOAD_TARGET, [path, grant_id, partner.pk])
        row = cursor.fetchone()
    if row is None:
        raise Http404
    row, lease_row = row[:_LEASE_COLUMNS], row[_LEASE_COLUMNS:]
    (
        gid,
        status,
        expires_at,
        quota,
        used,
        checkpoint_id,
        window_id,
        opens_at,
        closes_at,
        checkpoint_status,
        release_id,
        registered_at,
        policy,
        jurisdictions,
        release_status,
        fingerprinted,
        aid,
        apath,
        size,
        sha256,
        key,
        variant_status,
        variant_size,
        variant_sha256,
        variant_key,
    ) = row
    release = _partial(
        Release,
        id=release_id,
        policy=policy,
        policy_jurisdictions=jurisdictions,
        status=release_status,
        fingerprint=fingerprinted,
    )
    checkpoint = _partial(
        Checkpoint,
        id=checkpoint_id,
        status=checkpoint_status,
        release_id=release_id,
        registered_at=registered_at,  # the Last-Modified of preconditions
    )
    checkpoint.release = release
    window = _partial(EmbargoWindow, id=window_id, opens_at=opens_at, closes_at=closes_at)
    grant = _partial(
        Grant,
        id=gid,
        partner_id=partner.pk,
        checkpoint_id=checkpoint_id,
        window_id=window_id,
        status=status,
        expires_at=expires_at,
        quota_bytes=quota,
        bytes_used=used,
    )
    grant.partner, grant.checkpoint, grant.window = partner, checkpoint, window
    artifact = None
    if aid is not None:
        artifact = _partial(
            Artifact,
            id=aid,
            checkpoint_id=checkpoint_id,
            path=apath,
            size=size,
            sha256=sha256,
            storage_key=key,
        )
        artifact.variant_status = _variant_status(fingerprinted, variant_status)
        if variant_status == ArtifactVariant.Status.READY:
            artifact.size, artifact.sha256 = variant_size, variant_sha256
            artifact.storage_key = variant_key
        artifact.lease_read = _lease_read(lease_row)
    return grant, artifact


# The file's lease columns come last in ``_DOWNLOAD_TARGET``'s row.
_LEASE_COLUMNS = 25

# A file of a fingerprinted release that has no variant for the partner (none was
# prepared: no grant path leaves one out, this is the rule's backstop) is not served: its
# partner's commitment may not be sealed yet (docs/fingerprints.md, *Serving*).
VARIANT_MISSING = "missing"


def _variant_status(fingerprinted: bool, status: str | None) -> str | None:
    """What ``variant_status`` a file carries: its variant's status, ``None`` for a
    release without fingerprinting (the shared file), ``VARIANT_MISSING`` for a
    fingerprinted release's file without a variant."""
    if status is None and fingerprinted:
        return VARIANT_MISSING
    return status


def _lease_read(columns: tuple[Any, ...]) -> LeaseRead:
    """The lease part of ``_DOWNLOAD_TARGET``'s row, as ``authorize_download`` takes it."""
    lease_id, opened_at, expires_at, covered, reauthorizations = columns
    if lease_id is None:
        return LeaseRead(None, LeaseState(None, None, [], 0))
    times = _partial(DownloadLease, id=lease_id, opened_at=opened_at, expires_at=expires_at)
    if isinstance(covered, str):  # jsonb comes as text (Django's JSONField decodes it)
        covered = json.loads(covered)
    state = LeaseState(
        opened_at=times.opened_at,
        expires_at=times.expires_at,
        covered=[(a, b) for a, b in covered],
        reauthorizations=reauthorizations,
    )
    return LeaseRead(lease_id, state)


def download_files(grant: Grant, paths: list[str]) -> dict[str, Artifact]:
    """The files of ``grant``'s checkpoint named in ``paths``, by path (a path the
    checkpoint lacks is absent), holding what a download reads, each the partner's own
    copy where the release is fingerprinted (with ``variant_status``); two statements.
    ``grant`` is the partner's, from ``download_target``."""
    rows = list(
        Artifact.objects.filter(checkpoint_id=grant.checkpoint_id, path__in=paths).only(
            "id", "checkpoint_id", "path", "size", "sha256", "storage_key"
        )
    )
    # A fingerprinted release's files are the partner's own copies, as ``download_target``
    # and ``partner_files`` give them (docs/fingerprints.md).
    variants = {
        v.artifact_id: v
        for v in ArtifactVariant.objects.filter(
            partner_id=grant.partner_id, artifact_id__in=[a.pk for a in rows]
        ).only("artifact_id", "status", "size", "sha256", "storage_key")
    }
    fingerprinted = bool(grant.checkpoint.release.fingerprint)
    for artifact in rows:
        variant = variants.get(artifact.pk)
        artifact.variant_status = _variant_status(
            fingerprinted, variant.status if variant is not None else None
        )
        if variant is not None and variant.status == ArtifactVariant.Status.READY:
            artifact.size, artifact.sha256 = cast(int, variant.size), variant.sha256
            artifact.storage_key = variant.storage_key
    return {a.path: a for a in rows}


_ACCESS_SQL = """
    SELECT t.id, t.user_id, t.partner_id, t.name, t.prefix, t.scopes, t.allowed_networks,
           t.expires_at, t.last_used_at, t.revoked_at,
           u.username, u.is_active, u.is_staff, u.is_superuser,
           p.slug, p.status, p.jurisdiction, p.allowed_networks, p.nda_expires_at,
           m.partner_id
    FROM partners_accesstoken t
    JOIN auth_user u ON u.id = t.user_id
    LEFT JOIN partners_partner p ON p.id = t.partner_id
    LEFT JOIN partners_membership m ON m.user_id = t.user_id
    WHERE t.digest IN ({placeholders})
"""


def token_by_digests(digests: list[str]) -> AccessToken | None:
    """The token whose digest is one of ``digests``, with its user, its partner and the
    partner its user belongs to now (``member_of_id``), in one indexed statement: every
    API request runs it."""
    with hot_cursor() as cursor:
        sql = _ACCESS_SQL.format(placeholders=", ".join(["%s"] * len(digests)))
        cursor.execute(sql, digests)
        row = cursor.fetchone()
    if row is None:
        return None
    (
        tid,
        user_id,
        partner_id,
        name,
        prefix,
        scopes,
        networks,
        expires_at,
        last_used_at,
        revoked_at,
        username,
        is_active,
        is_staff,
        is_superuser,
        slug,
        status,
        jurisdiction,
        partner_networks,
        nda_expires_at,
        member_of,
    ) = row
    user = _partial(
        get_user_model(),
        id=user_id,
        username=username,
        is_active=is_active,
        is_staff=is_staff,
        is_superuser=is_superuser,
    )
    token = _partial(
        AccessToken,
        id=tid,
        user_id=user_id,
        partner_id=partner_id,
        name=name,
        prefix=prefix,
        scopes=scopes,
        allowed_networks=networks,
        expires_at=expires_at,
        last_used_at=last_used_at,
        revoked_at=revoked_at,
    )
    token.user = user
    # The partner the token's user acts for *now* (None: none): a partner token whose
    # user has left its partner is refused even if its revocation were missed.
    token.member_of_id = member_of  # type: ignore[attr-defined]
    if partner_id is not None:
        token.partner = _partial(
            Partner,
            id=partner_id,
            slug=slug,
            status=status,
            jurisdiction=jurisdiction,
            allowed_networks=partner_networks,
            nda_expires_at=nda_expires_at,
        )
    return token


def unready_variants(variant_ids: list[int] | None) -> list[int]:
    """Of ``variant_ids`` (every variant when ``None``), those not ready yet."""
    found = ArtifactVariant.objects.exclude(status=ArtifactVariant.Status.READY)
    if variant_ids is not None:
        found = found.filter(pk__in=variant_ids)
    return list(found.order_by("pk").values_list("pk", flat=True))


def partner_files(partner: Partner, checkpoint: Checkpoint) -> list[Artifact]:
    """The checkpoint's files as ``partner`` gets them, by path: each with the size,
    SHA-256 and storage key of the partner's ready variant where it has one
    (docs/fingerprints.md), and ``variant_status`` as ``download_target`` sets it. Reads
    the checkpoint's prefetched ``artifacts`` when there are. A release without
    fingerprinting never had variants (``update_release`` keeps it so): no query."""
    if not checkpoint.release.fingerprint:
        return sorted(checkpoint.artifacts.all(), key=lambda a: a.path)
    variants = {
        v.artifact_id: v
        for v in ArtifactVariant.objects.filter(
            partner=partner, artifact__checkpoint_id=checkpoint.pk
        ).only("artifact_id", "status", "size", "sha256", "storage_key")
    }
    files = []
    for shared in sorted(checkpoint.artifacts.all(), key=lambda a: a.path):
        # A copy: the checkpoint's (prefetched) artifacts stay the shared files, which
        # the Hub's shared commit id is computed from (``hub._commit_ids``).
        artifact = copy.copy(shared)
        variant = variants.get(artifact.pk)
        artifact.variant_status = variant.status if variant is not None else None
        if variant is not None and variant.status == ArtifactVariant.Status.READY:
            artifact.size, artifact.sha256 = cast(int, variant.size), variant.sha256
            artifact.storage_key = variant.storage_key
        files.append(artifact)
    return files


def unfinished_revocations(*, older_than: datetime) -> list[int]:
    """Revocations whose fan-out has not finished, that took effect before ``older_than``."""
    return list(
        Revocation.objects.filter(
            status=Revocation.Status.PENDING, effective_at__lte=older_than
        ).values_list("pk", flat=True)
    )


def member_candidates(partner: Partner | None) -> QuerySet[User]:
    """Whom a partner's member list may name: active users who are neither staff nor
    another partner's (``add_member``'s rule), and the partner's own current members."""
    users = get_user_model().objects.filter(is_active=True, is_staff=False, is_superuser=False)
    eligible = Q(partner_membership__isnull=True)
    if partner is not None and partner.pk is not None:
        eligible |= Q(partner_membership__partner=partner)
    return users.filter(eligible).order_by("username")


def approval_refusal(*, actor: User, request: GrantRequest) -> rules.Result:
    """``rules.may_approve`` for ``actor`` on ``request`` (four eyes: not the requester,
    not twice): what ``approve_grant_request`` decides under the request's row lock, and
    what the request's page reads to say so before anyone presses Approve. A read, so it
    consults no authority (the caller's right to decide is the action's to check)."""
    return rules.may_approve(
        is_requester=request.requested_by_id == actor.pk,
        approved_before=request.approvals.filter(approver=actor).exists(),
    )


def partner_cascade_pending(partner: Partner) -> bool:
    """Whether a suspension's fan-out is still running for ``partner``."""
    return Revocation.objects.filter(
        scope=Revocation.Scope.PARTNER, partner=partner, status=Revocation.Status.PENDING
    ).exists()


def reinstate_refusal(partner: Partner) -> rules.Result:
    """Why ``reinstate_partner`` would refuse ``partner`` now: its suspension's fan-out
    is still running (``revocation_in_progress``). The partner's page asks this too."""
    if partner_cascade_pending(partner):
        return rules.Failure(
            "revocation_in_progress",
            f"Partner {partner.slug}'s grants are still being revoked; try again in a minute.",
        )
    return rules.SUCCESS
