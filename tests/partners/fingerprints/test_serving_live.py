"""Leak attribution end to end with real services: a real ``celery worker`` writes the
partners' copies, then two partners download the same release with the ``accessctl``
CLI and the Hugging Face Hub client (``huggingface_hub``) against a live server, in
local mode and in s3 mode (SeaweedFS; nginx mode too, by the API), and each verifies against its own signed
manifest."""

import hashlib
import threading
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection
from huggingface_hub import HfApi, snapshot_download
from huggingface_hub import errors as hf_errors

from accessctl.audit.models import AuditCheckpoint, AuditEvent, AuditLeaf
from partners import actions
from partners.manifests import commit_id, manifest
from partners.models import ArtifactVariant, FingerprintKey, Grant
from tests.servers import nginx
from tests.workers import use_broker, wait_for, workers

from .world import FILES, MARKED, World, check_copies, cli_download, hub_download

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


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
            lambda: ArtifactVariant.objects.filter(status="ready").count() == 2 * len(FILES),
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
    assert actions.write_variants() == {"ready": 2 * len(FILES), "failed": 0}
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


def test_the_hub_client_s_first_use_waits_for_the_copies_then_downloads(
    live_server, settings, tmp_path
):
    """The Hub's first use (docs/fingerprints.md, *What a partner gets*): model info,
    before the grant, names the shared commit id; the first resolve issues the grant; the
    copies are not written yet, so the client is told 503 ``variant_not_ready`` with
    ``Retry-After`` (retryable, not ``RevisionNotFound``) and succeeds once they are,
    pinned to that shared id or following ``main``."""
    settings.ACCESSCTL_DOWNLOAD_MODE = "local"
    settings.ACCESSCTL_VARIANT_RETRY_SECONDS = 1
    world = World()
    pinned, following = world.partners
    repo = f"lab/{world.release.slug}"
    shared = commit_id(manifest(world.checkpoint))

    # Pinned to the shared id it was shown; the copies are written while the client
    # retries (as a worker would, once the first resolve issued the grant).
    api = HfApi(endpoint=live_server.url, token=world.secrets[pinned.pk])
    assert api.model_info(repo, revision="step-1").sha == shared

    def writer() -> None:
        try:
            wait_for(lambda: Grant.objects.filter(partner=pinned).exists(), what="the grant")
            time.sleep(1)  # at least one refusal first
            actions.write_variants()
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    folder = Path(
        snapshot_download(
            repo,
            revision=shared,
            endpoint=live_server.url,
            token=world.secrets[pinned.pk],
            cache_dir=tmp_path / "pinned",
        )
    )
    thread.join()
    assert folder.name == shared  # the snapshot the client pinned holds the files
    own = {e["path"]: e["sha256"] for e in manifest(world.checkpoint, pinned)["files"]}
    for path in FILES:
        assert hashlib.sha256((folder / path).read_bytes()).hexdigest() == own[path]
    assert own[MARKED] != hashlib.sha256(FILES[MARKED]).hexdigest()
    waited = AuditEvent.objects.filter(
        action="download.denied", partner_id=pinned.pk, reason="variant_not_ready"
    )
    assert waited.exists() and all(e.changes.get("via") == "hub" for e in waited)

    # Following main: the first use fails retryably (the copies are not written while the
    # client retries), and the next use, after they are, gets the partner's own commit.
    with pytest.raises(Exception) as first:
        snapshot_download(
            repo,
            endpoint=live_server.url,
            token=world.secrets[following.pk],
            cache_dir=tmp_path / "main",
        )
    # The client reports it as "cannot find the file" (LocalEntryNotFoundError), caused by
    # the server's 503 variant_not_ready, after honouring Retry-After 5 times.
    chain, error = [], first.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert not any(isinstance(e, hf_errors.RevisionNotFoundError) for e in chain), chain
    answers = [e.response for e in chain if isinstance(e, hf_errors.HfHubHTTPError)]
    assert answers and answers[0].status_code == 503, chain
    assert answers[0].headers["X-Error-Message"].startswith("variant_not_ready")
    assert answers[0].headers["Retry-After"] == "1"
    assert Grant.objects.filter(partner=following).exists()
    actions.write_variants()
    folder = Path(
        snapshot_download(
            repo,
            endpoint=live_server.url,
            token=world.secrets[following.pk],
            cache_dir=tmp_path / "main",
        )
    )
    assert folder.name == commit_id(manifest(world.checkpoint, following)) != shared
    own = {e["path"]: e["sha256"] for e in manifest(world.checkpoint, following)["files"]}
    for path in FILES:
        assert hashlib.sha256((folder / path).read_bytes()).hexdigest() == own[path]
