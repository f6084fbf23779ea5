"""Every action of ``partners.actions`` writes its audit events, exactly: one per change.

The table below lists every public action; a new action missing from it fails
``test_every_action_is_listed``, so nothing can change state without evidence.
"""

from collections import Counter
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_otp.plugins.otp_static.models import StaticDevice

from accessctl.audit.models import AuditEvent
from partners import actions
from partners.models import AccessToken, EmbargoWindow, Grant, GrantRequest, Partner, Revocation
from tests import factories as f

pytestmark = pytest.mark.django_db

DAY, HOUR = timedelta(days=1), timedelta(hours=1)


@pytest.fixture
def world():
    partner = f.partner("aurora")
    launched = f.release("v3", public_in=-DAY)
    upcoming = f.release("v4", public_in=30 * DAY)
    for release in (launched, upcoming):
        f.window(release, partner)
    return {
        "partner": partner,
        "launched": launched,
        "upcoming": upcoming,
        "launched_cp": f.checkpoint(launched, tag="l1"),
        "upcoming_cp": f.checkpoint(upcoming, tag="u1"),
        "officer": f.superuser(),
    }


def pending(w, requester=None):
    return actions.request_grant(
        actor=requester or f.partner_user(w["partner"]),
        partner=w["partner"],
        checkpoint=w["upcoming_cp"],
        quota_bytes=1,
    )


def a_grant(w):
    return f.grant(w["launched_cp"], w["partner"])


def due_grant(w):
    grant = a_grant(w)
    Grant.objects.filter(pk=grant.pk).update(
        issued_at=timezone.now() - 2 * HOUR, expires_at=timezone.now() - HOUR
    )
    return grant


def closed_window(w):
    grant = due_grant(w)
    now = timezone.now()
    EmbargoWindow.objects.filter(pk=grant.window_id).update(
        opened_at=now - DAY, closes_at=now - HOUR
    )
    return grant


def a_token(w):
    return AccessToken.objects.get(prefix=f.token(f.partner_user(w["partner"]))[:12])


def a_keyed_release(w):
    from tests.partners.detection_world import keyed_release

    if "keyed" not in w:
        w["keyed"] = keyed_release("v7", w["partner"])
    return w["keyed"]


def a_detection(w):
    """A suspect file set for a fingerprinted release whose partner holds a key."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.partners.test_detections import safetensors_bytes

    return actions.request_detection(
        actor=w["officer"],
        release=a_keyed_release(w),
        files=[SimpleUploadedFile("leak.safetensors", safetensors_bytes())],
        reason="r",
    )


def a_staff_member_with_a_token():
    user = f.staff("Compliance")
    f.token(user)
    return user


# name -> (prepare(world) -> call(), the events the call must write, as a multiset)
ACTIONS = {
    "create_partner": (
        lambda w: lambda: f.partner("new"),
        {"partner.created": 1},
    ),
    "update_partner": (
        lambda w: (
            lambda: actions.update_partner(actor=w["officer"], partner=w["partner"], legal_name="X")
        ),
        {"partner.updated": 1},
    ),
    "suspend_partner": (
        lambda w: (
            lambda: actions.suspend_partner(actor=w["officer"], partner=w["partner"], reason="r")
        ),
        {"partner.suspended": 1},
    ),
    "reinstate_partner": (
        lambda w: (
            actions.suspend_partner(actor=None, partner=w["partner"], reason="r"),
            actions.cascade_revocation(Revocation.objects.get().pk),
            lambda: actions.reinstate_partner(
                actor=w["officer"], partner=w["partner"], reason="ok"
            ),
        )[-1],
        {"partner.reinstated": 1},
    ),
    "terminate_partner": (
        lambda w: (
            lambda: actions.terminate_partner(actor=w["officer"], partner=w["partner"], reason="r")
        ),
        {"partner.terminated": 1},
    ),
    "create_release": (lambda w: lambda: f.release("v9"), {"release.created": 1}),
    "update_release": (
        lambda w: (
            lambda: actions.update_release(actor=w["officer"], release=w["launched"], name="X")
        ),
        {"release.updated": 1},
    ),
    "withdraw_release": (
        lambda w: (
            lambda: actions.withdraw_release(actor=w["officer"], release=w["launched"], reason="r")
        ),
        {"release.withdrawn": 1},
    ),
    "register_checkpoint": (
        lambda w: lambda: f.checkpoint(w["launched"], tag="new"),
        {"checkpoint.registered": 1},
    ),
    "pull_checkpoint": (
        lambda w: (
            lambda: actions.pull_checkpoint(
                actor=w["officer"], checkpoint=w["launched_cp"], reason="r"
            )
        ),
        {"checkpoint.pulled": 1},
    ),
    "set_window": (
        lambda w: (p := f.partner("other"), lambda: f.window(w["launched"], p))[-1],
        {"window.set": 1},
    ),
    "issue_grant": (lambda w: lambda: a_grant(w), {"grant.issued": 1}),
    # Before the public release a request waits; after it, it is issued at once: two changes.
    "request_grant": (
        lambda w: (u := f.partner_user(w["partner"]), lambda: pending(w, u))[-1],
        {"grant.requested": 1},
    ),
    "approve_grant_request": (
        lambda w: (
            r := pending(w),
            lambda: actions.approve_grant_request(actor=f.superuser(), request=r),
        )[-1],
        {"grant_request.approved": 1},
    ),
    "reject_grant_request": (
        lambda w: (
            r := pending(w),
            lambda: actions.reject_grant_request(actor=w["officer"], request=r, reason="no"),
        )[-1],
        {"grant_request.rejected": 1},
    ),
    "revoke_grant": (
        lambda w: (
            g := a_grant(w),
            lambda: actions.revoke_grant(actor=w["officer"], grant=g, reason="r"),
        )[-1],
        {"grant.revoked": 1},
    ),
    "authorize_download": (
        lambda w: (g := a_grant(w), lambda: f.authorize(g))[-1],
        {"download.authorized": 1},
    ),
    "authorize_downloads": (
        lambda w: (g := a_grant(w), lambda: f.authorize_files(g))[-1],
        {"download.authorized": 1, "download.denied": 1},
    ),
    "create_staff_token": (lambda w: lambda: f.token(w["officer"]), {"token.created": 1}),
    "invite_member_token": (
        lambda w: (u := f.partner_user(w["partner"]), lambda: f.invite(u))[-1],
        {"token.invited": 1},
    ),
    "claim_token": (
        lambda w: (
            code := f.invite(f.partner_user(w["partner"])),
            lambda: actions.claim_token(code=code),
        )[-1],
        {"token.claimed": 1},
    ),
    "rotate_token": (
        lambda w: (t := a_token(w), lambda: actions.rotate_token(actor=t.user, token=t))[-1],
        {"token.rotated": 1},
    ),
    "add_member": (lambda w: lambda: f.partner_user(w["partner"]), {"member.added": 1}),
    "remove_member": (
        lambda w: (
            t := a_token(w),
            lambda: actions.remove_member(
                actor=w["officer"], membership=t.user.partner_membership, reason="left"
            ),
        )[-1],
        {"member.removed": 1, "token.revoked": 1},
    ),
    "add_contact": (lambda w: lambda: f.contact(w["partner"]), {"contact.added": 1}),
    "change_contact": (
        lambda w: (
            c := f.contact(w["partner"]),
            lambda: actions.change_contact(actor=w["officer"], contact=c, role="CTO"),
        )[-1],
        {"contact.changed": 1},
    ),
    "remove_contact": (
        lambda w: (
            c := f.contact(w["partner"]),
            lambda: actions.remove_contact(actor=w["officer"], contact=c),
        )[-1],
        {"contact.removed": 1},
    ),
    "revoke_token": (
        lambda w: (
            t := a_token(w),
            lambda: actions.revoke_token(actor=w["officer"], token=t, reason="r"),
        )[-1],
        {"token.revoked": 1},
    ),
    "cascade_revocation": (
        lambda w: (
            a_grant(w),
            actions.suspend_partner(actor=None, partner=w["partner"], reason="r"),
            lambda: actions.cascade_revocation(Revocation.objects.get().pk),
        )[-1],
        {"grant.revoked": 1, "revocation.completed": 1},
    ),
    "request_detection": (
        lambda w: (a_keyed_release(w), lambda: a_detection(w))[-1],
        {"detection.requested": 1},
    ),
    # Nothing of the suspect aligns with the release's (placeholder) files: it fails.
    "run_detection": (
        lambda w: (lambda d: lambda: actions.run_detection(d.pk))(a_detection(w)),
        {"detection.failed": 1},
    ),
    "fail_detection": (
        lambda w: (lambda d: lambda: actions.fail_detection(d.pk, "too long"))(a_detection(w)),
        {"detection.failed": 1},
    ),
    "expire_grants": (lambda w: (due_grant(w), actions.expire_grants)[-1], {"grant.expired": 1}),
    "open_windows": (lambda w: actions.open_windows, {"window.opened": 2}),
    "close_windows": (
        lambda w: (closed_window(w), actions.close_windows)[-1],
        {"window.closed": 1, "grant.expired": 1},
    ),
    "lift_embargoes": (lambda w: actions.lift_embargoes, {"window.embargo_lifted": 1}),
    "expire_ndas": (
        lambda w: (
            Partner.objects.filter(pk=w["partner"].pk).update(nda_expires_at=timezone.now() - HOUR),
            actions.expire_ndas,
        )[-1],
        {"partner.suspended": 1},
    ),
    "change_schedule": (
        lambda w: (
            lambda: actions.change_schedule(
                actor=w["officer"],
                task=PeriodicTask.objects.get(task="partners.tasks.expire_grants"),
                enabled=False,
            )
        ),
        {"schedule.changed": 1},
    ),
    "create_interval": (
        lambda w: lambda: actions.create_interval(actor=w["officer"], every=7, period="minutes"),
        {"schedule.created": 1},
    ),
    "create_crontab": (
        lambda w: lambda: actions.create_crontab(actor=w["officer"], minute="15", hour="4"),
        {"schedule.created": 1},
    ),
    "create_account": (
        lambda w: lambda: actions.create_account(actor=w["officer"], username="n", password="p"),
        {"account.created": 1},
    ),
    # Someone else's account losing access: signed out, staff token revoked (one event).
    "change_account": (
        lambda w: (
            u := a_staff_member_with_a_token(),
            lambda: actions.change_account(actor=w["officer"], user=u, is_active=False),
        )[-1],
        {"account.changed": 1, "token.revoked": 1},
    ),
    "set_password": (
        lambda w: (
            u := a_staff_member_with_a_token(),
            lambda: actions.set_password(actor=w["officer"], user=u, password="new one 123"),
        )[-1],
        {"account.password_set": 1, "token.revoked": 1},
    ),
    "enroll_totp": (
        lambda w: (
            u := f.staff(),
            lambda: actions.enroll_totp(actor=None, user=u, key="ab" * 20),
        )[-1],
        {"second_factor.enrolled": 1},
    ),
    "generate_backup_codes": (
        lambda w: (
            u := f.staff(),
            code := f.backup_code(u),
            lambda: actions.generate_backup_codes(actor=u, user=u, current_code=code),
        )[-1],
        {"second_factor.enrolled": 1},
    ),
    "remove_second_factor": (
        lambda w: (
            u := a_staff_member_with_a_token(),
            lambda: actions.remove_second_factor(
                actor=w["officer"], device=StaticDevice.objects.get(user=u)
            ),
        )[-1],
        {"second_factor.removed": 1, "token.revoked": 1},
    ),
    "clear_lockout": (
        lambda w: (
            a := AccessAttempt.objects.create(
                username="x", ip_address="127.0.0.1", failures_since_start=5
            ),
            lambda: actions.clear_lockout(actor=w["officer"], attempt=a),
        )[-1],
        {"staff.lockout_cleared": 1},
    ),
    "remind_pending_requests": (
        lambda w: (
            GrantRequest.objects.filter(pk=pending(w).pk).update(
                requested_at=timezone.now() - 2 * DAY
            ),
            actions.remind_pending_requests,
        )[-1],
        {"grant_request.reminded": 1},
    ),
    # Nothing pending: nothing written (tests/partners/fingerprints/ checks what a
    # variant's writing records: variant.ready or variant.failed).
    "write_variants": (lambda w: actions.write_variants, {}),
}

# Checks and announcements change no state, so they record nothing.
NO_EVENTS = {"check_grant", "check_window", "announce_deadlines", "queue_staff_digest"}


def test_every_action_is_listed():
    public = {name for name in actions.__all__ if name[0].islower()}
    assert public == set(ACTIONS) | NO_EVENTS


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_action_writes_exactly_its_events(world, name):
    prepare, expected = ACTIONS[name]
    call = prepare(world)
    before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    call()
    written = Counter(AuditEvent.objects.filter(id__gt=before).values_list("action", flat=True))
    assert written == Counter(expected)
    # Every event about a row names it, whoever wrote it (a person, a task, a fan-out):
    # the trail never shows "-" for a grant ended by a suspension.
    unnamed = AuditEvent.objects.filter(id__gt=before).exclude(target_id="")
    assert not list(unnamed.filter(target_label="").values_list("action", "target_type"))


@pytest.mark.parametrize("end", ["suspend", "terminate", "withdraw", "pull"])
def test_a_fan_out_names_every_row_it_ends(world, end):
    """A suspension, termination, kill switch or pull ends grants, requests and tokens in
    batches; each of their events names its row as a single revocation would."""
    grant = a_grant(world)
    request = pending(world)
    token = a_token(world)
    officer = world["officer"]
    {
        "suspend": lambda: actions.suspend_partner(
            actor=officer, partner=world["partner"], reason="r"
        ),
        "terminate": lambda: actions.terminate_partner(
            actor=officer, partner=world["partner"], reason="r"
        ),
        "withdraw": lambda: actions.withdraw_release(
            actor=officer, release=world["launched"], reason="r"
        ),
        "pull": lambda: actions.pull_checkpoint(
            actor=officer, checkpoint=world["launched_cp"], reason="r"
        ),
    }[end]()
    before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    actions.cascade_revocation(Revocation.objects.get().pk)
    labels = dict(
        AuditEvent.objects.filter(id__gt=before)
        .exclude(action="revocation.completed")
        .values_list("target_label", "action")
    )
    assert labels.pop(f"grant #{grant.pk}") == "grant.revoked"
    if end in {"suspend", "terminate"}:
        assert labels.pop(f"request #{request.pk}") == "grant_request.rejected"
    if end == "terminate":
        assert labels.pop(str(token)) == "token.revoked"
    assert not labels
