"""Benchmark: revoke (suspend) a partner holding 10,000 active grants.

    .venv/bin/python bench/revoke.py [--grants 10000] [--downloaders 4]

Needs PostgreSQL (DATABASE_URL's server; a database ``accessctl_bench_revoke`` is made
anew) and Redis (REDIS_URL, default redis://127.0.0.1:6379/14, flushed). Runs gunicorn
(2 sync workers, nginx download mode) and one Celery worker (prefork, 2 processes, all
queues), then, while downloaders hammer the partner's grants, suspends the partner
through the staff API and reports:

- how long the call takes to return, side by side with the same call for a partner
  holding no grants (the baseline: what the call costs without any grants);
- how long the fan-out takes (revocation marked done, every grant revoked and audited,
  notifications queued) and until the emails are sent (dummy email backend);
- how many authorizations succeeded that started after the call returned (must be 0).
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import PY, gunicorn, psql  # noqa: E402
from bench.run import env as bench_env  # noqa: E402

DB_SERVER = os.environ.get("DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/postgres")
DB_URL = DB_SERVER.rsplit("/", 1)[0] + "/accessctl_bench_revoke"
BROKER = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")
SEED = """
import json, sys
import django
django.setup()
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from partners import actions
from django.core import mail
from django.test.utils import override_settings
from tests import factories as f

n = int(sys.argv[1])
now = timezone.now()
release = actions.create_release(
    actor=None, slug="r1", name="r1", public_release_at=now - timedelta(days=1)
)
out = {}
for slug, count in (("holder", n), ("empty-1", 0), ("empty-2", 0), ("empty-3", 0)):
    partner = f.partner(slug)
    for i in range(3):
        f.contact(partner, f"eng{i}@{slug}.example")
    actions.set_window(
        actor=None, release=release, partner=partner,
        opens_at=now - timedelta(days=1), closes_at=now + timedelta(days=20),
    )
    grants = f.many_grants(partner, release, count, prefix=slug) if count else []
    user = get_user_model().objects.create_user(f"{slug}-engineer", email=f"eng@{slug}.example")
    actions.add_member(actor=None, partner=partner, user=user)
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        mail.outbox = []
        out[slug] = {"grants": grants, "token": f.token(user, scopes=["read", "download"])}
officer = get_user_model().objects.create_user("officer", email="officer@lab.example", is_staff=True)
officer.groups.add(Group.objects.get(name="Security officer"))
# The officer's own token, with a real one-time backup code on their own device.
out["staff_token"] = f.token(officer)
print(json.dumps(out))
"""


def env(**extra: str) -> dict[str, str]:
    return {**bench_env(**extra), "DATABASE_URL": DB_URL, "CELERY_BROKER_URL": BROKER}


def sql(query: str, *params: object) -> object:
    """The first column of the first row."""
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    return row[0] if row else None


REVOCATION = (
    "SELECT r.id FROM partners_revocation r JOIN partners_partner p ON p.id = r.partner_id "
    "WHERE p.slug = %s AND r.status = 'done'"
)


def downloader(base, token, grants, stop, results):
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        while not stop.is_set():
            grant, grant_token = random.choice(grants)  # noqa: S311 (load, not security)
            started = time.perf_counter()
            response = client.get(
                f"/api/v1/grants/{grant}/files/model.safetensors",
                headers={"X-Grant-Token": grant_token, "Range": "bytes=0-0"},
            )
            results.append((started, time.perf_counter(), response.status_code))


def suspend(base, staff_token, slug) -> float:
    started = time.perf_counter()
    response = httpx.post(
        f"{base}/api/v1/staff/partners/{slug}/suspend",
        json={"reason": "benchmark"},
        headers={"Authorization": f"Bearer {staff_token}"},
        timeout=60,
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"suspend {slug}: {response.status_code} {response.text}")
    return elapsed


def wait_done(slug: str, timeout: float = 120) -> int:
    """Wait for the partner's revocation to be done; its id."""
    deadline = time.monotonic() + timeout
    while (revocation := sql(REVOCATION, slug)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fan-out for {slug} not done after {timeout} s")
        time.sleep(0.02)
    return int(revocation)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grants", type=int, default=10_000)
    parser.add_argument("--downloaders", type=int, default=4)
    options = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="accessctl-bench-revoke-"))
    common = {"ACCESSCTL_DATA_DIR": str(data_dir), "EMAIL_URL": "dummymail://"}
    psql("DROP DATABASE IF EXISTS accessctl_bench_revoke")
    psql("CREATE DATABASE accessctl_bench_revoke")
    subprocess.run([PY, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env(**common), check=True)
    seeded = json.loads(
        subprocess.run(
            [PY, "-c", SEED, str(options.grants)],
            cwd=ROOT,
            env=env(**common),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    import redis

    redis.Redis.from_url(BROKER).flushdb()
    worker = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/celery"),
            "-A",
            "accessctl",
            "worker",
            "--concurrency",
            "2",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env(**common),
    )
    try:
        with gunicorn(
            {
                **common,
                "ACCESSCTL_DOWNLOAD_MODE": "nginx",
                "CELERY_BROKER_URL": BROKER,
                "DATABASE_URL": DB_URL,
            }
        ) as base:
            holder = seeded["holder"]
            sample = random.sample(holder["grants"], min(50, len(holder["grants"])))
            with httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {holder['token']}"}
            ) as c:
                grants = [(g, c.get(f"/api/v1/grants/{g}").json()["token"]) for g in sample]
            stop, results = threading.Event(), []
            threads = [
                threading.Thread(
                    target=downloader, args=(base, holder["token"], grants, stop, results)
                )
                for _ in range(options.downloaders)
            ]
            for thread in threads:
                thread.start()
            time.sleep(2)
            # Baseline, under the same load: the same call for partners without grants
            # (the first warms up).
            calls = []
            for slug in ("empty-1", "empty-2", "empty-3"):
                calls.append(suspend(base, seeded["staff_token"], slug))
                wait_done(slug)
            baseline = min(calls[1:])
            call_started = time.perf_counter()
            call = suspend(base, seeded["staff_token"], "holder")
            returned = time.perf_counter()
            time.sleep(2)
            stop.set()
            for thread in threads:
                thread.join()
            revocation = wait_done("holder")
            done_after = sql(
                "SELECT extract(epoch FROM completed_at - effective_at)::float "
                "FROM partners_revocation WHERE id = %s",
                revocation,
            )
            revoked = sql("SELECT count(*) FROM partners_grant WHERE status = 'revoked'")
            events = sql("SELECT count(*) FROM audit_auditevent WHERE action = 'grant.revoked'")
            key = f"revocation:{revocation}:%"
            deadline = time.monotonic() + 60
            while sql(
                "SELECT count(*) FROM partners_notification WHERE key LIKE %s AND status <> 'sent'",
                key,
            ):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            mails, mailed = (
                psycopg.connect(DB_URL, autocommit=True)
                .execute(
                    "SELECT count(*), extract(epoch FROM max(n.sent_at) - r.effective_at)::float "
                    "FROM partners_notification n, partners_revocation r "
                    "WHERE n.key LIKE %s AND r.id = %s GROUP BY r.effective_at",
                    [key, revocation],
                )
                .fetchone()
            )
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    ok_before = sum(1 for s, _, code in results if s < call_started and code < 300)
    in_flight = sum(1 for s, e, code in results if call_started <= s <= returned and code < 300)
    after = [code for s, _, code in results if s > returned]
    allowed_after = sum(1 for code in after if code < 300)
    print(
        f"# Revoking a partner with {options.grants:,} active grants "
        f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)\n"
    )
    print(
        "Staff API `POST /api/v1/staff/partners/{slug}/suspend`, gunicorn 2 sync workers, "
        f"Celery worker prefork x2 on Redis, {options.downloaders} downloader threads on "
        f"{len(grants)} of the partner's grants throughout.\n"
    )
    print("| measure | result | target |")
    print("| --- | ---: | ---: |")
    print(f"| suspend call, partner with no grants (baseline) | {baseline * 1000:.0f} ms | |")
    print(
        f"| suspend call, partner with {options.grants:,} grants | {call * 1000:.0f} ms "
        f"({call / baseline:.2f}x baseline) | < 1 s |"
    )
    print(
        "| fan-out done: every grant revoked and audited, requests rejected, emails queued "
        f"(completed_at - effective_at) | {done_after:.2f} s | < 10 s |"
    )
    print(
        f"| grants revoked / grant.revoked events | {revoked:,} / {events:,} | {options.grants:,} each |"
    )
    print(
        f"| {mails} emails (3 contacts, 1 officer) sent, after the root change | {mailed:.2f} s | |"
    )
    print(
        f"| authorizations allowed before the call (from 2 s before the baselines) | {ok_before:,} | |"
    )
    print(f"| authorizations allowed that started during the call | {in_flight:,} | |")
    print(f"| authorizations attempted after the call returned | {len(after):,} | |")
    print(f"| **authorizations allowed after the call returned** | **{allowed_after}** | **0** |")


if __name__ == "__main__":
    main()
