"""Production refuses every sample secret that ships in deploy/, and weak ones.

The cases are read from the example files themselves, so a placeholder added to any of
them is tried too; a scan of every file under deploy/ makes sure no secret-looking
variable escapes the list production checks.
"""

import re
import secrets
import string
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from accessctl.secret_rules import bytes_problem, secret_problem, url_password_problem
from tests.accessctl.test_embedded import PRODUCTION, manage

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

# Every variable production checks (accessctl/settings.py, "Secrets ...").
CHECKED = {
    "DJANGO_SECRET_KEY",
    "ACCESSCTL_TOKEN_PEPPERS",
    "ACCESSCTL_KEY_ENCRYPTION_KEY",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CACHE_URL",
    "EMAIL_URL",
    "AWS_SECRET_ACCESS_KEY",
}
# Secret-looking names that are not secrets (or not read by accessctl at all).
NOT_SECRETS = {
    "AWS_ACCESS_KEY_ID",  # an identifier; its secret half is checked
}
SECRET_LOOKING = re.compile(
    r"\b([A-Z][A-Z0-9_]*(?:SECRET|PASSWORD|PEPPER|_KEY|TOKEN|_URL)[A-Z0-9_]*)"
    r"\s*[:=]\s*\"?([^\s\"'},]+)"
)


def _assignments() -> list[tuple[str, str, str]]:
    """(file, variable, value) for every VARIABLE=value or VARIABLE: value in deploy/."""
    found = []
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        for name, value in SECRET_LOOKING.findall(path.read_text()):
            found.append((str(path.relative_to(DEPLOY)), name, value))
    return found


def _env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


def _compose_environments(node: object) -> list[dict[str, str]]:
    if isinstance(node, dict):
        found = [node["environment"]] if isinstance(node.get("environment"), dict) else []
        return found + [e for v in node.values() for e in _compose_environments(v)]
    return []


def shipped_samples() -> list[tuple[str, str, str]]:
    """(file, variable, value) of every sample secret the deploy files ship: parsed with
    each file's own syntax, then whatever the scan finds in any other file."""
    samples = [
        ("accessctl.env.example", k, v)
        for k, v in _env_file(DEPLOY / "accessctl.env.example").items()
    ]
    secret = yaml.safe_load((DEPLOY / "k8s" / "secret.example.yaml").read_text())
    samples += [("k8s/secret.example.yaml", k, str(v)) for k, v in secret["stringData"].items()]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for environment in _compose_environments(compose):
        samples += [("compose.yaml", k, str(v)) for k, v in environment.items()]
    parsed = {(f, k) for f, k, _ in samples}
    samples += [(f, k, v) for f, k, v in _assignments() if (f, k) not in parsed]
    unique = sorted(set(samples))
    return [
        (f, k, v)
        for f, k, v in unique
        if k in CHECKED
        and "${" not in v  # an interpolation the operator fills in, not a sample
        and (not k.endswith("_URL") or urlsplit(v).password is not None)
    ]


SAMPLES = shipped_samples()


def test_the_samples_cover_every_secret_the_deploy_files_ship():
    names = {k for _, k, _ in SAMPLES}
    assert {
        "DJANGO_SECRET_KEY",
        "ACCESSCTL_TOKEN_PEPPERS",
        "ACCESSCTL_KEY_ENCRYPTION_KEY",
        "DATABASE_URL",
        "EMAIL_URL",
        "AWS_SECRET_ACCESS_KEY",
    } <= names
    files = {f for f, _, _ in SAMPLES}
    assert {"accessctl.env.example", "k8s/secret.example.yaml", "Dockerfile"} <= files
    unchecked = {
        (f, k)
        for f, k, v in _assignments()
        if not v.startswith("$")  # an interpolation or command the operator runs
        and k not in CHECKED | NOT_SECRETS
        and not k.startswith(("GUNICORN_", "ACCESSCTL_S3_"))
        and k not in {"ACCESSCTL_PUBLIC_URL"}
    }
    assert not unchecked, f"secret-looking variables production does not check: {unchecked}"


def _production_with(name: str, value: str) -> dict[str, str]:
    return {**PRODUCTION, name: value}


@pytest.mark.parametrize(
    ("where", "name", "value"), SAMPLES, ids=[f"{f}:{k}" for f, k, _ in SAMPLES]
)
def test_production_refuses_each_shipped_sample_secret(tmp_path, where, name, value):
    result = manage(tmp_path, "check", check=False, extra_env=_production_with(name, value))
    assert result.returncode != 0, f"production started with {where}'s sample {name}"
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured:"), result.stderr
    assert name in last
    secret = urlsplit(value).password if name.endswith("_URL") else value.split(":", 1)[-1]
    assert secret and secret not in result.stderr + result.stdout
    assert value not in result.stderr + result.stdout


WEAK = {
    "DJANGO_SECRET_KEY": [
        "x" * 60,
        string.ascii_lowercase + string.ascii_uppercase + string.digits,  # counting
        "q" + "k9#Vq2!mZ-r7@Lp4$Wx8^Tn3&Hc6*Bf1(Jd5)Gs0" * 2,  # written twice, one more
        "k9#Vq2!mZ-r7@Lp4$Wx8^Tn3&Hc6*Bf1(Jd5)Gs0" * 2,  # one secret, written twice
        "Kp3" + "a1b2" * 14,
    ],
    "ACCESSCTL_TOKEN_PEPPERS": [
        "1:short-but-random-Qw9",
        "1:" + "ab" * 20,
        "1:Zx8Vb3Nm6Qw9Er2Ty5Ui8Op1As4Df7Gh0Jk,2:" + "0" * 40,  # every pepper is checked
        # one id twice: one of the two would be silently unused
        "1:Zx8Vb3Nm6Qw9Er2Ty5Ui8Op1As4Df7Gh0Jk,1:Hq4Zt8Lm2Wx7Pb3Nc9VdTb6Wq1Zr8Kx3",
        "1:Zx8Vb3Nm6Qw9Er2Ty5Ui8Op1As4Df7Gh0Jk,:Hq4Zt8Lm2Wx7Pb3Nc9VdTb6Wq1Zr8Kx3",
    ],
    "DJANGO_ALLOWED_HOSTS": ["*", "accessctl.lab.example,*"],
    "ACCESSCTL_TRUSTED_PROXIES": [
        # 256 adjacent /24s are one /16
        ",".join(f"10.1.{i}.0/24" for i in range(256)),
        "::ffff:0:0/96",  # every IPv4 address, written as IPv6
        "::ffff:10.0.0.0/104",
    ],
    "ACCESSCTL_KEY_ENCRYPTION_KEY": [
        "A" * 43,
        "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",  # the bytes 0, 1, ..., 31
    ],
    "DATABASE_URL": [
        "postgres://accessctl:accessctl@db:5432/accessctl",
        "postgres://accessctl:hunter2@db:5432/accessctl",
        # a password in the query is a password too (psycopg reads it there)
        "postgres://db:5432/x?user=accessctl&password=change-me",
        "postgres://db:5432/x?user=Zx8Vb3Nm6Qw9Er2Ty5Ui&password=Zx8Vb3Nm6Qw9Er2Ty5Ui",
    ],
    "CELERY_BROKER_URL": ["redis://:redis@redis:6379/0"],
    "CACHE_URL": ["redis://redis:6379/1?password=change-me"],
    "EMAIL_URL": ["smtp+tls://mailer:aaaaaaaaaaaaaaaaaaaa@smtp.lab.internal:587"],
}


@pytest.mark.parametrize(
    ("name", "value"), [(k, v) for k, vs in WEAK.items() for v in vs], ids=lambda x: x[:12]
)
def test_production_refuses_short_or_predictable_secrets(tmp_path, name, value):
    result = manage(tmp_path, "check", check=False, extra_env=_production_with(name, value))
    assert result.returncode != 0
    assert name in result.stderr.strip().splitlines()[-1]


def test_production_accepts_generated_secrets_with_passwords_in_urls(tmp_path):
    strong = {
        **PRODUCTION,
        # check does not connect: a URL with a generated password is enough.
        "DATABASE_URL": "postgres://accessctl:Tb6Wq1Zr8Kx3Nv5Hm2Pj@db.lab.internal:5432/accessctl",
        "EMAIL_URL": "smtp+tls://mailer:vR7%40qL2xN9pT4mK8sW3z@smtp.lab.internal:587",
        "CELERY_BROKER_URL": "redis://:Hq4Zt8Lm2Wx7Pb3Nc9Vd@redis.lab.internal:6379/0",
    }
    result = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", extra_env=strong)
    assert "no issues" in result.stdout


def test_production_accepts_a_hex_password_in_the_database_url(tmp_path):
    """What deploy/compose.yaml tells operators to generate (secrets.token_hex(24)); this
    one was refused as "too little entropy per character"."""
    url = "postgres://accessctl:f7addddb7a7ddc9ab90b957b94ccac07c8b70f63096797ec@db:5432/accessctl"
    env = {**PRODUCTION, "DATABASE_URL": url}
    assert "no issues" in manage(tmp_path, "check", extra_env=env).stdout


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DJANGO_ALLOWED_HOSTS", "accessctl.lab.example,.lab.example"),
        ("ACCESSCTL_TRUSTED_PROXIES", ",".join(f"10.1.{i}.0/24" for i in range(0, 256, 2))),
        ("ACCESSCTL_TRUSTED_PROXIES", "::ffff:10.0.0.7/128,10.0.0.0/24"),
        (
            "ACCESSCTL_TOKEN_PEPPERS",
            "2:Zx8Vb3Nm6Qw9Er2Ty5Ui8Op1As4Df7Gh0Jk,1:Hq4Zt8Lm2Wx7Pb3Nc9VdTb6Wq1Zr8Kx3",
        ),
        ("CACHE_URL", "redis://redis:6379/1?password=Hq4Zt8Lm2Wx7Pb3Nc9Vd"),
    ],
)
def test_production_accepts_narrow_settings(tmp_path, name, value):
    env = {**PRODUCTION, name: value}
    assert "no issues" in manage(tmp_path, "check", extra_env=env).stdout


GENERATORS = {"token_hex": secrets.token_hex, "token_urlsafe": secrets.token_urlsafe}


@settings(max_examples=3000, deadline=None)
@given(nbytes=st.integers(min_value=16, max_value=64), how=st.sampled_from(sorted(GENERATORS)))
def test_generated_secrets_are_never_refused(nbytes, how):
    """Each example draws a fresh secret from the operating system, as an operator does."""
    value = GENERATORS[how](nbytes)
    assert secret_problem(value, min_length=len(value)) == ""
    assert url_password_problem(f"postgres://accessctl:{value}@db:5432/accessctl") == ""
    assert bytes_problem(secrets.token_bytes(32), length=32) == ""


@pytest.mark.parametrize(
    "value",
    [
        string.ascii_lowercase + string.ascii_uppercase + string.digits,
        string.digits[::-1] + string.ascii_lowercase[::-1] + string.ascii_uppercase[::-1],
        "Tb6Wq1Zr8Kx3" + "abcdefghijkl",  # a typed start, then counting
        "Kp3" + "a1b2" * 14,
        "k9#Vq2!mZ-r7@Lp4$Wx8^Tn3" * 2,
        "aaaabbbbccccddddeeeeffffgggghhhh",
    ],
)
def test_predictable_secrets_are_refused(value):
    assert secret_problem(value, min_length=16).startswith("is too predictable")


@pytest.mark.parametrize(
    "key", [bytes(range(32)), bytes(range(31, -1, -1)), bytes(range(0, 64, 2))]
)
def test_sequential_keys_are_refused(key):
    assert bytes_problem(key, length=32).startswith("is not random")
