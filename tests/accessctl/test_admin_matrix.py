"""Every path of the staff portal, for every kind of person, generated from the live site.

The cells come from ``admin.site`` itself: each registered ModelAdmin's changelist, add,
change, delete and history pages, every other URL its ``get_urls()`` adds, every action
it has, the autocomplete lookups it offers, and the site's own pages. Each is crossed
with every role of ``partners.roles.ROLES``, a superuser, a staff member without a role,
a partner member (not staff) and an anonymous visitor.

What each person may do is computed from Django's permission model (the role's
permissions in ``ROLES``; a superuser holds every permission), narrowed only where the
portal deliberately offers less (``PORTAL``: evidence is read-only, rows change through
actions, domain rows are never deleted) or where a page is one operation of the authority
table (``partners.authority.RULES``: the rule's permission, or any staff member when it
names none). It is never asked of the admin itself, which is what is under test.

A refused cell must answer 403 (or send a non-staff person to the sign-in page) and leave
every table as it was. An allowed form is submitted with data built from the rendered
form (inline management forms included) and must change its row; where the portal first
shows what a change ends (a partner's new jurisdiction closing windows), nothing changes
until that page's own form is submitted. A new admin, URL or action the matrix cannot
build an object, data or expectation for fails its cell.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.test import Client, override_settings
from django.urls import URLPattern, reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accessctl.audit.models import AuditCheckpoint, AuditEvent
from partners import actions
from partners.authority import RULES, Operation, Subject
from partners.forbidden import DOMAINS, PORTAL_OPERATIONS
from partners.models import Notification, Revocation
from partners.roles import ROLES
from tests import factories as f

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
NEVER = "never"  # the portal never offers this, not even to a superuser
SUPERUSER, NO_ROLE, MEMBER, ANONYMOUS = (
    "superuser",
    "staff without a role",
    "partner member",
    "anonymous",
)
PEOPLE = [*ROLES, SUPERUSER, NO_ROLE, MEMBER, ANONYMOUS]
STAFF = [*ROLES, SUPERUSER, NO_ROLE]

# Domain rows are the record: they change through audited actions (a partner is
# terminated, a grant revoked, a checkpoint pulled) and no admin of these apps deletes one.
DOMAIN_APPS = {"partners", "audit", "signing"}

# Where the portal offers less than Django's model permissions would (each with its why),
# or where a page is one operation of the authority table. Anything not named here is
# Django's own rule: ``<app>.<operation>_<model>``.
_HISTORY = {"add": NEVER, "change": NEVER}  # evidence: read-only
_ACTION_MADE = {"change": NEVER}  # made by an action, then history
PORTAL: dict[str, dict[str, str | Operation]] = {
    # Accounts change through audited actions and are deactivated, never deleted; roles
    # are kept by migrations; nobody adds, edits or configures another person's device.
    "auth.user": {"delete": NEVER},
    "auth.group": {"add": NEVER, "change": NEVER, "delete": NEVER},
    "otp_totp.totpdevice": {
        "add": NEVER,
        "change": NEVER,
        "delete": Operation.SECOND_FACTOR_REMOVE,
    },
    "otp_static.staticdevice": {
        "add": NEVER,
        "change": NEVER,
        "delete": Operation.SECOND_FACTOR_REMOVE,
    },
    "audit.auditevent": _HISTORY,
    # The signed checkpoints: readable by whoever reads the trail (Compliance included).
    "audit.auditcheckpoint": {**_HISTORY, "view": "audit.view_auditevent"},
    "audit.auditexport": {**_HISTORY, "view": "audit.export_auditevent"},
    "partners.revocation": _HISTORY,
    "partners.notification": _HISTORY,
    "partners.grant": {**_ACTION_MADE, "add": Operation.GRANT_ISSUE},
    # Staff file requests holding the issue permission (partners file theirs by API).
    "partners.grantrequest": {**_ACTION_MADE, "add": "partners.issue_grant"},
    # Add: a staff member's token for themselves (any staff member, second factor).
    "partners.accesstoken": {**_ACTION_MADE, "add": Operation.TOKEN_CREATE_STAFF},
    # A partner member's token is asked for; the member claims it from an email.
    "partners.tokeninvitation": {**_ACTION_MADE, "add": Operation.TOKEN_INVITE_MEMBER},
    # Registered by command or staff API; afterwards changed only by being pulled: the
    # page only reads, even for a role holding change_checkpoint.
    "partners.checkpoint": {"add": NEVER, "change": NEVER},
    # A suspect file set is submitted (the Security officer); the detection is history.
    "partners.detection": {**_ACTION_MADE, "add": Operation.DETECTION_RUN},
    # Schedules are controls: installed by migrations, never deleted; intervals and
    # crontabs are read-only once made.
    "django_celery_beat.periodictask": {"add": NEVER, "delete": NEVER},
    # (Deleting a schedule would delete the periodic tasks using it.)
    "django_celery_beat.intervalschedule": {**_ACTION_MADE, "delete": NEVER},
    "django_celery_beat.crontabschedule": {**_ACTION_MADE, "delete": NEVER},
    # Celery's task results are written by workers only: nobody adds one by hand.
    "django_celery_results.taskresult": {"add": NEVER},
    "django_celery_results.groupresult": {"add": NEVER},
    # django-axes: attempts are written by sign-ins only; deleting one clears a lockout.
    "axes.accessattempt": {"add": NEVER, "delete": Operation.STAFF_CLEAR_LOCKOUT},
    "axes.accesslog": {"add": NEVER},
    "axes.accessfailurelog": {"add": NEVER},
}


def held(person: str) -> set[str]:
    return {f"{app}.{codename}" for app, codename in ROLES.get(person, [])}


def may(person: str, label: str, operation: str) -> bool:
    """Django's answer (from ``ROLES``), narrowed by ``PORTAL``; for an ``Operation``, the
    authority table's rule (the portal is staff-only; a page of a ``SELF`` operation acts
    for the person signed in, so its subject condition holds)."""
    app, model = label.split(".")
    needed = PORTAL.get(label, {}).get(operation, f"{app}.{operation}_{model}")
    if operation == "delete" and app in DOMAIN_APPS:
        needed = NEVER
    if needed == NEVER or person not in STAFF:
        return False
    if isinstance(needed, Operation):
        rule = RULES[needed]
        assert rule.subject in (Subject.ANY, Subject.SELF), f"{needed}: model {rule.subject}"
        if rule.permission is None:
            return True  # any active staff member
        needed = rule.permission
    return person == SUPERUSER or needed in held(person)


def may_see(person: str, label: str) -> bool:
    return may(person, label, "view") or may(person, label, "change")


# The world: one of each thing, built by calling the actions.


@dataclass
class World:
    objects: dict[str, Any] = field(default_factory=dict)  # name -> object
    users: dict[str, Any] = field(default_factory=dict)  # person -> user
    clients: dict[str, Client] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)  # person -> session key
    baseline: dict[str, tuple] = field(default_factory=dict)
    last_event: int = 0  # the newest audit event when the world was built

    forms: dict[str, dict[str, Any]] = field(default_factory=dict)
    acting: str = ""  # the person the current cell runs as
    codes: dict[str, str] = field(default_factory=dict)  # person -> a backup code of theirs

    def superuser_form(self, url: str, model: Any, form_id: str = "") -> dict[str, Any]:
        """The form a superuser is shown at ``url`` (empty when none), once per module."""
        if url not in self.forms:
            page = self.clients[SUPERUSER].get(url)
            ok = page.status_code == 200
            self.forms[url] = form_data(page, model, form_id) if ok else {}
        return self.forms[url]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.objects[name]
        except KeyError:
            raise AttributeError(name) from None


def _sign_in(user: Any) -> Client:
    client = Client()
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def _a_finished_detection(officer: Any) -> tuple[Any, Any]:
    """A fingerprinted release whose partner holds a key, and a finished detection of it
    with a signed report (as the task writes it)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from accessctl.signing.keys import sign_detached
    from accessctl_wire import canonical_json
    from partners.models import Detection
    from tests.partners.detection_world import keyed_release
    from tests.partners.test_detections import safetensors_bytes

    marked = keyed_release("v5", f.partner("keyed"))
    detection = actions.request_detection(
        actor=officer,
        release=marked,
        files=[SimpleUploadedFile("leak.safetensors", safetensors_bytes())],
        reason="matrix",
    )
    report = {"detection": detection.pk, "release": "v5", "verdict": "inconclusive", "named": []}
    Detection.objects.filter(pk=detection.pk).update(
        status="done",
        verdict="inconclusive",
        report=report,
        signature=sign_detached(canonical_json(report)),
        finished_at=timezone.now(),
    )
    detection.refresh_from_db()
    return marked, detection


def build_world() -> World:
    from django_celery_results.models import GroupResult, TaskResult

    from accessctl.audit.exports import request_export, write_export
    from accessctl.audit.sealing import seal

    w = World()
    for person in ROLES:
        w.users[person] = f.staff(person)
    w.users[SUPERUSER] = f.superuser()
    w.users[NO_ROLE] = f.staff()
    o = w.objects
    o["partner"] = f.partner("aurora")
    o["other_partner"] = f.partner("borealis")
    o["suspended_partner"] = f.partner("cygnus")
    actions.suspend_partner(actor=None, partner=o["suspended_partner"], reason="matrix")
    actions.cascade_revocation(Revocation.objects.get(partner=o["suspended_partner"]).pk)
    w.users[MEMBER] = o["member"] = f.partner_user(o["partner"])
    o["free_user"] = f.UserFactory()  # not staff, no partner: may become a member
    o["member2"] = f.partner_user(o["partner"])  # no token yet
    o["contact"] = f.contact(o["partner"])
    # Its export policy blocks one jurisdiction: moving a partner there ends its window.
    o["launched"] = f.release("v3", public_in=-DAY, policy="deny", policy_jurisdictions=["CN"])
    o["upcoming"] = f.release("v4", public_in=30 * DAY)
    o["checkpoint"] = f.stored_checkpoint(o["launched"], {"model.safetensors": b"weights"})
    o["checkpoint2"] = f.checkpoint(o["launched"], tag="spare")
    o["upcoming_cp"] = f.checkpoint(o["upcoming"], tag="u1")
    o["upcoming_cp2"] = f.checkpoint(o["upcoming"], tag="u2")
    o["window"] = f.window(o["launched"], o["partner"])
    f.window(o["upcoming"], o["partner"])
    o["grant"] = f.grant(o["checkpoint"], o["partner"])
    f.authorize(o["grant"])
    o["grant_request"] = actions.request_grant(
        actor=o["member"], partner=o["partner"], checkpoint=o["upcoming_cp"], quota_bytes=100
    )
    f.token(o["member"])
    o["token"] = o["member"].access_tokens.get()
    # Asked for member2 (the claim link would be emailed after commit; never here).
    o["invitation"] = actions.invite_member_token(
        actor=w.users["Partner manager"], user=o["member2"], name="matrix", scopes=["read"]
    )
    revoked = f.grant(o["checkpoint2"], o["partner"])
    actions.revoke_grant(actor=None, grant=revoked, reason="matrix")
    o["revocation"] = Revocation.objects.get(grant=revoked)
    actions.cascade_revocation(o["revocation"].pk)
    o["notification"] = Notification.objects.order_by("pk").first()
    o["digest"] = PeriodicTask.objects.get(task="partners.tasks.send_staff_digest")
    actions.change_schedule(actor=w.users[SUPERUSER], task=o["digest"], enabled=False)
    o["sealing"] = PeriodicTask.objects.get(task="accessctl.audit.tasks.seal_audit_log")
    o["interval"] = o["sealing"].interval
    o["crontab"] = CrontabSchedule.objects.get(hour="7")
    o["marked"], o["detection"] = _a_finished_detection(w.users[SUPERUSER])
    o["export"] = write_export(request_export(actor=w.users["Compliance"], filters={}).pk)
    seal()
    o["audit_checkpoint"] = AuditCheckpoint.objects.order_by("-pk").first()
    o["event"] = AuditEvent.objects.order_by("-pk").first()
    o["group"] = Group.objects.create(name="Throwaway")
    o["user"] = f.UserFactory(username="throwaway")
    o["totp"] = TOTPDevice.objects.create(user=o["user"], name="old phone", confirmed=True)
    o["static"] = StaticDevice.objects.create(user=o["user"], name="backup", confirmed=True)
    stored = {"content_type": "application/json", "content_encoding": "utf-8"}
    o["task_result"] = TaskResult.objects.create(
        task_id="matrix-task", task_name="partners.tasks.expire_grants", status="SUCCESS", **stored
    )
    o["group_result"] = GroupResult.objects.create(group_id="matrix-group", **stored)
    # A failed and a successful sign-in: django-axes' rows (the attempt expired since).
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    Client().post(
        reverse("admin:login"),
        {"username": o["user"].username, "password": "wrong", "otp_token": ""},
    )
    o["access_attempt"] = AccessAttempt.objects.get()
    # (django-axes writes its failure log only when asked to; ours is off: a row as it would.)
    o["access_failure"] = AccessFailureLog.objects.create(
        username="throwaway", ip_address="127.0.0.1", user_agent="", path_info="/admin/login/"
    )
    for person, user in w.users.items():
        w.clients[person] = _sign_in(user)
        # A one-time code on the person's own device: each cell is rolled back, so the
        # code is fresh in every cell that uses it.
        w.codes[person] = f.backup_code(user)
        w.sessions[person] = w.clients[person].cookies[settings.SESSION_COOKIE_NAME].value
    w.clients[ANONYMOUS] = Client()
    o["access_log"] = AccessLog.objects.order_by("pk").first()
    # Expired (after the sign-ins above, which clean expired attempts up).
    AccessAttempt.objects.update(attempt_time=timezone.now() - 2 * DAY)
    return w


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    """Built once per module, in a transaction rolled back at the end; each cell runs in
    a savepoint of it (pytest-django's ``db``), so no cell sees another's changes."""
    root = tmp_path_factory.mktemp("matrix")
    storages = {
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root / "artifacts")},
        },
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root / "exports")},
        },
    }
    hashers = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    with (
        django_db_blocker.unblock(),
        override_settings(STORAGES={**settings.STORAGES, **storages}, PASSWORD_HASHERS=hashers),
        transaction.atomic(),
    ):
        w = build_world()
        w.baseline = fingerprint()
        w.last_event = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True)[0]
        w.objects["storages"] = storages
        yield w
        transaction.set_rollback(True)


@pytest.fixture(autouse=True)
def _artifact_root(settings, world):
    """The world's storage, for every cell (replaces the per-test one of conftest)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {**settings.STORAGES, **world.storages}


# Evidence that a refused request changed nothing: every table, row by row.

UNWATCHED = {"django_session"}  # a request may refresh its own session
DOMAIN = ("partners_", "audit_", "signing_", "django_celery_beat_", "auth_", "otp_")


def _table_digest(table: str) -> str:
    # Table names come from the database's own catalogue, quoted; no input reaches here.
    quoted = connection.ops.quote_name(table)
    return (
        f"SELECT '{table}', count(*), "  # noqa: S608
        f"md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {quoted} x"
    )


def fingerprint() -> dict[str, tuple]:
    """Per table: the row count and a digest of every row (ids included)."""
    tables = sorted(set(connection.introspection.table_names()) - UNWATCHED)
    sql = " UNION ALL ".join(_table_digest(t) for t in tables)
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return {name: (count, digest) for name, count, digest in cursor.fetchall()}


def changed_tables(before: dict[str, tuple]) -> set[str]:
    after = fingerprint()
    return {t for t in before.keys() | after.keys() if before.get(t) != after.get(t)}


# Objects, form data and actions: what the matrix knows how to build, per model.

OBJECT: dict[str, str] = {
    "auth.group": "group",
    "auth.user": "user",
    "otp_totp.totpdevice": "totp",
    "otp_static.staticdevice": "static",
    "axes.accessattempt": "access_attempt",
    "axes.accesslog": "access_log",
    "axes.accessfailurelog": "access_failure",
    "django_celery_results.taskresult": "task_result",
    "django_celery_results.groupresult": "group_result",
    "audit.auditevent": "event",
    "audit.auditexport": "export",
    "audit.auditcheckpoint": "audit_checkpoint",
    "partners.grant": "grant",
    "partners.grantrequest": "grant_request",
    "partners.revocation": "revocation",
    "partners.notification": "notification",
    "partners.partner": "partner",
    "partners.release": "launched",
    "partners.embargowindow": "window",
    "partners.checkpoint": "checkpoint",
    "partners.detection": "detection",
    "partners.accesstoken": "token",
    "partners.tokeninvitation": "invitation",
    "django_celery_beat.periodictask": "sealing",
    "django_celery_beat.intervalschedule": "interval",
    "django_celery_beat.crontabschedule": "crontab",
}

Data = Callable[[World, dict[str, Any]], dict[str, Any]]


def _when(days: int) -> dict[str, str]:
    moment = timezone.now() + timedelta(days=days)
    return {"0": moment.strftime("%Y-%m-%d"), "1": moment.strftime("%H:%M:%S")}


def _split(name: str, days: int) -> dict[str, str]:
    return {f"{name}_{k}": v for k, v in _when(days).items()}


def _new_inline_row(prefix: str, data: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    n = int(data[f"{prefix}-TOTAL_FORMS"])
    return {
        f"{prefix}-TOTAL_FORMS": str(n + 1),
        **{f"{prefix}-{n}-{k}": v for k, v in values.items()},
    }


def _suspect_upload() -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.partners.test_detections import safetensors_bytes

    return SimpleUploadedFile("leak.safetensors", safetensors_bytes())


ADD: dict[str, Data] = {
    "auth.user": lambda w, d: {
        "username": "matrix-new",
        "password1": "a long matrix passphrase",
        "password2": "a long matrix passphrase",
    },
    "partners.partner": lambda w, d: {
        "slug": "matrix-new",
        "legal_name": "Matrix New Inc.",
        "kind": "gpu_vendor",
        "jurisdiction": "US",
        "nda_reference": "NDA-M1",
        **_split("nda_expires_at", 365),
        "allowed_networks": "[]",
    },
    "partners.release": lambda w, d: {
        "slug": "v9",
        "name": "Model v9",
        **_split("public_release_at", 10),
        **_new_inline_row(
            "windows",
            d,
            {
                "partner": w.partner.pk,
                **_split("opens_at", 1),
                **_split("closes_at", 20),
            },
        ),
    },
    "partners.embargowindow": lambda w, d: {
        "release": w.launched.pk,
        "partner": w.other_partner.pk,
        "tier": "matrix",
        **_split("opens_at", -1),
        **_split("closes_at", 10),
    },
    "partners.grant": lambda w, d: {
        "partner": w.partner.pk,
        "checkpoint": w.checkpoint2.pk,
        "quota_bytes": "1000",
    },
    "partners.grantrequest": lambda w, d: {
        "partner": w.partner.pk,
        "checkpoint": w.upcoming_cp2.pk,
        "quota_bytes": "1000",
        "note": "matrix",
    },
    # The person's own token, confirmed with a code of their own second factor.
    "partners.accesstoken": lambda w, d: {
        "name": "matrix",
        "allowed_networks": "[]",
        "second_factor": w.codes.get(w.acting, "000000"),
    },
    "partners.tokeninvitation": lambda w, d: {
        "user": w.member.pk,
        "name": "matrix",
        "scopes": ["read", "download"],
        "allowed_networks": "[]",
    },
    "partners.detection": lambda w, d: {
        "release": w.marked.pk,
        "reason": "matrix",
        "suspects": _suspect_upload(),
    },
    "django_celery_results.taskresult": lambda w, d: {
        "task_id": "matrix-new",
        "status": "SUCCESS",
        "content_type": "application/json",
        "content_encoding": "utf-8",
    },
    "django_celery_results.groupresult": lambda w, d: {
        "group_id": "matrix-new",
        "content_type": "application/json",
        "content_encoding": "utf-8",
    },
    "django_celery_beat.intervalschedule": lambda w, d: {"every": "3", "period": "minutes"},
    "django_celery_beat.crontabschedule": lambda w, d: {"minute": "5", "hour": "4"},
}

# label -> variant -> data. A variant changes its model's row, or the inline table named.
CHANGE: dict[str, dict[str, Data]] = {
    "auth.user": {"fields": lambda w, d: {"first_name": "Matrix"}},
    "django_celery_results.groupresult": {"fields": lambda w, d: {"content_encoding": "binary"}},
    "partners.partner": {
        "fields": lambda w, d: {"legal_name": "Aurora Renamed Inc."},
        # v3's policy blocks CN: a confirmation page first (see CONFIRMED).
        "jurisdiction": lambda w, d: {"jurisdiction": "CN"},
        "contacts": lambda w, d: {"contacts-0-name": "Renamed Contact"},
        "members": lambda w, d: _new_inline_row("memberships", d, {"user": w.free_user.pk}),
    },
    "partners.release": {
        "fields": lambda w, d: {"name": "Model v3, renamed"},
        "windows": lambda w, d: _new_inline_row(
            "windows",
            d,
            {"partner": w.other_partner.pk, **_split("opens_at", -1), **_split("closes_at", 9)},
        ),
    },
    "partners.embargowindow": {"fields": lambda w, d: _split("closes_at", 25)},
    "django_celery_beat.periodictask": {
        "fields": lambda w, d: {"description": "matrix", "enabled": ""},
    },
}
INLINE_TABLE = {
    ("partners.partner", "contacts"): "partners_partnercontact",
    ("partners.partner", "members"): "partners_membership",
    ("partners.release", "windows"): "partners_embargowindow",
}
# Variants answered by a confirmation page (the form's id) that must be submitted to save.
CONFIRMED = {("partners.partner", "jurisdiction"): "confirm-access-ends"}
ADD_STATUS = {"partners.accesstoken": 200}  # the secret is shown once, in the response
# Pages whose form is not the admin's change form: (label, kind) -> the form's id.
FORM_ID = {("partners.accesstoken", "add"): "staff-token-form"}


@dataclass(frozen=True)
class ActionSpec:
    permission: str | None  # ``None``: whoever sees the list
    target: str  # a World object
    changes: bool = True


ACTIONS: dict[tuple[str, str], ActionSpec] = {
    ("partners.grant", "revoke"): ActionSpec("partners.revoke_grant", "grant"),
    ("partners.grantrequest", "approve"): ActionSpec(
        "partners.approve_grantrequest", "grant_request"
    ),
    ("partners.grantrequest", "reject"): ActionSpec(
        "partners.approve_grantrequest", "grant_request"
    ),
    ("partners.partner", "suspend"): ActionSpec("partners.suspend_partner", "partner"),
    ("partners.partner", "reinstate"): ActionSpec("partners.suspend_partner", "suspended_partner"),
    ("partners.release", "withdraw"): ActionSpec("partners.withdraw_release", "launched"),
    ("partners.checkpoint", "pull"): ActionSpec("partners.pull_checkpoint", "checkpoint"),
    ("partners.accesstoken", "revoke"): ActionSpec("partners.revoke_accesstoken", "token"),
    ("django_celery_beat.periodictask", "enable"): ActionSpec(
        "django_celery_beat.change_periodictask", "digest"
    ),
    ("django_celery_beat.periodictask", "disable"): ActionSpec(
        "django_celery_beat.change_periodictask", "sealing"
    ),
}


@dataclass(frozen=True)
class UrlSpec:
    args: Callable[[World], list[Any]]
    permission: str  # a permission, or "<label>:view" for whoever sees that model
    post: Data | None = None
    changes: str = ""  # the table an allowed POST changes


CUSTOM: dict[str, UrlSpec] = {
    "auth_user_password_change": UrlSpec(
        lambda w: [w.user.pk],
        "auth.change_user",
        lambda w, d: {"password1": "another matrix phrase", "password2": "another matrix phrase"},
        "auth_user",
    ),
    "audit_auditexport_request": UrlSpec(
        lambda w: [],
        "audit.export_auditevent",
        lambda w, d: {"partner": "aurora", "outcome": ""},
        "audit_auditexport",
    ),
    "partners_detection_report": UrlSpec(lambda w: [w.detection.pk], "partners.detection:view"),
    "audit_auditexport_download": UrlSpec(
        lambda w: [w.export.pk, next(iter(w.export.files))], "audit.export_auditevent"
    ),
    # The buttons on an object's own page: a confirmation page (GET changes nothing), then
    # the POST with a reason calls the list action's own function.
    "partners_partner_suspend": UrlSpec(
        lambda w: [w.partner.pk],
        "partners.suspend_partner",
        lambda w, d: {"reason": "matrix"},
        "partners_partner",
    ),
    "partners_partner_reinstate": UrlSpec(
        lambda w: [w.suspended_partner.pk],
        "partners.suspend_partner",
        lambda w, d: {"reason": "matrix"},
        "partners_partner",
    ),
    "partners_grant_revoke": UrlSpec(
        lambda w: [w.grant.pk],
        "partners.revoke_grant",
        lambda w, d: {"reason": "matrix"},
        "partners_grant",
    ),
    "partners_checkpoint_pull": UrlSpec(
        lambda w: [w.checkpoint.pk],
        "partners.pull_checkpoint",
        lambda w, d: {"reason": "matrix"},
        "partners_checkpoint",
    ),
    "partners_release_withdraw": UrlSpec(
        lambda w: [w.launched.pk],
        "partners.withdraw_release",
        lambda w, d: {"reason": "matrix"},
        "partners_release",
    ),
    "partners_grantrequest_approve": UrlSpec(
        lambda w: [w.grant_request.pk],
        "partners.approve_grantrequest",
        lambda w, d: {"reason": "matrix"},
        "partners_grantapproval",
    ),
    "partners_grantrequest_reject": UrlSpec(
        lambda w: [w.grant_request.pk],
        "partners.approve_grantrequest",
        lambda w, d: {"reason": "matrix"},
        "partners_grantrequest",
    ),
}


# The cells, from the live admin site.


@dataclass(frozen=True)
class Cell:
    label: str  # app_label.model_name, or "site"
    kind: str  # changelist, add, change, delete, history, url:<name>, action:<name>, ...
    method: str
    person: str
    variant: str = ""

    @property
    def id(self) -> str:
        variant = f"[{self.variant}]" if self.variant else ""
        return f"{self.label}:{self.kind}{variant}:{self.method}:{self.person}"


STANDARD = ("changelist", "add", "change", "delete", "history")


def _model_cells(label: str, model_admin: Any) -> list[tuple[str, str, str]]:
    opts = model_admin.model._meta
    cells = [(kind, "GET", "") for kind in STANDARD]
    cells += [("add", "POST", ""), ("delete", "POST", "")]
    cells += [("change", "POST", v) for v in CHANGE.get(label, {"fields": None})]
    standard = {f"{opts.app_label}_{opts.model_name}_{kind}" for kind in STANDARD}
    for pattern in model_admin.get_urls():
        if not isinstance(pattern, URLPattern) or pattern.name is None:
            continue  # Django's redirect of old change URLs
        if pattern.name not in standard:
            cells.append((f"url:{pattern.name}", "GET", ""))
            if pattern.name in CUSTOM and CUSTOM[pattern.name].post:
                cells.append((f"url:{pattern.name}", "POST", ""))
    # Every action it has (``get_actions()`` before it filters by the request's permissions).
    cells += [(f"action:{name}", "POST", "") for _, name, _ in model_admin._get_base_actions()]
    for source in (model_admin, *model_admin.inlines):
        for name in source.autocomplete_fields:
            cells.append((f"autocomplete:{source.model._meta.label_lower}.{name}", "GET", ""))
    return cells


def all_cells() -> list[Any]:
    cells = [Cell("site", "index", "GET", p) for p in PEOPLE]
    apps = sorted({m._meta.app_label for m in admin.site._registry})
    cells += [Cell("site", f"app:{app}", "GET", p) for app in apps for p in PEOPLE]
    cells += [Cell("site", "password_change", "GET", p) for p in PEOPLE]
    cells += [Cell("site", "two_factor", "GET", p) for p in PEOPLE]
    # The portal's own pages (settings.ACCESSCTL_PORTAL_PAGES: the matrix, the timeline).
    pages = import_string(settings.ACCESSCTL_PORTAL_PAGES)()
    cells += [Cell("site", f"page:{name}", "GET", p) for _, _, name in pages for p in PEOPLE]
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label_lower
        for kind, method, variant in _model_cells(label, model_admin):
            cells += [Cell(label, kind, method, p, variant) for p in PEOPLE]
    return [pytest.param(cell, id=cell.id) for cell in cells]


# Running a cell.


class FormParser(HTMLParser):
    """The values a browser would submit from the page's main form."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id, self.inside, self.data = form_id, False, {}
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._multiple = False
        self._textarea: str | None = None

    def add(self, name: str, value: str) -> None:
        self.data.setdefault(name, []).append(value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("id") == self.form_id:
            self.inside = True
        if not self.inside or "disabled" in a:
            return
        name = a.get("name", "")
        kind = a.get("type", "text").lower()
        if tag == "input" and name and kind not in {"submit", "button", "image", "file", "reset"}:
            if kind in {"checkbox", "radio"}:
                if "checked" in a:
                    self.add(name, a.get("value", "on"))
            else:
                self.add(name, a.get("value", ""))
        elif tag == "select" and name:
            self._select, self._options, self._multiple = name, [], "multiple" in a
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea" and name:
            self._textarea = name
            self.add(name, "")

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.data[self._textarea][-1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea" and self._textarea is not None:
            value = self.data[self._textarea][-1]
            self.data[self._textarea][-1] = value[1:] if value.startswith("\n") else value
            self._textarea = None
        elif tag == "select" and self._select is not None:
            chosen = [v for v, selected in self._options if selected]
            if not chosen and not self._multiple and self._options:
                chosen = [self._options[0][0]]
            for value in chosen:
                self.add(self._select, value)
            self._select = None


def form_data(page: Any, model: Any, form_id: str = "") -> dict[str, Any]:
    assert page.status_code == 200, page.status_code
    parser = FormParser(form_id or f"{model._meta.model_name}_form")
    parser.feed(page.content.decode())
    assert parser.data, "no form on the page"
    return {k: v if len(v) > 1 else v[0] for k, v in parser.data.items()}


def form_errors(response: Any) -> str:
    """What the form said, when it was shown again instead of saved."""
    context = getattr(response, "context_data", None) or {}
    errors = [str(context["adminform"].form.errors)] if "adminform" in context else []
    for formset in context.get("inline_admin_formsets", []):
        errors += [str(formset.formset.errors), str(formset.formset.non_form_errors())]
    return " ".join(e for e in errors if e and e != "[]")


def _editable(data: dict[str, Any]) -> bool:
    """Whether the form offers a field of its own (inline rows' ids do not count)."""
    return any("-" not in k and not k.startswith("_") and k != "csrfmiddlewaretoken" for k in data)


def expected_refusal(cell: Cell) -> set[int]:
    return {302} if cell.person in (MEMBER, ANONYMOUS) else {403}


EVIDENCE = "audit_auditevent"  # where a refusal is recorded: it must add exactly one row


def check_one_refusal_event(world: World, cell: Cell) -> None:
    """A staff member refused for lack of permission: exactly one ``<domain>.refused``
    event, reason ``forbidden``, naming the model (and the object, when one was asked
    for) and, where the page or action is one, the operation."""
    # (Only the person's: the matrix may have fetched the form as a superuser first.)
    person = world.users[cell.person]
    new = list(AuditEvent.objects.filter(pk__gt=world.last_event, actor=person))
    assert len(new) == 1, [(e.action, e.reason, e.changes) for e in new]
    (refused,) = new
    assert refused.action.endswith(".refused"), refused.action
    assert refused.reason == "forbidden"
    expected = cell.label
    if cell.kind.startswith("autocomplete:"):  # the model whose field looks up, as asked
        expected = cell.kind.removeprefix("autocomplete:").rsplit(".", 1)[0]
    assert refused.target_type == expected
    operation = PORTAL_OPERATIONS.get((cell.label, cell.kind))
    if operation is not None:
        assert refused.changes.get("operation") == str(operation), refused.changes


def check_refused(world: World, cell: Cell, response: Any) -> None:
    changed = sorted(changed_tables(world.baseline) - {EVIDENCE})
    status = response.status_code
    assert status in expected_refusal(cell), f"answered {status}, changed {changed}"
    if status == 302:
        assert response["Location"].startswith(reverse("admin:login")), response["Location"]
        # Sent to the sign-in page, never shown the page: nothing to record but that.
        assert not AuditEvent.objects.filter(pk__gt=world.last_event).exists()
    else:
        check_one_refusal_event(world, cell)
    assert not changed, f"a refused request changed {changed}"


def row(model: Any, pk: Any) -> dict[str, Any] | None:
    return model._default_manager.filter(pk=pk).values().first()


def run_model_cell(world: World, cell: Cell, model_admin: Any) -> None:
    model = model_admin.model
    opts = model._meta
    client = world.clients[cell.person]
    name = OBJECT.get(cell.label)
    assert name is not None, f"the matrix cannot build a {cell.label}: add it to OBJECT"
    obj = world.objects[name]
    info = f"admin:{opts.app_label}_{opts.model_name}"
    kind = cell.kind
    if kind in STANDARD:
        args = [] if kind in ("changelist", "add") else [obj.pk]
        url = reverse(f"{info}_{kind}", args=args)
        operation = {"changelist": "view", "history": "view", "change": "view"}.get(kind, kind)
        if cell.method == "GET":
            allowed = (
                may_see(cell.person, cell.label)
                if operation == "view"
                else may(cell.person, cell.label, operation)
            )
            response = client.get(url)
            if allowed:
                assert response.status_code == 200, response.status_code
            else:
                check_refused(world, cell, response)
            return
        allowed = may(cell.person, cell.label, kind)
        if kind == "delete":
            response = client.post(url, {"post": "yes"})
            if not allowed:
                return check_refused(world, cell, response)
            assert response.status_code == 302, response.status_code
            assert row(model, obj.pk) is None
            return
        build = (
            ADD.get(cell.label) if kind == "add" else CHANGE.get(cell.label, {}).get(cell.variant)
        )
        form_id = FORM_ID.get((cell.label, kind), "")
        if not allowed:
            # Refused even with data that would be valid (or the form as it stands).
            data = dict(world.superuser_form(url, model, form_id))
            if build is not None:
                data.update(build(world, data))
            return check_refused(world, cell, client.post(url, {**data, "_save": "Save"}))
        data = form_data(client.get(url), model, form_id)
        if build is None:
            if kind == "change" and not _editable(data):
                # Nothing is editable: saving must not change the row (nor anything).
                response = client.post(url, {**data, "_save": "Save"})
                assert response.status_code in (200, 302), response.status_code
                changed = {t for t in changed_tables(world.baseline) if t.startswith(DOMAIN)}
                assert not changed, f"saving a read-only form changed {sorted(changed)}"
                return
            pytest.fail(f"the matrix cannot build {kind} data for {cell.label}: add it")
        data.update(build(world, data))
        before_count = model._default_manager.count()
        before_row = row(model, obj.pk)
        table = INLINE_TABLE.get((cell.label, cell.variant))
        before = fingerprint()
        response = client.post(url, {**data, "_save": "Save"})
        if confirm := CONFIRMED.get((cell.label, cell.variant)):
            # First what the change would end, with nothing changed yet; then confirmed.
            assert response.status_code == 200, (response.status_code, form_errors(response))
            assert not changed_tables(before), "changed before it was confirmed"
            response = client.post(url, form_data(response, model, confirm))
        errors = form_errors(response)
        expected = ADD_STATUS.get(cell.label, 302) if kind == "add" else 302
        assert response.status_code == expected, (response.status_code, errors)
        if kind == "add":
            assert model._default_manager.count() == before_count + 1
        elif table:
            assert before[table] != fingerprint()[table], f"{table} did not change"
        else:
            assert row(model, obj.pk) != before_row, "the row did not change"
        return
    if kind.startswith("url:"):
        return run_custom_url(world, cell, kind.removeprefix("url:"))
    if kind.startswith("action:"):
        return run_action(world, cell, model_admin, kind.removeprefix("action:"))
    if kind.startswith("autocomplete:"):
        source, field_name = kind.removeprefix("autocomplete:").rsplit(".", 1)
        source_opts = apps.get_model(source)._meta
        remote = source_opts.get_field(field_name).remote_field.model._meta.label_lower
        response = client.get(
            reverse("admin:autocomplete"),
            {
                "app_label": source_opts.app_label,
                "model_name": source_opts.model_name,
                "field_name": field_name,
                "term": "",
            },
        )
        # Django asks the remote model's admin whether the person may view it.
        if may_see(cell.person, remote):
            assert response.status_code == 200, response.status_code
        else:
            check_refused(world, cell, response)
        return
    pytest.fail(f"unknown cell kind {kind}")


def _allowed_by(person: str, permission: str) -> bool:
    if permission.endswith(":view"):
        return may_see(person, permission.removesuffix(":view"))
    return person in STAFF and (person == SUPERUSER or permission in held(person))


def run_custom_url(world: World, cell: Cell, name: str) -> None:
    spec = CUSTOM.get(name)
    assert spec is not None, f"the matrix does not know the URL {name}: add it to CUSTOM"
    url = reverse(f"admin:{name}", args=spec.args(world))
    client = world.clients[cell.person]
    allowed = _allowed_by(cell.person, spec.permission)
    if cell.method == "GET":
        response = client.get(url)
        if allowed:
            assert response.status_code == 200, response.status_code
            if response.streaming:  # read the file, as a browser would
                assert b"".join(response.streaming_content)
        else:
            check_refused(world, cell, response)
        return
    assert spec.post is not None
    data = spec.post(world, {})
    before = fingerprint()
    response = client.post(url, data)
    if not allowed:
        return check_refused(world, cell, response)
    assert response.status_code == 302, response.status_code
    assert before[spec.changes] != fingerprint()[spec.changes], f"{spec.changes} did not change"


def run_action(world: World, cell: Cell, model_admin: Any, name: str) -> None:
    spec = ACTIONS.get((cell.label, name))
    assert spec is not None, f"the matrix does not know the action {cell.label}:{name}: add it"
    target = world.objects[spec.target]
    opts = model_admin.model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    data = {
        "action": name,
        ACTION_CHECKBOX_NAME: [target.pk],
        "confirm": "yes",
        "reason": "matrix",
    }
    response = world.clients[cell.person].post(url, data)
    sees = may_see(cell.person, cell.label)
    allowed = sees and (spec.permission is None or _allowed_by(cell.person, spec.permission))
    if allowed:
        assert response.status_code == 302, response.status_code
        if spec.changes:
            assert changed_tables(world.baseline), "the action changed nothing"
        return
    if sees:  # the action is not offered: the list is shown again, nothing done
        assert response.status_code in (200, 302), response.status_code
        changed = changed_tables(world.baseline) - {EVIDENCE}
        assert not changed, f"a refused action changed {sorted(changed)}"
        check_one_refusal_event(world, cell)
        return
    check_refused(world, cell, response)


def run_site_cell(world: World, cell: Cell) -> None:
    client = world.clients[cell.person]
    if cell.kind == "index":
        url, allowed = reverse("admin:index"), cell.person in STAFF
    elif cell.kind == "password_change":
        url, allowed = reverse("admin:password_change"), cell.person in STAFF
    elif cell.kind == "two_factor":  # one's own second factor, for every staff member
        url, allowed = reverse("admin:two_factor"), cell.person in STAFF
    elif cell.kind.startswith("page:"):  # the matrix and the timeline read these four
        run_portal_page_cell(world, cell, client)
        return
    else:
        app = cell.kind.removeprefix("app:")
        url = reverse("admin:app_list", args=[app])
        allowed = any(
            may_see(cell.person, m._meta.label_lower)
            or any(may(cell.person, m._meta.label_lower, op) for op in ("add", "delete"))
            for m in admin.site._registry
            if m._meta.app_label == app
        )
        if not allowed and cell.person in STAFF:
            assert client.get(url).status_code == 404
            assert not changed_tables(world.baseline)
            return
    response = client.get(url)
    if allowed:
        assert response.status_code == 200, response.status_code
    else:
        check_refused(world, cell, response)


PAGE_READS = ("partners.partner", "partners.release", "partners.embargowindow", "partners.grant")


def run_portal_page_cell(world: World, cell: Cell, client: Any) -> None:
    """A page of the portal's own (``partners/portal/views.py``): shown to whoever may
    view what it reads; refused with 403 and one ``window.refused`` event to other staff;
    anyone else is sent to the sign-in page."""
    response = client.get(reverse(f"admin:{cell.kind.removeprefix('page:')}"))
    if all(may_see(cell.person, label) for label in PAGE_READS):
        assert response.status_code == 200, response.status_code
        assert not changed_tables(world.baseline)
        return
    if cell.person not in STAFF:
        check_refused(world, cell, response)
        return
    assert response.status_code == 403, response.status_code
    new = list(AuditEvent.objects.filter(pk__gt=world.last_event, actor=world.users[cell.person]))
    assert [(e.action, e.reason, e.target_type) for e in new] == [
        ("window.refused", "forbidden", "partners.embargowindow")
    ]
    assert not changed_tables(world.baseline) - {EVIDENCE}


@pytest.mark.parametrize("cell", all_cells())
def test_portal_path(world, cell):
    # Each cell starts from the module's session (a cell may cycle its key, say by
    # changing a password) and no leftover message cookies.
    client = world.clients[cell.person]
    client.cookies.clear()
    world.acting = cell.person
    if cell.person in world.sessions:
        client.cookies[settings.SESSION_COOKIE_NAME] = world.sessions[cell.person]
    if cell.label == "site":
        run_site_cell(world, cell)
        return
    model_admin = next(
        a for m, a in admin.site._registry.items() if m._meta.label_lower == cell.label
    )
    run_model_cell(world, cell, model_admin)


def test_the_matrix_knows_every_admin_url_and_action():
    """The guard, in one place: a new admin, URL or action without its entry fails here
    (and in its cells)."""
    unknown = []
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label_lower
        if label not in OBJECT:
            unknown.append(f"object for {label}")
        for kind, _, _ in _model_cells(label, model_admin):
            if kind.startswith("url:") and kind[4:] not in CUSTOM:
                unknown.append(kind)
            if kind.startswith("action:") and (label, kind[7:]) not in ACTIONS:
                unknown.append(f"{label} {kind}")
        if any(may(p, label, "add") for p in PEOPLE) and label not in ADD:
            unknown.append(f"add data for {label}")
    assert not unknown, unknown


def test_fingerprint_sees_a_change(world):
    started = time.perf_counter()
    before = fingerprint()
    assert time.perf_counter() - started < 0.5  # taken once per refused cell
    actions.update_partner(actor=None, partner=world.partner, legal_name="Changed")
    assert changed_tables(before) >= {"partners_partner", "audit_auditevent"}


# Saving a form unchanged changes nothing. The portal's date-time widgets show whole
# seconds; a stored time with microseconds must not come back "changed" (a window's close
# moved earlier, a partner's NDA expiry audited as a change nobody made).

# Admin's own record of a save ("No fields changed."); not ours to keep quiet.
UNCHANGED_MAY_WRITE = {"django_admin_log"}


# The apps whose portal pages save through actions (the others are installed apps'
# admins: auth, django-otp, django-celery-results, django-axes).
SAVED_BY_ACTIONS = {"partners", "audit", "signing", "django_celery_beat"}


def _change_forms() -> list[Any]:
    return [
        pytest.param(model, id=model._meta.label_lower)
        for model in admin.site._registry
        if model._meta.app_label in SAVED_BY_ACTIONS
    ]


def test_every_admin_saving_through_actions_is_in_the_unchanged_form_test():
    assert {p.id for p in _change_forms()} >= {
        "partners.partner",
        "partners.embargowindow",
        "partners.release",
        "django_celery_beat.periodictask",
    }
    assert all(p.id in OBJECT for p in _change_forms())


@pytest.mark.parametrize("model", _change_forms())
def test_saving_a_change_form_unchanged_changes_nothing(world, model):
    client = world.clients[SUPERUSER]
    client.cookies.clear()
    client.cookies[settings.SESSION_COOKIE_NAME] = world.sessions[SUPERUSER]
    obj = world.objects[OBJECT[model._meta.label_lower]]
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[obj.pk])
    page = client.get(url)
    data = form_data(page, model) if page.status_code == 200 else {}
    if not _editable(data) or 'name="_save"' not in page.content.decode():
        return  # a page that only reads: nothing to submit (its POST is in the matrix)
    events = AuditEvent.objects.count()
    response = client.post(url, data)
    assert response.status_code == 302, form_errors(response)
    changed = changed_tables(world.baseline) - UNCHANGED_MAY_WRITE
    new = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True)[events:])
    assert not changed and not new, f"changed {sorted(changed)}, events {new}"


def test_every_admin_model_has_a_refusal_domain():
    """A portal refusal names its model's ``<domain>.refused`` event: a new admin needs one."""
    registered = {m._meta.label_lower for m in admin.site._registry}
    assert registered <= set(DOMAINS), registered - set(DOMAINS)
