"""Lifecycle and revocation with real ``celery worker`` processes on Redis (not eager
mode), a real SMTP server, and the faults the issue names: a worker SIGKILLed in the
middle of a cascade, Redis stopped while revoking, and tasks that run twice at once."""

import logging
import os
import time
from datetime import timedelta

import psycopg
import pytest
import redis
from django.db import connection
from django.utils import timezone

from accessctl.audit.models import AuditEvent
from accessctl.celery import app
from partners import actions
from partners.models import Grant, Revocation
from tests import factories as f
from tests.workers import (
    Beat,
    Inbox,
    RedisServer,
    database_url,
    use_broker,
    wait_for,
    workers,
)

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
DAY = timedelta(days=1)


@pytest.fixture
def inbox():
    inbox = Inbox()
    inbox.controller.start()
    yield inbox
    inbox.controller.stop()


@pytest.fixture
def worker_env(tmp_path, inbox):
    return {
        "ACCESSCTL_DATA_DIR": str(tmp_path),
        "EMAIL_URL": inbox.url,
        # The sweeper re-sends any fan-out not finished: at once, for the tests.
        "ACCESSCTL_REVOCATION_RESUME_SECONDS": "0",
    }


@pytest.fixture
def broker():
    redis.Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL


def send(task: str, url: str = REDIS_URL):
    with app.connection_for_write(url) as conn:
        return app.send_task(task, connection=conn)


def partner_with_grants(n: int):
    partner = f.partner("aurora")
    contact = f.contact(partner)
    release = f.release(public_in=-DAY)
    f.window(release, partner)
    return partner, contact, f.many_grants(partner, release, n)


def revoked_once(grant_ids) -> bool:
    events = AuditEvent.objects.filter(action="grant.revoked", target_id__in=map(str, grant_ids))
    return events.count() == len(grant_ids) == events.values("target_id").distinct().count()


def test_worker_fans_out_a_suspension_and_emails_partner_and_staff(broker, worker_env, inbox):
    partner, contact, grant_ids = partner_with_grants(25)
    officer = f.staff("Security officer", username="officer")
    with workers(broker, worker_env) as start:
        start()
        # A committed action sends the fan-out itself (transaction.on_commit).
        actions.suspend_partner(actor=officer, partner=partner, reason="leak")
        revocation = Revocation.objects.get(partner=partner)
        wait_for(
            lambda: Revocation.objects.filter(pk=revocation.pk, status="done").exists(),
            what="the fan-out",
        )
        wait_for(lambda: len(inbox.messages) >= 2, what="two emails")
    assert Grant.objects.filter(pk__in=grant_ids, status="revoked").count() == 25
    assert revoked_once(grant_ids)
    (to_partner,) = inbox.to(contact.email)
    assert to_partner["Subject"] == "Access revoked: 25 grants"
    assert to_partner.is_multipart()  # text and HTML
    assert {p.get_content_type() for p in to_partner.walk()} >= {"text/plain", "text/html"}
    (to_staff,) = inbox.to(officer.email)
    assert to_staff["Subject"] == f"Revocation #{revocation.pk} done: partner aurora"


def test_worker_runs_the_time_driven_transitions(broker, worker_env, inbox):
    partner = f.partner()
    contact = f.contact(partner)
    window = f.window(f.release(public_in=DAY), partner, opens=-timedelta(minutes=5))
    with workers(broker, worker_env) as start:
        start()
        assert send("partners.tasks.open_windows").get(timeout=60) == 1
        assert send("partners.tasks.open_windows").get(timeout=60) == 0
        wait_for(lambda: inbox.to(contact.email), what="the window-opened email")
    assert AuditEvent.objects.filter(action="window.opened", target_id=str(window.pk)).count() == 1
    (message,) = inbox.to(contact.email)
    assert message["Subject"].startswith("Your download window for")


def test_a_worker_killed_mid_cascade_is_finished_by_the_next_without_doing_anything_twice(
    broker, worker_env
):
    partner, _, grant_ids = partner_with_grants(2500)
    blocker = sorted(grant_ids)[1500]  # in the second batch of 1000
    with (
        workers(broker, worker_env) as start,
        psycopg.connect(database_url(), autocommit=False) as other,
    ):
        # Another transaction holds one grant of the second batch: the worker commits
        # the first batch, then waits on that row lock, and is killed there.
        other.execute("SELECT 1 FROM partners_grant WHERE id = %s FOR UPDATE", [blocker])
        first = start()
        actions.suspend_partner(actor=None, partner=partner, reason="leak")
        revocation = Revocation.objects.get(partner=partner)
        wait_for(
            lambda: Revocation.objects.get(pk=revocation.pk).grants_revoked == 1000,
            what="the first batch",
        )
        wait_for(lambda: waiting_on_a_lock(other), what="the worker to block on the lock")
        first.kill()
        other.rollback()
        assert Revocation.objects.get(pk=revocation.pk).status == "pending"

        start()  # a new worker; the periodic sweeper re-sends unfinished fan-outs
        send("partners.tasks.resume_revocations").get(timeout=60)
        wait_for(
            lambda: Revocation.objects.filter(pk=revocation.pk, status="done").exists(),
            what="the resumed fan-out",
        )
    revocation.refresh_from_db()
    assert revocation.grants_revoked == 2500
    assert revocation.attempts == 2
    assert Grant.objects.filter(pk__in=grant_ids, status="revoked").count() == 2500
    assert revoked_once(grant_ids)
    assert AuditEvent.objects.filter(action="revocation.completed").count() == 1


def test_an_interrupted_cascade_is_finished_within_30_s_of_a_new_worker_and_beat(
    broker, tmp_path, inbox
):
    """10,000 grants; the worker is SIGKILLed after the first batch. Its message would
    come back only after the visibility timeout (15 min): the new worker asks for the
    unfinished fan-outs when it starts, and beat's sweeper (every 10 s, the migrations'
    schedule) would within 30 s anyway. Default resume settings, not the tests' 0."""
    env = {"ACCESSCTL_DATA_DIR": str(tmp_path), "EMAIL_URL": inbox.url}
    partner, _, grant_ids = partner_with_grants(10_000)
    blocker = sorted(grant_ids)[1500]
    with (
        workers(broker, env) as start,
        psycopg.connect(database_url(), autocommit=False) as other,
    ):
        other.execute("SELECT 1 FROM partners_grant WHERE id = %s FOR UPDATE", [blocker])
        first = start()
        actions.suspend_partner(actor=None, partner=partner, reason="leak")
        revocation = Revocation.objects.get(partner=partner)
        wait_for(
            lambda: Revocation.objects.get(pk=revocation.pk).grants_revoked == 1000,
            what="the first batch",
            timeout=120,
        )
        wait_for(lambda: waiting_on_a_lock(other), what="the worker to block on the lock")
        first.kill()
        other.rollback()
        assert Revocation.objects.get(pk=revocation.pk).status == "pending"

        restarted = time.monotonic()
        start()
        beat = Beat(broker, env, tmp_path)
        try:
            wait_for(
                lambda: Revocation.objects.filter(pk=revocation.pk, status="done").exists(),
                what="the resumed fan-out",
                timeout=120,
            )
            took = time.monotonic() - restarted
        finally:
            beat.stop()
    print(f"cascade of 10,000 grants finished {took:.1f} s after a new worker and beat started")
    assert took < 30
    assert Grant.objects.filter(pk__in=grant_ids, status="revoked").count() == 10_000
    assert revoked_once(grant_ids)
    assert AuditEvent.objects.filter(action="revocation.completed").count() == 1


def test_with_redis_stopped_revoking_takes_effect_and_the_fan_out_runs_when_it_returns(
    tmp_path, worker_env, caplog
):
    server = RedisServer(tmp_path)
    server.start()
    partner, _, grant_ids = partner_with_grants(30)
    grant = Grant.objects.get(pk=grant_ids[0])
    try:
        with use_broker(server.url), workers(server.url, worker_env) as start:
            server.stop()
            with caplog.at_level(logging.WARNING, logger="accessctl.dispatch"):
                actions.suspend_partner(actor=None, partner=partner, reason="leak")
            assert "could not queue partners.tasks.cascade_revocation" in caplog.text
            # Downloads are refused at once: enforcement never needed the broker.
            assert f.authorize(grant).reason == "partner_suspended"
            revocation = Revocation.objects.get(partner=partner)
            assert revocation.status == "pending"

            server.start()
            start()
            send("partners.tasks.resume_revocations", server.url).get(timeout=60)
            wait_for(
                lambda: Revocation.objects.filter(pk=revocation.pk, status="done").exists(),
                what="the fan-out after Redis returned",
            )
    finally:
        server.stop()
    assert Grant.objects.filter(pk__in=grant_ids, status="revoked").count() == 30
    assert revoked_once(grant_ids)


def test_a_cascade_and_a_transition_sent_twice_at_once_change_things_once(broker, worker_env):
    partner, _, grant_ids = partner_with_grants(3000)
    Grant.objects.filter(pk__in=grant_ids[:500]).update(expires_at=timezone.now())
    with workers(broker, worker_env) as start:
        start(concurrency=2)
        # The action sends one fan-out itself; two more race it.
        actions.suspend_partner(actor=None, partner=partner, reason="leak")
        revocation = Revocation.objects.get(partner=partner)
        twice = [
            app.send_task("partners.tasks.cascade_revocation", args=[revocation.pk])
            for _ in range(2)
        ]
        expiring = [send("partners.tasks.expire_grants") for _ in range(2)]
        for result in twice:
            result.get(timeout=120)
        expired = sorted(r.get(timeout=120) for r in expiring)
    revocation.refresh_from_db()
    assert revocation.status == "done" and revocation.grants_revoked + sum(expired) == 3000
    assert revocation.attempts >= 2
    assert AuditEvent.objects.filter(action="revocation.completed").count() == 1
    assert sum(expired) == AuditEvent.objects.filter(action="grant.expired").count()
    ended = AuditEvent.objects.filter(
        action__in=["grant.revoked", "grant.expired"], target_id__in=map(str, grant_ids)
    )
    assert ended.count() == 3000 == ended.values("target_id").distinct().count()


def waiting_on_a_lock(other) -> bool:
    blocked = other.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = %s",
        [connection.settings_dict["NAME"]],
    ).fetchone()
    return bool(blocked and blocked[0])
