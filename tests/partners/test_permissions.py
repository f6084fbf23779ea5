"""Which staff role may call which action. Every refusal writes nothing."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_otp.plugins.otp_static.models import StaticDevice

from accessctl.audit.models import AuditEvent
from partners import actions
from partners.errors import ActionForbidden
from partners.models import AccessToken
from tests import factories as f
from tests.evidence import last_event_id, the_refusal_since

pytestmark = pytest.mark.django_db

ROLES = ["Release manager", "Partner manager", "Security officer", "Compliance"]


@pytest.fixture
def world():
    partner = f.partner("aurora-gpu")
    launched = f.release("v3", public_in=-timedelta(days=1))
    launched_cp = f.checkpoint(launched)
    f.window(launched, partner)
    upcoming = f.release("v4")
    cp = f.checkpoint(upcoming)
    f.window(upcoming, partner)
    grant = f.grant(cp, partner)
    return {
        "partner": partner,
        "release": upcoming,
        "launched_cp": launched_cp,
        "cp": cp,
        "grant": grant,
    }


def _pending_request(world):
    other = f.partner()
    f.window(world["release"], other)
    return actions.request_grant(
        actor=f.partner_user(other), partner=other, checkpoint=world["cp"], quota_bytes=1
    )


CALLS = {
    "create_partner": lambda a, w: actions.create_partner(
        actor=a,
        slug="new",
        legal_name="New",
        kind="other",
        jurisdiction="FR",
        nda_reference="N",
        nda_expires_at=timezone.now() + timedelta(days=9),
    ),
    "update_partner": lambda a, w: actions.update_partner(
        actor=a, partner=w["partner"], legal_name="X"
    ),
    "suspend_partner": lambda a, w: actions.suspend_partner(
        actor=a, partner=w["partner"], reason="r"
    ),
    "create_release": lambda a, w: actions.create_release(
        actor=a, slug="v9", name="v9", public_release_at=timezone.now()
    ),
    "update_release": lambda a, w: actions.update_release(actor=a, release=w["release"], name="X"),
    "register_checkpoint": lambda a, w: actions.register_checkpoint(
        actor=a,
        release=w["release"],
        tag="new",
        artifacts=[f.stored_spec(w["release"], "new", "a", b"a")],
    ),
    "pull_checkpoint": lambda a, w: actions.pull_checkpoint(
        actor=a, checkpoint=w["cp"], reason="r"
    ),
    "set_window": lambda a, w: actions.set_window(
        actor=a,
        release=w["release"],
        partner=f.partner(),
        opens_at=timezone.now(),
        closes_at=timezone.now() + timedelta(days=1),
    ),
    "issue_grant": lambda a, w: actions.issue_grant(
        actor=a, partner=w["partner"], checkpoint=w["launched_cp"], quota_bytes=1
    ),
    "approve_grant_request": lambda a, w: actions.approve_grant_request(
        actor=a, request=_pending_request(w)
    ),
    "reject_grant_request": lambda a, w: actions.reject_grant_request(
        actor=a, request=_pending_request(w), reason="r"
    ),
    "revoke_grant": lambda a, w: actions.revoke_grant(actor=a, grant=w["grant"], reason="r"),
    "withdraw_release": lambda a, w: actions.withdraw_release(
        actor=a, release=w["release"], reason="r"
    ),
    "invite_member_token": lambda a, w: actions.invite_member_token(
        actor=a, user=f.partner_user(w["partner"]), name="ci", scopes=["read"]
    ),
    "revoke_token": lambda a, w: actions.revoke_token(
        actor=a,
        token=AccessToken.objects.get(prefix=f.token(f.partner_user(w["partner"]))[:12]),
        reason="r",
    ),
    "add_member": lambda a, w: actions.add_member(
        actor=a, partner=w["partner"], user=f.UserFactory()
    ),
    "remove_member": lambda a, w: actions.remove_member(
        actor=a, membership=f.partner_user(w["partner"]).partner_membership
    ),
    "add_contact": lambda a, w: actions.add_contact(
        actor=a, partner=w["partner"], name="N", email="n@example.com"
    ),
    "change_contact": lambda a, w: actions.change_contact(
        actor=a, contact=f.contact(w["partner"]), role="CTO"
    ),
    "remove_contact": lambda a, w: actions.remove_contact(actor=a, contact=f.contact(w["partner"])),
    "change_schedule": lambda a, w: actions.change_schedule(
        actor=a,
        task=PeriodicTask.objects.get(task="accessctl.audit.tasks.seal_audit_log"),
        enabled=False,
    ),
    "create_interval": lambda a, w: actions.create_interval(actor=a, every=2, period="hours"),
    "create_crontab": lambda a, w: actions.create_crontab(actor=a, minute="1", hour="1"),
    # Accounts: superusers only (no role holds auth's permissions); lockouts: the officer.
    "create_account": lambda a, w: actions.create_account(actor=a, username="n", password="p"),
    "change_account": lambda a, w: actions.change_account(actor=a, user=f.staff(), first_name="X"),
    "set_password": lambda a, w: actions.set_password(actor=a, user=f.staff(), password="p"),
    "remove_second_factor": lambda a, w: actions.remove_second_factor(
        actor=a, device=StaticDevice.objects.get(user=(u := f.staff()), pk=_device_of(u))
    ),
    "request_detection": lambda a, w: actions.request_detection(
        actor=a, release=_keyed(w), files=[_suspect()], reason="leak"
    ),
    "clear_lockout": lambda a, w: actions.clear_lockout(
        actor=a,
        attempt=AccessAttempt.objects.create(
            username="x", ip_address="127.0.0.1", failures_since_start=5
        ),
    ),
}


def _keyed(world):
    from tests.partners.detection_world import keyed_release

    if "keyed" not in world:
        world["keyed"] = keyed_release("v7", world["partner"])
    return world["keyed"]


def _suspect():
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.partners.test_detections import safetensors_bytes

    return SimpleUploadedFile("leak.safetensors", safetensors_bytes())


def _device_of(user):
    f.backup_code(user)
    return StaticDevice.objects.get(user=user).pk


ALLOWED = {
    "Release manager": {
        "create_release",
        "update_release",
        "register_checkpoint",
        "pull_checkpoint",
        "set_window",
        "issue_grant",
        "approve_grant_request",
        "reject_grant_request",
        "revoke_grant",
    },
    "Partner manager": {
        "create_partner",
        "update_partner",
        "suspend_partner",
        "invite_member_token",
        "revoke_token",
        "add_member",
        "remove_member",
        "add_contact",
        "change_contact",
        "remove_contact",
    },
    "Security officer": {
        "request_detection",
        "suspend_partner",
        "pull_checkpoint",
        "revoke_grant",
        "revoke_token",
        "withdraw_release",
        "change_schedule",
        "create_interval",
        "create_crontab",
        "clear_lockout",
    },
    "Compliance": set(),
}


def test_every_action_is_in_the_matrix():
    public = {name for name in actions.__all__ if name[0].islower()}
    # Partner-side, read-only checks, and system transitions run by Celery (no actor).
    not_staff = {
        "request_grant",
        "authorize_download",
        "authorize_downloads",
        "check_grant",
        "check_window",
        "expire_grants",
        "open_windows",
        "close_windows",
        "lift_embargoes",
        "expire_ndas",
        "remind_pending_requests",
        "announce_deadlines",
        "queue_staff_digest",
        "cascade_revocation",
        # Leak attribution's tasks: writing partners' copies, running a detection.
        "write_variants",
        "run_detection",
        "fail_detection",
        # Self-service credentials: for oneself only, tested in test_credentials.py.
        "create_staff_token",
        "claim_token",
        "rotate_token",
        "enroll_totp",
        "generate_backup_codes",
    }
    assert public - not_staff - {"reinstate_partner", "terminate_partner"} == set(CALLS)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(CALLS))
def test_role_may_or_may_not_call_action(world, role, name):
    actor = f.staff(role)
    before = AuditEvent.objects.filter(actor=actor).count()
    if name in ALLOWED[role]:
        CALLS[name](actor, world)
        assert AuditEvent.objects.filter(actor=actor).count() > before
    else:
        since = last_event_id()
        with pytest.raises(ActionForbidden):
            CALLS[name](actor, world)
        # Nothing changed, and the refusal is evidence: one event, its target and reason.
        refusal = the_refusal_since(since, "forbidden", str(actions.REFUSAL_EVENTS[name]))
        assert refusal.actor == actor and refusal.changes["action"] == name


def test_staff_without_a_role_can_do_nothing(world):
    nobody = f.staff()
    for name, call in CALLS.items():
        since = last_event_id()
        with pytest.raises(ActionForbidden):
            call(nobody, world)
        assert the_refusal_since(since, "forbidden").actor == nobody, name
    assert not AuditEvent.objects.filter(actor=nobody, outcome="success").exists()
