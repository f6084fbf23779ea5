"""Revocation cascades, in process: the root change refuses at once, the fan-out (run
here by calling the action the Celery task calls) finishes the rest exactly once."""

from datetime import timedelta

import pytest
from django.core import mail

from accessctl.audit.models import AuditEvent
from partners import actions, notify
from partners.errors import ActionError
from partners.models import AccessToken, Grant, GrantRequest, Notification, Release, Revocation
from tests import factories as f

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def events(action, **kwargs):
    return AuditEvent.objects.filter(action=action, **kwargs)


@pytest.fixture
def world():
    """Two partners with grants on two checkpoints of a launched release, a pending
    early-access request on another release, contacts and a security officer."""
    launched = f.release("v3", public_in=-DAY)
    upcoming = f.release("v4", public_in=30 * DAY)
    a, b = f.partner("aurora"), f.partner("borealis", jurisdiction="DE")
    cps = [f.checkpoint(launched, tag=t) for t in ("s1", "s2")]
    early = f.checkpoint(upcoming, tag="e1")
    for p in (a, b):
        f.window(launched, p)
        f.window(upcoming, p)
    grants = {(p.slug, cp.tag): f.grant(cp, p) for p in (a, b) for cp in cps}
    pending = actions.request_grant(
        actor=f.partner_user(a), partner=a, checkpoint=early, quota_bytes=5
    )
    contacts = {p.slug: f.contact(p) for p in (a, b)}
    f.contact(a, notify=False)
    officer = f.staff("Security officer", username="officer")
    return {
        "launched": launched,
        "upcoming": upcoming,
        "a": a,
        "b": b,
        "cps": cps,
        "early": early,
        "grants": grants,
        "pending": pending,
        "contacts": contacts,
        "officer": officer,
    }


def statuses(grants):
    return {key: Grant.objects.get(pk=g.pk).status for key, g in grants.items()}


def test_partner_cascade_revokes_grants_rejects_requests_once(world):
    a, officer = world["a"], world["officer"]
    actions.suspend_partner(actor=officer, partner=a, reason="leak")
    revocation = Revocation.objects.get(partner=a)
    assert revocation.status == Revocation.Status.PENDING
    assert all(
        f.authorize(g).reason == "partner_suspended"
        for g in world["grants"].values()
        if g.partner == a
    )

    actions.cascade_revocation(revocation.pk, batch=1)  # one row per transaction
    actions.cascade_revocation(revocation.pk)  # a second run changes nothing

    assert statuses(world["grants"]) == {
        ("aurora", "s1"): "revoked",
        ("aurora", "s2"): "revoked",
        ("borealis", "s1"): "active",
        ("borealis", "s2"): "active",
    }
    revocation.refresh_from_db()
    assert (revocation.status, revocation.grants_revoked, revocation.requests_rejected) == (
        "done",
        2,
        1,
    )
    assert revocation.attempts == 1
    assert events("grant.revoked", partner_id=a.pk).count() == 2
    rejected = GrantRequest.objects.get(pk=world["pending"].pk)
    assert rejected.status == "rejected" and rejected.rejected_by == officer
    assert events("grant_request.rejected", target_id=str(rejected.pk)).count() == 1
    completed = events("revocation.completed").get()
    assert completed.changes["grants_revoked"] == 2 and completed.actor == officer
    # Tokens survive a suspension (refused meanwhile) and are not touched.
    assert revocation.tokens_revoked == 0


def test_terminated_partner_loses_its_tokens_too(world):
    a = world["a"]
    f.token(f.partner_user(a))
    actions.terminate_partner(actor=None, partner=a, reason="contract ended")
    actions.cascade_revocation(Revocation.objects.get(partner=a).pk)
    assert not AccessToken.objects.filter(partner=a, revoked_at__isnull=True).exists()
    assert Revocation.objects.get(partner=a).tokens_revoked == 1
    assert events("token.revoked", partner_id=a.pk).count() == 1


def test_checkpoint_cascade_touches_only_that_checkpoint(world):
    s1 = world["cps"][0]
    actions.pull_checkpoint(actor=world["officer"], checkpoint=s1, reason="bad weights")
    actions.cascade_revocation(Revocation.objects.get(checkpoint=s1).pk)
    assert statuses(world["grants"]) == {
        ("aurora", "s1"): "revoked",
        ("aurora", "s2"): "active",
        ("borealis", "s1"): "revoked",
        ("borealis", "s2"): "active",
    }


def test_kill_switch_refuses_every_download_of_the_release_at_once(world):
    launched, officer = world["launched"], world["officer"]
    actions.withdraw_release(actor=officer, release=launched, reason="weights leaked")
    launched.refresh_from_db()
    assert launched.status == Release.Status.WITHDRAWN and launched.withdrawn_at
    for grant in world["grants"].values():
        assert f.authorize(grant).reason == "release_withdrawn"
    assert events("release.withdrawn", target_id=str(launched.pk)).count() == 1

    revocation = Revocation.objects.get(release=launched)
    actions.cascade_revocation(revocation.pk)
    assert set(statuses(world["grants"]).values()) == {"revoked"}
    assert Revocation.objects.get(pk=revocation.pk).grants_revoked == 4
    # The other release is untouched; the pending request there stays pending.
    assert GrantRequest.objects.get(pk=world["pending"].pk).status == "pending"


def test_kill_switch_is_final_and_blocks_new_windows_and_grants(world):
    launched = world["launched"]
    actions.withdraw_release(actor=world["officer"], release=launched, reason="leak")
    actions.withdraw_release(actor=world["officer"], release=launched, reason="again")
    assert Revocation.objects.filter(release=launched).count() == 1
    with pytest.raises(ActionError) as exc:
        actions.update_release(actor=None, release=launched, status="launched")
    assert exc.value.code == "release_withdrawn"
    with pytest.raises(ActionError) as exc:
        f.window(launched, f.partner())
    assert exc.value.code == "release_withdrawn"
    with pytest.raises(ActionError) as exc:
        actions.issue_grant(
            actor=None, partner=world["a"], checkpoint=world["cps"][0], quota_bytes=1
        )
    assert exc.value.code == "release_withdrawn"


def test_only_the_security_officer_holds_the_kill_switch(world):
    for role in ("Release manager", "Partner manager", "Compliance"):
        with pytest.raises(ActionError) as exc:
            actions.withdraw_release(actor=f.staff(role), release=world["launched"], reason="x")
        assert exc.value.code == "forbidden"
    assert Release.objects.get(pk=world["launched"].pk).status != Release.Status.WITHDRAWN
    assert not Revocation.objects.exists()


def test_grant_and_token_revocations_are_recorded_and_finished(world):
    grant = world["grants"][("aurora", "s1")]
    actions.revoke_grant(actor=world["officer"], grant=grant, reason="rotated")
    secret = f.token(f.partner_user(world["a"]))
    token = AccessToken.objects.get(prefix=secret[:12])
    actions.revoke_token(actor=world["officer"], token=token, reason="left the company")
    for revocation in Revocation.objects.all():
        actions.cascade_revocation(revocation.pk)
    scopes = dict(Revocation.objects.values_list("scope", "status"))
    assert scopes == {"grant": "done", "token": "done"}
    assert Grant.objects.get(pk=grant.pk).revocation.scope == "grant"


def test_cascade_tells_partner_contacts_what_they_lost_and_staff_why(world, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    a, officer = world["a"], world["officer"]
    actions.suspend_partner(actor=officer, partner=a, reason="internal: engineer X leaked")
    revocation = Revocation.objects.get(partner=a)
    actions.cascade_revocation(revocation.pk)
    actions.cascade_revocation(revocation.pk)

    queued = Notification.objects.filter(key__startswith=f"revocation:{revocation.pk}:")
    assert sorted(queued.values_list("kind", "email")) == [
        ("grant_revoked", world["contacts"]["aurora"].email),
        ("revocation_summary", officer.email),
    ]
    assert notify.send_due() == (2, 0)
    assert notify.send_due() == (0, 0)
    by_address = {m.to[0]: m for m in mail.outbox}
    partner_mail = by_address[world["contacts"]["aurora"].email]
    assert partner_mail.subject == "Access revoked: 2 grants"
    assert "v3:s1" in partner_mail.body and "v3:s2" in partner_mail.body
    html, mimetype = partner_mail.alternatives[0]
    assert mimetype == "text/html" and "<code>v3:s1</code>" in html
    # The internal reason is for staff only.
    assert "engineer X" not in partner_mail.body + html
    staff_mail = by_address[officer.email]
    assert staff_mail.subject == f"Revocation #{revocation.pk} done: partner aurora"
    assert "engineer X leaked" in staff_mail.body and "Grants revoked: 2" in staff_mail.body
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}


def test_a_failed_send_backs_off_then_gives_up(world, settings):
    """A real SMTP connection to a port nobody listens on: refused, retried, given up."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    actions.revoke_grant(
        actor=world["officer"], grant=world["grants"][("aurora", "s1")], reason="x"
    )
    actions.cascade_revocation(Revocation.objects.get().pk)
    assert Notification.objects.count() == 2
    sent, failed = notify.send_due()
    assert (sent, failed) == (0, 2)
    row = Notification.objects.first()
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error.startswith("ConnectionRefusedError")
    assert notify.send_due() == (0, 0)  # backing off: not due yet
    Notification.objects.update(next_attempt_at=row.created_at, attempts=notify.MAX_ATTEMPTS - 1)
    notify.send_due()
    assert set(Notification.objects.values_list("status", flat=True)) == {"failed"}
