"""The embedded default as a user starts it: SQLite, seeded demo, and the same database
rules as on PostgreSQL (triggers there instead of an exclusion constraint)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def manage(data_dir, *args, check=True, extra_env=None, cwd=ROOT):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "DJANGO_", "ACCESSCTL_", "CELERY_", "CACHE_URL"))
    }
    env.update({"ACCESSCTL_DATA_DIR": str(data_dir), **(extra_env or {})})
    if args[0] == "shell":
        args = ("shell", "--no-imports", *args[1:])
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=300,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("embedded")
    manage(data_dir, "migrate", "--no-input")
    first = manage(data_dir, "seed_demo", "--url", "http://127.0.0.1:8123/")
    return data_dir, first.stdout


def test_seed_prints_where_and_how_to_sign_in(demo):
    data_dir, out = demo
    assert "http://127.0.0.1:8123/admin/" in out
    password = (data_dir / "demo-credentials.txt").read_text().split()[0]
    assert f"password:   {password}" in out
    assert oct((data_dir / "demo-credentials.txt").stat().st_mode)[-3:] == "600"
    assert (data_dir / "db.sqlite3").exists()


def test_seed_is_idempotent(demo):
    data_dir, out = demo
    again = manage(data_dir, "seed_demo", "--url", "http://127.0.0.1:8123/").stdout
    assert again == out
    count = manage(
        data_dir,
        "shell",
        "-c",
        "from partners.models import Partner; print(Partner.objects.count())",
    ).stdout
    assert count.strip() == "3"


def test_demo_has_partners_windows_in_past_present_future_and_shards(demo):
    data_dir, _ = demo
    script = (
        "from django.utils import timezone as t\n"
        "from partners.models import *\n"
        "now = t.now()\n"
        "ws = EmbargoWindow.objects.all()\n"
        "print(sorted({str(p.jurisdiction) for p in Partner.objects.all()}))\n"
        "print(sorted({str(w.state_at(now).value) for w in ws}))\n"
        "print(Artifact.objects.count() > 0, Grant.objects.filter(status='active').count())\n"
    )
    out = manage(data_dir, "shell", "-c", script).stdout.splitlines()
    assert out[0] == "['DE', 'JP', 'US']"
    assert out[1] == "['closed', 'open', 'upcoming']"
    assert out[2] == "True 2"
    assert list((data_dir / "artifacts").rglob("*.safetensors"))


def test_demo_has_a_fingerprinted_release_whose_copy_the_worker_writes(demo):
    data_dir, out = demo
    assert "download v5:step-2000 --dir ./v5" in out
    script = (
        "from partners import actions\n"
        "from partners.models import *\n"
        "key = FingerprintKey.objects.get(release__slug='v5')\n"
        "print(key.partner.slug, Grant.objects.filter(checkpoint__release__slug='v5').count())\n"
        "print(actions.write_variants())\n"  # the demo's worker does this at its start
        "v = ArtifactVariant.objects.get(artifact__path='model.safetensors')\n"
        "c = ArtifactVariant.objects.get(artifact__path='config.json')\n"
        "print(c.status, c.sha256 == c.artifact.sha256)\n"
        "print(v.artifact.path, v.status, len(v.tensors), v.sha256 != v.artifact.sha256)\n"
    )
    lines = manage(data_dir, "shell", "-c", script).stdout.splitlines()
    assert lines[0] == "aurora-gpu 1"
    assert lines[1] == "{'ready': 2, 'failed': 0}"  # config.json: the shared file
    assert lines[2] == "ready True"
    assert lines[3] == "model.safetensors ready 4 True"


def test_demo_totp_prints_a_code_that_verifies(demo):
    data_dir, _ = demo
    code = manage(data_dir, "demo_totp", "admin").stdout.strip()
    assert code.isdigit() and len(code) == 6
    verified = manage(
        data_dir,
        "shell",
        "-c",
        "from django_otp.plugins.otp_totp.models import TOTPDevice as D;"
        f"print(D.objects.get(user__username='admin').verify_token('{code}'))",
    ).stdout.strip()
    assert verified == "True"


def test_each_demo_staff_member_has_their_own_totp_key(demo):
    data_dir, out = demo
    keys = (data_dir / "demo-credentials.txt").read_text().split()[1].split(",")
    assert len(keys) == 6 and len({k.split("=")[1] for k in keys}) == 6
    for item in keys:
        username, key = item.split("=")
        assert f"{username:<11} {key}" in out
    distinct = manage(
        data_dir,
        "shell",
        "-c",
        "from django_otp.plugins.otp_totp.models import TOTPDevice as D;"
        "print(D.objects.count(), D.objects.values('key').distinct().count())",
    ).stdout.split()
    assert distinct == ["6", "6"]


@pytest.mark.parametrize(
    ("statement", "rule"),
    [
        (
            # an overlapping window for aurora-gpu x v4
            "w = EmbargoWindow.objects.get(partner__slug='aurora-gpu', release__slug='v4');"
            "EmbargoWindow.objects.create(release=w.release, partner=w.partner,"
            " opens_at=w.opens_at, closes_at=w.closes_at, embargo_lifts_at=w.closes_at)",
            "window_no_overlap",
        ),
        (
            "w = EmbargoWindow.objects.get(partner__slug='hanami-silicon');"
            "EmbargoWindow.objects.filter(pk=w.pk).update(closes_at=w.opens_at)",
            "CHECK constraint failed: window_opens_before_closes",
        ),
        (
            "g = Grant.objects.get(status='active', checkpoint__release__slug='v4');"
            "Grant.objects.filter(pk=g.pk).update(expires_at=g.window.closes_at + timedelta(days=1))",
            "grant_outlives_window",
        ),
        (
            "g = Grant.objects.get(status='active', checkpoint__release__slug='v4');"
            "w = EmbargoWindow.objects.get(partner__slug='tessel-accel');"
            "Grant.objects.filter(pk=g.pk).update(window=w)",
            "grant_window_mismatch",
        ),
        (
            "g = Grant.objects.get(status='active', checkpoint__release__slug='v4');"
            "EmbargoWindow.objects.filter(pk=g.window_id).update(closes_at=g.expires_at - timedelta(hours=1))",
            "grant_outlives_window",
        ),
    ],
)
def test_sqlite_enforces_the_same_database_rules(demo, statement, rule):
    data_dir, _ = demo
    result = manage(
        data_dir,
        "shell",
        "-c",
        f"from datetime import timedelta\nfrom partners.models import *\n{statement}",
        check=False,
    )
    assert result.returncode != 0
    assert rule in result.stderr


def test_database_refusals_hold_on_sqlite(tmp_path):
    """tests/partners/test_db_refusals.py again, on the embedded default's SQLite: every
    database rule refuses with its stable code there too (SQLite's messages name columns,
    not constraints), and a second grant request answers 409, not 500; and the fair
    quota's lease is charged and stored the same way there."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "DJANGO_", "ACCESSCTL_", "TEST_DATABASE"))
    }
    env.update(ACCESSCTL_DATA_DIR=str(tmp_path), ACCESSCTL_TESTS_ON_SQLITE="1")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/partners/test_db_refusals.py",
            # The lease's writes take the SQLite branch (no data-modifying CTEs); the
            # thread races need PostgreSQL's row locks.
            "tests/partners/actions/test_fair_quota.py",
            "-k",
            "not racing",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout


PRODUCTION = {
    "ACCESSCTL_ENV": "production",
    "DJANGO_SECRET_KEY": "k9#Vq2!mZ-r7@Lp4$Wx8^Tn3&Hc6*Bf1(Jd5)Gs0-uE3%Ya7+Ro2=Mi6~Qe9",
    "DJANGO_ALLOWED_HOSTS": "accessctl.lab.example",
    "ACCESSCTL_KEY_ENCRYPTION_KEY": "q3V0m8yZx1Jk2Lp7Rt5Wn9Bc4Df6Gh0Jk2Lp7Rt5Wn0",
    "ACCESSCTL_TOKEN_PEPPERS": "2:Zx8Vb3Nm6Qw9Er2Ty5Ui8Op1As4Df7Gh0Jk",
    "CACHE_URL": "redis://127.0.0.1:6379/1",  # shared by every process (never connected)
}


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("ACCESSCTL_KEY_ENCRYPTION_KEY", "signing keys are never stored unencrypted"),
        ("ACCESSCTL_TOKEN_PEPPERS", "ACCESSCTL_TOKEN_PEPPERS must be set"),
        ("DJANGO_ALLOWED_HOSTS", "DJANGO_ALLOWED_HOSTS"),
    ],
)
def test_production_refuses_to_start_without_each_secret(tmp_path, missing, message):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = manage(tmp_path, "check", check=False, extra_env=env)
    assert result.returncode != 0
    assert message in result.stderr


def test_production_refuses_to_start_without_secrets(tmp_path):
    result = manage(tmp_path, "check", check=False, extra_env={"ACCESSCTL_ENV": "production"})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
    weak = manage(
        tmp_path,
        "check",
        check=False,
        extra_env={
            "ACCESSCTL_ENV": "production",
            "DJANGO_SECRET_KEY": "x" * 60,
            "DJANGO_ALLOWED_HOSTS": "a",
        },
    )
    assert "at least 50 random characters" in weak.stderr
    debug = manage(
        tmp_path,
        "check",
        check=False,
        extra_env={
            "ACCESSCTL_ENV": "production",
            "DJANGO_SECRET_KEY": PRODUCTION["DJANGO_SECRET_KEY"],
            "DJANGO_ALLOWED_HOSTS": "a",
            "DJANGO_DEBUG": "true",
        },
    )
    assert "DJANGO_DEBUG must be off" in debug.stderr


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        # check does not connect; the test server's postgres:postgres would be refused.
        extra_env={
            **PRODUCTION,
            "DATABASE_URL": "postgres://accessctl:Tb6Wq1Zr8Kx3Nv5Hm2Pj@db.lab.internal/accessctl",
        },
    )
    assert "no issues" in result.stdout


def test_demo_partner_downloads_through_the_api_on_sqlite(demo):
    """The embedded default's download path (SQLite: debit and event in one transaction)."""
    data_dir, _ = demo
    token = (data_dir / "demo-credentials.txt").read_text().split()[2]
    script = (
        "import hashlib\n"
        "from django.test import Client\n"
        "from partners.models import Artifact, Checkpoint, Grant\n"
        f"c = Client(HTTP_HOST='localhost', HTTP_AUTHORIZATION='Bearer {token}')\n"
        # The grant of a release without fingerprinting: the other's copies need a worker.
        "grants = c.get('/api/v1/grants/').json()['results']\n"
        "grant = next(g for g in grants if not Checkpoint.objects.get(pk=g['checkpoint']).release.fingerprint)\n"
        "a = Artifact.objects.filter(checkpoint_id=grant['checkpoint']).order_by('path').last()\n"
        "before = Grant.objects.get(pk=grant['id']).bytes_used\n"
        "r = c.get(f\"/api/v1/grants/{grant['id']}/files/{a.path}\", HTTP_X_GRANT_TOKEN=grant['token'], HTTP_RANGE='bytes=0-99')\n"
        "body = b''.join(r.streaming_content)\n"
        "print(r.status_code, len(body), Grant.objects.get(pk=grant['id']).bytes_used - before)\n"
    )
    out = manage(data_dir, "shell", "-c", script).stdout.split()
    assert out == ["206", "100", "100"]


def test_the_embedded_broker_keeps_its_files_in_the_data_directory(demo, tmp_path):
    """kombu's filesystem transport writes its exchange tables to ``control/`` under the
    working directory unless told otherwise: a runtime file that once got committed."""
    data_dir, _ = demo
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    script = (
        "from accessctl.celery import app\n"
        "app.send_task('partners.tasks.send_staff_digest')\n"
        "app.send_task('accessctl.audit.tasks.seal_audit_log')\n"
    )
    manage(data_dir, "shell", "-c", script, cwd=elsewhere)
    assert list(elsewhere.iterdir()) == []
    assert not (ROOT / "control").exists()
    assert sorted(p.name for p in (data_dir / "broker" / "control").iterdir()) == [
        "default.exchange"
    ]


def test_the_audit_log_seals_purges_and_exports_verifiably_on_sqlite(tmp_path):
    """The embedded default's audit trail: sealing (no COPY, no advisory lock on SQLite),
    retention (no trigger to switch off) and an export that the verifier accepts."""
    manage(tmp_path, "migrate", "--no-input")
    script = (
        "import json\n"
        "from datetime import timedelta\n"
        "from django.contrib.auth.models import User\n"
        "from django.utils import timezone\n"
        "from accessctl.audit.events import AuditAction, record\n"
        "from accessctl.audit.exports import request_export, storage, write_export\n"
        "from accessctl.audit.models import AuditEvent\n"
        "from accessctl.audit.retention import apply_retention\n"
        "from accessctl.audit.sealing import seal\n"
        "from accessctl.signing.keys import jwks\n"
        "start = AuditEvent.objects.count()\n"
        "old = timezone.now() - timedelta(days=400)\n"
        "for _ in range(3):\n"
        "    record(AuditAction.PARTNER_UPDATED, actor=None, at=old)\n"
        "record(AuditAction.PARTNER_UPDATED, actor=None)\n"
        "print(start, seal().tree_size)\n"
        "purged = apply_retention(older_than=timedelta(days=365), operator='ops')\n"
        "print(purged.events_deleted, purged.purged_below)\n"
        "auditor = User.objects.create_superuser('auditor', 'a@lab.example', 'not used')\n"
        "done = write_export(request_export(actor=auditor, filters={}).pk)\n"
        f"open({str(tmp_path / 'export.jsonl')!r}, 'wb').write(storage().open(done.files['jsonl']['name']).read())\n"
        f"open({str(tmp_path / 'jwks.json')!r}, 'w').write(json.dumps(jwks()))\n"
        "print(done.events)\n"
    )
    out = manage(tmp_path, "shell", "-c", script).stdout.split()
    assert out == ["0", "4", "3", "3", "3"]  # the recent event, the retention's, the request's
    verified = manage(
        tmp_path,
        "verify_audit_export",
        str(tmp_path / "export.jsonl"),
        "--public-key",
        str(tmp_path / "jwks.json"),
    )
    assert verified.stdout == "OK 3 events verified against the signed checkpoints\n"


def test_processes_starting_at_once_make_one_set_of_secrets(tmp_path):
    # The demo starts web, worker and beat together on a fresh folder: each makes the
    # embedded secrets if missing. One set wins, every process reads it whole (never an
    # empty or half-written secret, never FileExistsError), and no draft is left behind.
    data_dir = tmp_path / "fresh"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "DJANGO_", "ACCESSCTL_", "CELERY_", "CACHE_URL"))
    }
    env.update(
        {"ACCESSCTL_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "accessctl.settings"}
    )
    code = (
        "import hashlib; from django.conf import settings as s; "
        "print(hashlib.sha256((s.SECRET_KEY + '|' + s.ACCESSCTL_KEY_ENCRYPTION_KEY + '|' "
        "+ s.ACCESSCTL_TOKEN_PEPPERS['1']).encode()).hexdigest(), len(s.SECRET_KEY))"
    )
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(16)
    ]
    answers = [process.communicate(timeout=120) for process in starts]
    assert all(process.returncode == 0 for process in starts), [err for _, err in answers]
    assert len({out for out, _ in answers}) == 1, answers
    _digest, length = answers[0][0].split()
    assert int(length) >= 50
    assert sorted(p.name for p in data_dir.iterdir() if p.name.startswith(".")) == []
    for name in ("secret_key", "key_encryption_key", "token_pepper"):
        secret = data_dir / name
        if secret.exists():
            assert secret.stat().st_mode & 0o777 == 0o600, name
