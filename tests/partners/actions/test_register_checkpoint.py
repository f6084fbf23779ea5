import hashlib
import os
import stat

import pytest
from django.core.management import CommandError, call_command

import accessctl.settings as configured
from partners.models import Checkpoint
from partners.storage import artifact_storage
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def shards(tmp_path):
    source = tmp_path / "shards"
    (source / "sub").mkdir(parents=True)
    files = {
        "model-00001-of-00002.safetensors": b"a" * 3_000_000,
        "model-00002-of-00002.safetensors": b"b" * 1234,
        "sub/tokenizer.json": b'{"vocab": {}}',
    }
    for name, content in files.items():
        (source / name).write_bytes(content)
    return source, files


def register(source, *extra):
    call_command(
        "register_checkpoint", "v4", "step-1", "--from", str(source), "--no-progress", *extra
    )


def test_registers_every_file_with_its_digest_and_copies_it(shards):
    source, files = shards
    f.release("v4")
    register(source, "--training-step", "1000")
    checkpoint = Checkpoint.objects.get(release__slug="v4", tag="step-1")
    assert checkpoint.training_step == 1000
    registered = {a.path: a for a in checkpoint.artifacts.all()}
    assert set(registered) == set(files)
    storage = artifact_storage()
    for path, content in files.items():
        artifact = registered[path]
        assert artifact.size == len(content)
        assert artifact.sha256 == hashlib.sha256(content).hexdigest()
        with storage.open(artifact.storage_key) as stored:
            assert stored.read() == content


def test_rerun_is_idempotent(shards, capsys):
    source, _ = shards
    f.release("v4")
    register(source)
    register(source)
    assert "0 files added, 3 unchanged" in capsys.readouterr().out
    assert Checkpoint.objects.get().artifacts.count() == 3


def test_changed_file_is_reported_not_replaced(shards):
    source, files = shards
    f.release("v4")
    register(source)
    (source / "sub" / "tokenizer.json").write_bytes(b"tampered")
    (source / "extra.bin").write_bytes(b"new")
    with pytest.raises(CommandError, match=r"sub/tokenizer\.json.*\[artifact_changed\]"):
        register(source)
    checkpoint = Checkpoint.objects.get()
    assert checkpoint.artifacts.count() == 3
    with artifact_storage().open(
        checkpoint.artifacts.get(path="sub/tokenizer.json").storage_key
    ) as stored:
        assert stored.read() == files["sub/tokenizer.json"]


def test_interrupted_copy_is_completed_on_rerun(shards):
    source, files = shards
    f.release("v4")
    register(source)
    storage = artifact_storage()
    key = (
        Checkpoint.objects.get().artifacts.get(path="model-00002-of-00002.safetensors").storage_key
    )
    storage.delete(key)
    with storage.open(key, "wb") as partial:
        partial.write(b"b" * 10)
    register(source)
    with storage.open(key) as stored:
        assert stored.read() == files["model-00002-of-00002.safetensors"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "t", "--from", "{src}"], "No release 'nope'"),
        (["v4", "t", "--from", "{src}/missing"], "is not a directory"),
        (["v4", "t", "--from", "{empty}"], "holds no files"),
    ],
)
def test_bad_input_is_a_one_line_error(shards, tmp_path, args, message):
    source, _ = shards
    f.release("v4")
    (tmp_path / "empty").mkdir()
    args = [a.format(src=source, empty=tmp_path / "empty") for a in args]
    with pytest.raises(CommandError, match=message):
        call_command("register_checkpoint", *args, "--no-progress")
    assert not Checkpoint.objects.exists()


def modes(root):
    """{relative path: permission bits} of ``root`` and everything under it."""
    return {
        str(p.relative_to(root.parent)): stat.S_IMODE(p.stat().st_mode)
        for p in [root, *root.rglob("*")]
    }


@pytest.mark.parametrize("options", ["configured", "django defaults"])
def test_stored_artifacts_are_private_to_the_service_whatever_the_umask(
    shards, settings, tmp_path, options
):
    """Embargoed weights: 0640 files in 0750 folders (the group is for nginx's
    X-Accel-Redirect), from the shipped storage options or, for a storage configured
    without them, Django's FILE_UPLOAD_* defaults."""
    source, files = shards
    root = tmp_path / "artifact-root"
    shipped = configured.STORAGES["artifacts"]
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": shipped["BACKEND"],
            "OPTIONS": (
                {**shipped["OPTIONS"], "location": str(root)}
                if options == "configured"
                else {"location": str(root)}
            ),
        },
    }
    f.release("v4")
    previous = os.umask(0o022)  # the usual default, which makes 0644 files
    try:
        register(source)
    finally:
        os.umask(previous)
    found = modes(root)
    assert len([p for p in found if p.endswith(tuple(files))]) == len(files)
    wrong = {
        path: oct(mode)
        for path, mode in found.items()
        if mode != (0o750 if (tmp_path / path).is_dir() else 0o640)
    }
    assert not wrong
