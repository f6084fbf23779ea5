"""Time-driven transitions: the action, and the task run by a real Celery worker on Redis."""

import os
from datetime import timedelta

import pytest
import redis
from django.core import mail
from django.db.models import F
from django.utils import timezone

from accessctl.audit.models import AuditEvent
from accessctl.celery import app
from partners import actions, notify
from partners.models import EmbargoWindow, Grant, Notification, Revocation
from partners.tasks import expire_grants
from tests import factories as f
from tests.workers import workers

DAY, HOUR = timedelta(days=1), timedelta(hours=1)
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


def grants_due():
    partner = f.partner()
    release = f.release(public_in=-timedelta(days=1))
    due = []
    for tag in ("a", "b"):
        checkpoint = f.checkpoint(release, tag=tag)
        if not due:
            f.window(release, partner)
        due.append(f.grant(checkpoint, partner))
    fresh = f.grant(f.checkpoint(release, tag="c"), partner)
    Grant.objects.filter(pk__in=[g.pk for g in due]).update(
        issued_at=timezone.now() - timedelta(days=2), expires_at=timezone.now() - timedelta(hours=1)
    )
    return due, fresh


@pytest.mark.django_db
def test_expire_grants_expires_each_due_grant_once_and_audits_it():
    due, fresh = grants_due()
    assert actions.expire_grants() == 2
    assert actions.expire_grants() == 0
    assert set(Grant.objects.filter(status="expired").values_list("pk", flat=True)) == {
        g.pk for g in due
    }
    assert Grant.objects.get(pk=fresh.pk).status == "active"
    events = AuditEvent.objects.filter(action="grant.expired")
    assert sorted(events.values_list("target_id", flat=True)) == sorted(str(g.pk) for g in due)
    assert all(e.partner_id == due[0].partner_id and e.actor_label == "system" for e in events)


@pytest.mark.django_db
def test_expire_grants_works_in_batches():
    _due, _ = grants_due()
    assert actions.expire_grants(batch=1) == 1
    assert actions.expire_grants(batch=1) == 1
    assert actions.expire_grants(batch=1) == 0


@pytest.fixture
def worker(tmp_path):
    """A real worker process on Redis, using the test database."""
    redis.Redis.from_url(REDIS_URL).flushdb()
    with workers(REDIS_URL, {"ACCESSCTL_DATA_DIR": str(tmp_path)}) as start:
        yield start()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_worker_process_expires_due_grants(worker):
    _due, fresh = grants_due()
    with app.connection_for_write(REDIS_URL) as broker:
        result = expire_grants.apply_async(connection=broker)
    assert result.get(timeout=60) == 2
    assert Grant.objects.filter(status="expired").count() == 2
    assert Grant.objects.get(pk=fresh.pk).status == "active"
    with app.connection_for_write(REDIS_URL) as broker:
        again = expire_grants.apply_async(connection=broker)
    assert again.get(timeout=60) == 0
    assert AuditEvent.objects.filter(action="grant.expired").count() == 2


# The other transitions, in process.


@pytest.fixture
def windows():
    """A partner (with a contact) and three windows of three releases: one due to open,
    one due to close (opened earlier, holding a grant), one whose embargo is due to lift."""
    partner = f.partner()
    contact = f.contact(partner)
    now = timezone.now()
    to_open = f.window(f.release(public_in=DAY), partner, opens=-HOUR, closes=DAY)
    closing_release = f.release(public_in=-DAY)
    to_close = f.window(closing_release, partner, opens=-2 * DAY, closes=DAY)
    grant = f.grant(f.checkpoint(closing_release), partner)
    Grant.objects.filter(pk=grant.pk).update(expires_at=now - HOUR, issued_at=now - 2 * DAY)
    EmbargoWindow.objects.filter(pk=to_close.pk).update(
        opened_at=now - 2 * DAY, closes_at=now - HOUR, embargo_lifts_at=F("opens_at")
    )
    return {
        "partner": partner,
        "contact": contact,
        "open": to_open,
        "close": to_close,
        "grant": grant,
    }


def notified(kind):
    return list(Notification.objects.filter(kind=kind).values_list("email", flat=True))


@pytest.mark.django_db
def test_windows_open_once_audited_and_announced(windows):
    assert actions.open_windows() == 1
    assert actions.open_windows() == 0
    window = EmbargoWindow.objects.get(pk=windows["open"].pk)
    assert window.opened_at is not None
    event = AuditEvent.objects.get(action="window.opened")
    assert event.target_id == str(window.pk) and event.actor_label == "system"
    assert 3500 < event.changes["late_by_seconds"] < 3700  # recorded an hour late, and says so
    assert notified("window_opened") == [windows["contact"].email]


@pytest.mark.django_db
def test_a_window_that_opened_and_closed_unseen_is_recorded_without_an_invitation(windows):
    EmbargoWindow.objects.filter(pk=windows["open"].pk).update(
        opens_at=timezone.now() - 2 * HOUR, closes_at=timezone.now() - HOUR
    )
    assert actions.open_windows() == 1
    assert actions.close_windows() == 2
    assert notified("window_opened") == []
    assert AuditEvent.objects.filter(action="window.closed").count() == 2


@pytest.mark.django_db
def test_windows_close_once_and_end_their_grants(windows):
    assert actions.close_windows() == 1
    assert actions.close_windows() == 0
    assert Grant.objects.get(pk=windows["grant"].pk).status == "expired"
    closed = AuditEvent.objects.get(action="window.closed")
    assert closed.changes["grants_ended"] == 1
    assert AuditEvent.objects.filter(action="grant.expired").count() == 1
    assert notified("window_closed") == [windows["contact"].email]
    context = Notification.objects.get(kind="window_closed").context
    assert context["grants_ended"] == 1


@pytest.mark.django_db
def test_embargo_lifts_once(windows):
    assert actions.lift_embargoes() == 1
    assert actions.lift_embargoes() == 0
    assert AuditEvent.objects.filter(action="window.embargo_lifted").count() == 1
    assert notified("embargo_lifted") == [windows["contact"].email]


@pytest.mark.django_db
def test_moving_a_window_into_the_future_records_it_again(windows):
    actions.open_windows()
    window = EmbargoWindow.objects.get(pk=windows["open"].pk)
    later = timezone.now() + HOUR
    actions.set_window(
        actor=None,
        release=window.release,
        partner=window.partner,
        opens_at=later,
        closes_at=later + DAY,
        window=window,
    )
    assert EmbargoWindow.objects.get(pk=window.pk).opened_at is None
    assert actions.open_windows(at=later) == 1
    assert len(notified("window_opened")) == 2  # announced for each opening time


@pytest.mark.django_db
def test_expired_nda_suspends_the_partner_once_and_tells_it():
    partner = f.partner()
    contact = f.contact(partner)
    actions.update_partner(actor=None, partner=partner, nda_expires_at=timezone.now() - HOUR)
    assert actions.expire_ndas() == 1
    assert actions.expire_ndas() == 0
    partner.refresh_from_db()
    assert partner.status == "suspended"
    event = AuditEvent.objects.get(action="partner.suspended")
    assert event.reason == "nda_expired" and event.actor_label == "system"
    assert Revocation.objects.get(partner=partner).requested_by is None
    assert notified("partner_suspended") == [contact.email]


@pytest.mark.django_db
def test_pending_requests_remind_approvers_once_per_interval(settings):
    settings.ACCESSCTL_REQUEST_REMINDER_HOURS = 24
    partner = f.partner()
    release = f.release(public_in=30 * DAY)
    f.window(release, partner)
    request = actions.request_grant(
        actor=f.partner_user(partner),
        partner=partner,
        checkpoint=f.checkpoint(release),
        quota_bytes=1,
    )
    approver = f.staff("Release manager")
    f.staff("Compliance")  # may not approve: not reminded
    assert actions.remind_pending_requests() == 0  # not pending long enough
    later = timezone.now() + 25 * HOUR
    assert actions.remind_pending_requests(at=later) == 1
    assert actions.remind_pending_requests(at=later + HOUR) == 0
    assert actions.remind_pending_requests(at=later + 25 * HOUR) == 1
    assert (
        AuditEvent.objects.filter(
            action="grant_request.reminded", target_id=str(request.pk)
        ).count()
        == 2
    )
    assert set(notified("request_pending")) == {approver.email}


@pytest.mark.django_db
def test_deadlines_are_announced_once_each():
    partner = f.partner()
    contact = f.contact(partner)
    release = f.release(public_in=-DAY)
    f.window(release, partner, closes=2 * DAY)
    grant = f.grant(f.checkpoint(release), partner)
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() + DAY)
    assert actions.announce_deadlines() == 2
    assert actions.announce_deadlines() == 2
    warnings = Notification.objects.filter(kind__in=["grant_expiring", "window_closing"])
    assert sorted(warnings.values_list("kind", "email")) == [
        ("grant_expiring", contact.email),
        ("window_closing", contact.email),
    ]


@pytest.mark.django_db
def test_staff_digest_once_a_day(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    staff = f.staff("Compliance")
    partner = f.partner()
    release = f.release(public_in=30 * DAY)
    f.window(release, partner)
    actions.request_grant(
        actor=f.partner_user(partner),
        partner=partner,
        checkpoint=f.checkpoint(release),
        quota_bytes=1,
    )
    assert actions.queue_staff_digest() == 1
    assert actions.queue_staff_digest() == 1
    assert Notification.objects.filter(kind="staff_digest").count() == 1
    notify.send_due()
    (message,) = mail.outbox
    assert message.to == [staff.email]
    assert message.subject.endswith("1 pending request")
    assert "Pending grant requests: 1" in message.body
