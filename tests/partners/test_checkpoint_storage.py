"""A checkpoint's files are its own: derived keys, confined paths, bytes that are there.

Issue #11: the staff API took ``storage_key`` verbatim, so a checkpoint of a public
release could point at an embargoed release's shard (or, in S3, at an audit export), and
a direct grant on it served those bytes.
"""

import base64
import hashlib
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.core.validators import validate_slug
from rest_framework.test import APIClient

from accessctl.audit.models import AuditEvent
from partners import actions
from partners.errors import ActionError
from partners.models import Artifact, Checkpoint
from partners.storage import artifact_key, artifact_storage, path_problem
from tests import factories as f

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)
SECRET = b"embargoed weights of v5"


@pytest.fixture
def world():
    """v3 is public, with a partner's window; v5 is embargoed and its shard is stored."""
    partner = f.partner("aurora-gpu")
    public = f.release("v3", public_in=-DAY)
    f.window(public, partner)
    embargoed = f.release("v5", public_in=30 * DAY)
    f.stored_checkpoint(embargoed, {"secret.bin": SECRET}, tag="step-1")
    manager = f.staff("Release manager")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {f.token(manager, scopes=['staff'])}")
    return partner, public, embargoed, client


def post(client, slug: str, tag: str, *artifacts: dict):
    return client.post(
        f"/api/v1/staff/releases/{slug}/checkpoints/",
        {"tag": tag, "artifacts": list(artifacts)},
        format="json",
    )


def file(path: str, content: bytes, **extra) -> dict:
    return {
        "path": path,
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        **extra,
    }


def checkpoint_events() -> int:
    """Checkpoint changes (a refusal's ``checkpoint.refused`` is evidence, not a change)."""
    return (
        AuditEvent.objects.filter(action__startswith="checkpoint.")
        .exclude(action="checkpoint.refused")
        .count()
    )


def assert_problem(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code


def test_checkpoint_cannot_point_at_an_embargoed_releases_shard(world):
    _partner, _public, _embargoed, client = world
    before = checkpoint_events()
    response = post(
        client, "v3", "launder", file("model.bin", SECRET, storage_key="v5/step-1/secret.bin")
    )
    assert_problem(response, 400, "storage_key_not_derived")
    assert not Checkpoint.objects.filter(release__slug="v3", tag="launder").exists()
    assert checkpoint_events() == before


@pytest.mark.parametrize(
    "key",
    [
        "v5/step-1/secret.bin",
        "v3/launder/../../v5/step-1/secret.bin",
        "accessctl.audit-exports/audit-exports/1/audit-export-1.jsonl",
        "audit-exports/audit-exports/1/audit-export-1.jsonl",
        "/v3/launder/model.bin",
        "v3/launder/model.bin ",
    ],
)
def test_any_storage_key_but_the_derived_one_is_refused(world, key):
    _partner, _public, _embargoed, client = world
    assert_problem(
        post(client, "v3", "launder", file("model.bin", b"x", storage_key=key)),
        400,
        "storage_key_not_derived",
    )
    assert not Artifact.objects.filter(checkpoint__release__slug="v3").exists()


def test_files_are_stored_at_the_derived_key_which_may_be_given_or_left_out(world):
    _partner, public, _embargoed, client = world
    a = f.stored_spec(public, "step-2", "a.bin", b"aaa")
    b = f.stored_spec(public, "step-2", "sub/b.bin", b"bbb")
    response = post(
        client,
        "v3",
        "step-2",
        {"path": a.path, "size": a.size, "sha256": a.sha256},
        {
            "path": b.path,
            "size": b.size,
            "sha256": b.sha256,
            "storage_key": "v3/step-2/sub/b.bin",
        },
    )
    assert response.status_code == 201, response.content
    keys = dict(
        Artifact.objects.values_list("path", "storage_key").filter(checkpoint__tag="step-2")
    )
    assert keys == {"a.bin": "v3/step-2/a.bin", "sub/b.bin": "v3/step-2/sub/b.bin"}


BAD_PATHS = {
    "parent": "../v5/step-1/secret.bin",
    "inner-parent": "a/../../v5/x",
    "dot": "./a.bin",
    "empty-segment": "a//b.bin",
    "trailing-slash": "a/",
    "absolute": "/etc/passwd",
    "backslash": "a\\..\\b.bin",
    "nul": "a\x00.bin",
    "newline": "a\n.bin",
    "escape": "a\x1b[31m.bin",
    "del": "a\x7f.bin",
    "c1": "a\x85.bin",
    "empty": "",
    "too-long": "a" * 501,
}


@pytest.mark.parametrize("path", BAD_PATHS.values(), ids=BAD_PATHS.keys())
def test_bad_paths_are_refused_with_a_stable_code(world, path):
    _partner, _public, _embargoed, client = world
    assert_problem(post(client, "v3", "step-3", file(path, b"x")), 400, "artifact_path_invalid")
    assert not Checkpoint.objects.filter(release__slug="v3", tag="step-3").exists()


@pytest.mark.parametrize("path", BAD_PATHS.values(), ids=BAD_PATHS.keys())
def test_path_rules_are_the_same_for_every_caller(path):
    assert path_problem(path) is not None


@pytest.mark.parametrize(
    "path", ["model.safetensors", "sub/dir/tokenizer.json", "a" * 500, "ünïcode/shard-1.bin"]
)
def test_plain_relative_paths_are_accepted(path):
    assert path_problem(path) is None


def test_the_same_path_twice_is_refused(world):
    _partner, public, _embargoed, client = world
    f.stored_spec(public, "step-4", "a.bin", b"a")
    assert_problem(
        post(client, "v3", "step-4", file("a.bin", b"a"), file("a.bin", b"a")),
        400,
        "artifact_path_invalid",
    )


def test_a_file_not_in_storage_is_refused(world):
    _partner, _public, _embargoed, client = world
    assert_problem(post(client, "v3", "step-5", file("a.bin", b"a")), 409, "artifact_missing")
    assert not Checkpoint.objects.filter(tag="step-5").exists()


def test_a_file_of_another_size_is_refused(world):
    _partner, public, _embargoed, client = world
    f.stored_spec(public, "step-6", "a.bin", b"a-longer-file")
    assert_problem(post(client, "v3", "step-6", file("a.bin", b"a")), 409, "artifact_size_mismatch")


def test_a_local_file_with_other_bytes_is_refused(world):
    _partner, public, _embargoed, client = world
    f.stored_spec(public, "step-7", "a.bin", b"AAAA")
    assert_problem(
        post(client, "v3", "step-7", file("a.bin", b"aaaa")), 409, "artifact_digest_mismatch"
    )


def test_embargoed_bytes_copied_under_a_public_release_are_refused(world):
    """Even at its own key, a public checkpoint may not carry bytes of a release whose
    public time is later: a direct grant would serve them early."""
    _partner, public, _embargoed, client = world
    f.stored_spec(public, "launder", "model.bin", SECRET)
    before = checkpoint_events()
    assert_problem(
        post(client, "v3", "launder", file("model.bin", SECRET)),
        403,
        "artifact_embargoed_elsewhere",
    )
    assert not Checkpoint.objects.filter(release=public, tag="launder").exists()
    assert checkpoint_events() == before


def test_bytes_of_an_earlier_or_public_release_may_be_registered_again(world):
    _partner, public, _embargoed, _client = world
    shared = b"tokenizer shared by every release"
    f.stored_checkpoint(public, {"tokenizer.json": shared}, tag="step-8")
    later = f.release("v6", public_in=60 * DAY)
    registered = f.stored_checkpoint(later, {"tokenizer.json": shared}, tag="step-8")
    assert registered.artifacts.get().sha256 == hashlib.sha256(shared).hexdigest()
    # and an earlier embargoed release's bytes under a later one: its rules are stricter
    again = f.stored_checkpoint(later, {"secret.bin": SECRET}, tag="step-9")
    assert again.artifacts.count() == 1


def test_bytes_of_a_withdrawn_release_are_refused(world):
    _partner, public, _embargoed, _client = world
    gone = f.release("v2", public_in=-10 * DAY)
    f.stored_checkpoint(gone, {"w.bin": b"recalled"}, tag="step-1")
    actions.withdraw_release(actor=None, release=gone, reason="recalled")
    with pytest.raises(ActionError) as caught:
        f.stored_checkpoint(public, {"w.bin": b"recalled"}, tag="step-10")
    assert caught.value.code == "artifact_embargoed_elsewhere"


# The management command


@pytest.fixture
def shards(tmp_path):
    source = tmp_path / "shards"
    source.mkdir()
    (source / "model.bin").write_bytes(SECRET)
    return source


def test_command_refuses_embargoed_bytes_and_leaves_nothing_behind(world, shards):
    with pytest.raises(CommandError, match=r"\[artifact_embargoed_elsewhere\]"):
        call_command("register_checkpoint", "v3", "launder", "--from", str(shards), "--no-progress")
    assert not Checkpoint.objects.filter(tag="launder").exists()
    assert not artifact_storage().exists(artifact_key("v3", "launder", "model.bin"))


def test_command_replaces_leftover_bytes_at_an_unregistered_key(world, shards):
    _partner, public, _embargoed, _client = world
    real = b"the real v3 weights"
    (shards / "model.bin").write_bytes(real)
    f.stored_spec(public, "step-11", "model.bin", b"x" * len(real))  # a leftover, same size
    call_command("register_checkpoint", "v3", "step-11", "--from", str(shards), "--no-progress")
    with artifact_storage().open(artifact_key("v3", "step-11", "model.bin")) as stored:
        assert stored.read() == real


# Audit exports in S3 share the bucket, never a name a download can reach


def test_s3_exports_live_under_a_prefix_no_release_slug_can_spell():
    prefix = django_settings.ACCESSCTL_S3_EXPORTS_PREFIX
    first = prefix.split("/", 1)[0]
    with pytest.raises(ValidationError):
        validate_slug(first)
    assert path_problem(prefix) is None  # a legal path, but never the first segment of a key


def test_s3_settings_put_exports_under_that_prefix(tmp_path):
    import json
    import os
    import subprocess
    import sys

    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps(s.STORAGES['exports']['OPTIONS'].get('location')))"
    )
    env = {
        **os.environ,
        "ACCESSCTL_ARTIFACT_STORAGE": "s3",
        "DJANGO_SETTINGS_MODULE": "accessctl.settings",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == "accessctl.audit-exports"


# S3 mode, against a real SeaweedFS


def put(server, key: str, content: bytes, *, checksum: bool = False) -> None:
    extra = {"ChecksumAlgorithm": "SHA256"} if checksum else {}
    server.client().put_object(Bucket=server.bucket, Key=key, Body=content, **extra)


def test_s3_registration_checks_the_object_is_there_with_its_size(world, s3_mode):
    _partner, _public, _embargoed, client = world
    assert_problem(post(client, "v3", "s3-1", file("a.bin", b"aaaa")), 409, "artifact_missing")
    put(s3_mode, "v3/s3-1/a.bin", b"aaaaaaaa")
    assert_problem(
        post(client, "v3", "s3-1", file("a.bin", b"aaaa")), 409, "artifact_size_mismatch"
    )
    put(s3_mode, "v3/s3-1/b.bin", b"bbbb")
    response = post(client, "v3", "s3-1", file("b.bin", b"bbbb"))
    assert response.status_code == 201, response.content
    assert Artifact.objects.get(checkpoint__tag="s3-1").storage_key == "v3/s3-1/b.bin"


def test_s3_object_with_a_sha256_checksum_must_match_the_declared_digest(world, s3_mode):
    _partner, _public, _embargoed, client = world
    put(s3_mode, "v3/s3-2/a.bin", b"AAAA", checksum=True)
    head = s3_mode.client().head_object(
        Bucket=s3_mode.bucket, Key="v3/s3-2/a.bin", ChecksumMode="ENABLED"
    )
    # SeaweedFS keeps the checksum a single PUT was sent with, as S3 does.
    assert base64.b64decode(head["ChecksumSHA256"]).hex() == hashlib.sha256(b"AAAA").hexdigest()
    assert_problem(
        post(client, "v3", "s3-2", file("a.bin", b"aaaa")), 409, "artifact_digest_mismatch"
    )
    assert post(client, "v3", "s3-2", file("a.bin", b"AAAA")).status_code == 201


def test_s3_command_copies_to_the_derived_key_and_grant_serves_it(world, s3_mode, shards):
    partner, _public, _embargoed, _client = world
    (shards / "model.bin").write_bytes(b"v3 weights")
    call_command("register_checkpoint", "v3", "s3-3", "--from", str(shards), "--no-progress")
    artifact = Artifact.objects.get(checkpoint__tag="s3-3")
    assert artifact.storage_key == "v3/s3-3/model.bin"
    body = s3_mode.client().get_object(Bucket=s3_mode.bucket, Key=artifact.storage_key)["Body"]
    assert body.read() == b"v3 weights"
    grant = actions.issue_grant(
        actor=None, partner=partner, checkpoint=artifact.checkpoint, quota_bytes=100
    )
    assert f.authorize(grant).allowed


def test_s3_command_refuses_embargoed_bytes_and_removes_its_copy(world, s3_mode, shards):
    # v5's shard, in S3 too (the world's copy went to local storage before s3_mode)
    _partner, _public, embargoed, _client = world
    put(s3_mode, "v5/step-2/secret.bin", SECRET)
    actions.register_checkpoint(
        actor=None,
        release=embargoed,
        tag="step-2",
        artifacts=[f.artifact_spec("secret.bin", SECRET)],
    )
    with pytest.raises(CommandError, match=r"\[artifact_embargoed_elsewhere\]"):
        call_command("register_checkpoint", "v3", "s3-4", "--from", str(shards), "--no-progress")
    with pytest.raises(Exception) as missing:
        s3_mode.client().head_object(Bucket=s3_mode.bucket, Key="v3/s3-4/model.bin")
    assert "404" in str(missing.value) or "Not Found" in str(missing.value)


def test_stored_bytes_are_hashed_when_the_content_is_replaced_behind_the_size(world):
    """A local object of the declared size but other bytes is caught by the hash."""
    _partner, public, _embargoed, _client = world
    key = artifact_key("v3", "step-12", "a.bin")
    artifact_storage().save(key, ContentFile(b"evil"))
    with pytest.raises(ActionError) as caught:
        actions.register_checkpoint(
            actor=None, release=public, tag="step-12", artifacts=[f.artifact_spec("a.bin", b"good")]
        )
    assert caught.value.code == "artifact_digest_mismatch"


NEW_CODES = [
    "public_time_earlier",
    "early_access_unapproved",
    "artifact_path_invalid",
    "storage_key_not_derived",
    "artifact_missing",
    "artifact_size_mismatch",
    "artifact_digest_mismatch",
    "artifact_embargoed_elsewhere",
]


@pytest.mark.parametrize("code", NEW_CODES)
def test_refusal_codes_of_issue_11_are_documented(code):
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs"
    assert f"`{code}`" in (docs / "decisions.md").read_text()
    if code.startswith(("artifact_", "storage_")):
        assert f"`{code}`" in (docs / "api.md").read_text()
