"""Leak attribution end to end with real services: a real ``celery worker`` writes the
partners' copies, then two partners download the same release with the ``accessctl``
CLI and the Hugging Face Hub client (``huggingface_hub``) against a live server, in
local mode and in s3 mode (SeaweedFS; nginx mode too, by the API), and each verifies against its own signed
manifest."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis
from huggingface_hub import snapshot_download

from accessctl.audit.models import AuditCheckpoint, AuditEvent, AuditLeaf
from partners import actions
from partners.manifests import commit_id, manifest
from partners.models import ArtifactVariant, FingerprintKey, Grant
from tests.servers import nginx
from tests.workers import use_broker, wait_for, workers

from .world import FILES, MARKED, UNMARKED, World, loaded

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

CLI = str(Path(sys.executable).with_name("accessctl"))
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli_download(server: str, secret: str, release: str, into: Path, tmp_path: Path):
    args = ["download", f"{release}:step-1", "--dir", str(into), "--quiet"]
    return subprocess.run(
        [CLI, "--server", server, "--token", secret, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")},
        timeout=180,
        check=False,
    )


def hub_download(world: World, partner, endpoint: str, cache: Path) -> Path:
    return Path(
        snapshot_download(
            f"lab/{world.release.slug}",
            endpoint=endpoint,
            token=world.secrets[partner.pk],
            cache_dir=cache,
        )
    )


def check_copies(world: World, folders: dict[int, Path]) -> None:
    """Each partner's folder holds its own signed bytes; only the marked shard differs
    between partners; the copies load with the same names, shapes and dtypes."""
    first, second = (folders[p.pk] for p in world.partners)
    for partner in world.partners:
        own = {e["path"]: e["sha256"] for e in manifest(world.checkpoint, partner)["files"]}
        for path in FILES:
            assert sha256(folders[partner.pk] / path) == own[path]
    assert (first / MARKED).read_bytes() != (second / MARKED).read_bytes()
    for path in (UNMARKED, "config.json"):
        assert (first / path).read_bytes() == (second / path).read_bytes() == FILES[path]
    original = loaded(FILES[MARKED])
    for folder in (first, second):
        copy = loaded((folder / MARKED).read_bytes())
        assert {n: (a.shape, a.dtype) for n, a in copy.items()} == {
            n: (a.shape, a.dtype) for n, a in original.items()
        }


@pytest.fixture
def broker():
    redis.Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL


def test_a_worker_writes_the_copies_and_two_partners_download_their_own(
    live_server, broker, settings, tmp_path, _artifact_root
):
    settings.ACCESSCTL_DOWNLOAD_MODE = "local"
    world = World()
    env = {
        "ACCESSCTL_ARTIFACT_ROOT": str(_artifact_root),
        "ACCESSCTL_KEY_ENCRYPTION_KEY": settings.ACCESSCTL_KEY_ENCRYPTION_KEY,
    }
    with use_broker(broker), workers(broker, env) as start:
        start()
        for partner in world.partners:
            world.grant(partner)  # its on_commit sends partners.tasks.write_variants
        wait_for(
            lambda: ArtifactVariant.objects.filter(status="ready").count() == 4,
            what="the worker to write both partners' copies",
            timeout=120,
        )

    folders: dict[int, Path] = {}
    for partner in world.partners:
        into = tmp_path / f"cli-{partner.slug}"
        run = cli_download(
            live_server.url, world.secrets[partner.pk], world.release.slug, into, tmp_path
        )
        assert run.returncode == 0, run.stderr  # verified against the signed manifest
        folders[partner.pk] = into
    check_copies(world, folders)

    # The Hub client gets the same bytes, in a snapshot named by the partner's own commit.
    hub: dict[int, Path] = {}
    for partner in world.partners:
        folder = hub_download(world, partner, live_server.url, tmp_path / f"hub-{partner.slug}")
        assert folder.name == commit_id(manifest(world.checkpoint, partner))
        for path in FILES:
            assert (folder / path).read_bytes() == (folders[partner.pk] / path).read_bytes()
        hub[partner.pk] = folder
    assert len({f.name for f in hub.values()}) == 2

    # Each partner's commitment was sealed into the log before its first byte.
    for partner in world.partners:
        key = FingerprintKey.objects.get(partner=partner)
        committed = AuditEvent.objects.get(action="fingerprint.committed", partner_id=partner.pk)
        leaf = AuditLeaf.objects.get(event_id=committed.pk)
        assert AuditCheckpoint.objects.filter(
            tree_size__gt=leaf.index, sealed_at=key.sealed_at
        ).exists()
        first = (
            AuditEvent.objects.filter(action="download.authorized", partner_id=partner.pk)
            .order_by("occurred_at")
            .first()
        )
        assert first is not None and key.sealed_at < first.occurred_at


def test_s3_mode_serves_each_partner_its_copy(live_server, s3_mode, settings, tmp_path):
    world = World()
    for partner in world.partners:
        world.grant(partner)
    assert actions.write_variants() == {"ready": 4, "failed": 0}
    marked = ArtifactVariant.objects.filter(artifact__path=MARKED)
    stored = {o["Key"] for o in s3_mode.client().list_objects_v2(Bucket=s3_mode.bucket)["Contents"]}
    assert {v.storage_key for v in marked} <= stored

    folders: dict[int, Path] = {}
    for partner in world.partners:
        into = tmp_path / f"cli-{partner.slug}"
        run = cli_download(
            live_server.url, world.secrets[partner.pk], world.release.slug, into, tmp_path
        )
        assert run.returncode == 0, run.stderr
        folders[partner.pk] = into
        # The redirect names the copy's digest; storage sends the copy's bytes.
        grant = Grant.objects.get(partner=partner)
        answer = httpx.get(
            f"{live_server.url}/api/v1/grants/{grant.pk}/files/{MARKED}",
            headers={
                "Authorization": f"Bearer {world.secrets[partner.pk]}",
                "X-Grant-Token": world.grant_token(partner, grant),
            },
        )
        assert answer.status_code == 302
        variant = marked.get(partner=partner)
        assert answer.headers["X-Content-SHA256"] == variant.sha256
        assert variant.storage_key in answer.headers["Location"]
        assert hashlib.sha256(httpx.get(answer.headers["Location"]).content).hexdigest() == (
            variant.sha256
        )
    check_copies(world, folders)

    for partner in world.partners:
        folder = hub_download(world, partner, live_server.url, tmp_path / f"hub-{partner.slug}")
        for path in FILES:
            assert (folder / path).read_bytes() == (folders[partner.pk] / path).read_bytes()


def test_nginx_mode_sends_each_partner_its_copy(live_server, settings, tmp_path, _artifact_root):
    settings.ACCESSCTL_DOWNLOAD_MODE = "nginx"
    world = World()
    grants = {p.pk: world.grant(p) for p in world.partners}
    actions.write_variants()
    with nginx(
        tmp_path / "nginx",
        upstream=live_server.url,
        artifact_root=_artifact_root,
        internal_prefix=settings.ACCESSCTL_NGINX_INTERNAL_PREFIX,
    ) as base:
        for partner in world.partners:
            grant = grants[partner.pk]
            variant = ArtifactVariant.objects.get(partner=partner, artifact__path=MARKED)
            headers = {
                "Authorization": f"Bearer {world.secrets[partner.pk]}",
                "X-Grant-Token": world.grant_token(partner, grant),
            }
            url = f"{base}/api/v1/grants/{grant.pk}/files/{MARKED}"
            whole = httpx.get(url, headers=headers)
            assert whole.status_code == 200
            assert hashlib.sha256(whole.content).hexdigest() == variant.sha256
            assert whole.headers["ETag"] == f'"{variant.sha256}"'
            assert whole.headers["X-Content-SHA256"] == variant.sha256
            ranged = httpx.get(url, headers={**headers, "Range": "bytes=10-19"})
            assert ranged.status_code == 206 and ranged.content == whole.content[10:20]
