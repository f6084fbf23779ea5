"""Time-driven transitions: the action, and the task run by a real Celery worker on Redis."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.db import connection
from django.utils import timezone

from accessctl.audit.models import AuditEvent
from accessctl.celery import app
from partners import actions
from partners.models import Grant
from partners.tasks import expire_grants
from tests import factories as f

ROOT = Path(__file__).resolve().parents[2]
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
    settings_dict = connection.settings_dict
    database = (
        f"postgres://{settings_dict['USER']}:{settings_dict['PASSWORD']}@{settings_dict['HOST'] or '127.0.0.1'}:"
        f"{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}"
    )
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "CELERY_BROKER_URL": REDIS_URL,
        "ACCESSCTL_DATA_DIR": str(tmp_path),
    }
    celery = str(Path(sys.executable).with_name("celery"))
    process = subprocess.Popen(
        [
            celery,
            "-A",
            "accessctl",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stderr.close()


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
