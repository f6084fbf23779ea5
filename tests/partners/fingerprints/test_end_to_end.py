"""Leak attribution end to end, as issue 17 asks it to be shown, with real services: one
SeaweedFS bucket as the artifact storage, one real ``celery worker`` (Redis), a live
server.

Two partners, A and B, get grants on a fingerprinted release (a marked shard, a shard
no pattern matches, a ``config.json``); the worker writes their copies into the bucket.
Each downloads the release with the ``accessctl`` CLI in ``local`` mode (the app sends the
bytes) and in ``s3`` mode (a presigned SeaweedFS URL), and with ``huggingface_hub``
from the Hub endpoint: their files differ only in the marked shard, and each verifies
against its own signed manifest. A leak is made from B's copy (int8 per channel, every
tensor renamed), the Security officer submits it in the portal, the worker runs the
detection, and the portal's page names B; the signed report verifies offline with the
real ``accessctl verify-report`` and names B; and in the sealed audit log B's
``fingerprint.committed`` event is inside a signed checkpoint that ends before B's first
``download.authorized`` event.
"""

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from django.test import Client
from django.urls import reverse
from safetensors.numpy import load, save

from accessctl.audit.models import AuditCheckpoint, AuditEvent, AuditLeaf
from accessctl.audit.sealing import FIELDS, event_record, seal, stored_node, timestamp
from accessctl_wire.verify_export import (
    canonical_json,
    checkpoint_text,
    inclusion_path,
    leaf_hash,
    parse_public_keys,
    root_from_path,
    signature_problem,
    subtree_root,
)
from partners.manifests import commit_id, manifest
from partners.models import ArtifactVariant, Detection
from tests import factories as f
from tests.accessctl.test_portal import portal_client
from tests.partners.detection_world import int8_per_channel
from tests.workers import use_broker, wait_for, workers

from .world import CLI, FILES, MARKED, World, check_copies, cli_download, hub_download

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def download_everything(world: World, server: str, tmp_path: Path, mode: str) -> None:
    """Both partners download the release with the CLI and the Hub client; the Hub's
    snapshot is the CLI's bytes, named by the partner's own commit id."""
    folders: dict[int, Path] = {}
    for partner in world.partners:
        into = tmp_path / f"{mode}-cli-{partner.slug}"
        run = cli_download(server, world.secrets[partner.pk], world.release.slug, into, tmp_path)
        assert run.returncode == 0, run.stderr  # every file checked against its manifest
        folders[partner.pk] = into
    check_copies(world, folders)
    for partner in world.partners:
        hub = hub_download(world, partner, server, tmp_path / f"{mode}-hub-{partner.slug}")
        assert hub.name == commit_id(manifest(world.checkpoint, partner))
        for path in FILES:
            assert (hub / path).read_bytes() == (folders[partner.pk] / path).read_bytes()


def leak_of(copy: bytes) -> bytes:
    """What turns up outside: int8 per output channel, saved as f16, every tensor renamed."""
    tensors = load(int8_per_channel(copy))
    return save({f"model.{i}.w": tensors[name] for i, name in enumerate(sorted(tensors))})


def test_two_partners_download_their_copies_and_a_leak_of_b_names_b(
    live_server, broker, s3_mode, settings, tmp_path
):
    world = World()
    a, b = world.partners
    env = {  # the worker stores into the same bucket as the server
        "ACCESSCTL_ARTIFACT_STORAGE": "s3",
        "ACCESSCTL_S3_BUCKET": s3_mode.bucket,
        "ACCESSCTL_S3_ENDPOINT_URL": s3_mode.endpoint,
        "AWS_ACCESS_KEY_ID": s3_mode.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_mode.secret_key,
        "ACCESSCTL_KEY_ENCRYPTION_KEY": settings.ACCESSCTL_KEY_ENCRYPTION_KEY,
    }
    with use_broker(broker), workers(broker, env) as start:
        start()
        for partner in world.partners:
            world.grant(partner)  # commits the partner's key; on commit, write_variants
        wait_for(
            lambda: ArtifactVariant.objects.filter(status="ready").count() == 2 * len(FILES),
            what="the worker to write both partners' copies",
            timeout=120,
        )
        stored = s3_mode.client().list_objects_v2(Bucket=s3_mode.bucket)["Contents"]
        marked = ArtifactVariant.objects.filter(artifact__path=MARKED)
        assert {v.storage_key for v in marked} <= {o["Key"] for o in stored}

        for mode in ("local", "s3"):
            settings.ACCESSCTL_DOWNLOAD_MODE = mode
            download_everything(world, live_server.url, tmp_path, mode)

        # B's copy leaks; the Security officer submits it in the portal.
        leaked = leak_of((tmp_path / f"s3-cli-{b.slug}" / MARKED).read_bytes())
        officer = f.staff("Security officer")
        portal = portal_client(Client(), officer)
        with (tmp_path / "leak.safetensors").open("wb+") as handle:
            handle.write(leaked)
            handle.seek(0)
            answer = portal.post(
                reverse("admin:partners_detection_add"),
                {
                    "release": world.release.pk,
                    "suspects": handle,
                    "reason": "Found on a file-sharing site",
                    "_save": "Save",
                },
            )
        assert answer.status_code == 302, answer.content.decode()[:2000]
        detection = Detection.objects.get()
        wait_for(
            lambda: Detection.objects.get(pk=detection.pk).status in ("done", "failed"),
            what="the worker to run the detection",
            timeout=120,
        )
    detection.refresh_from_db()
    assert (detection.status, detection.verdict, detection.named) == ("done", "named", [b.slug])

    # The portal's page names B.
    page = portal.get(reverse("admin:partners_detection_change", args=[detection.pk]))
    verdict = 'id="story-verdict" class="verdict verdict-named"><strong>One partner named</strong>'
    assert f"{verdict}: {b.slug}</p>" in page.content.decode()

    # The signed report, checked offline by the real CLI with the lab's published keys.
    report_file, jwks_file = tmp_path / "report.json", tmp_path / "jwks.json"
    report_file.write_bytes(
        portal.get(reverse("admin:partners_detection_report", args=[detection.pk])).content
    )
    jwks_file.write_text(httpx.get(f"{live_server.url}/.well-known/jwks.json").text)
    checked = subprocess.run(
        [CLI, "verify-report", str(report_file), "--jwks", str(jwks_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert f"verdict named, named {b.slug}" in checked.stdout
    report = json.loads(report_file.read_text())["report"]
    scores = {p["partner"]: p["z"] for p in report["partners"]}
    assert scores[b.slug] > 8 > 4 > abs(scores[a.slug])

    # The sealed log: B's commitment is inside a signed checkpoint that ends before B's
    # first download.authorized event (by leaf index), and its inclusion proof holds.
    seal()
    committed = AuditEvent.objects.get(action="fingerprint.committed", partner_id=b.pk)
    index = AuditLeaf.objects.get(event_id=committed.pk).index
    downloads = AuditEvent.objects.filter(action="download.authorized", partner_id=b.pk)
    first_download = min(
        AuditLeaf.objects.filter(event_id__in=downloads.values("pk")).values_list(
            "index", flat=True
        )
    )
    covering = AuditCheckpoint.objects.filter(tree_size__gt=index).order_by("tree_size").first()
    assert covering is not None
    assert index < covering.tree_size <= first_download
    keys = parse_public_keys(jwks_file.read_text())
    root = bytes(covering.root_hash)
    text = checkpoint_text(covering.tree_size, root, timestamp(covering.sealed_at))
    signature = {"kid": covering.key_id, "signature": covering.signature}
    assert signature_problem(keys, text, signature) == ""
    leaf = leaf_hash(
        canonical_json(event_record(AuditEvent.objects.values(*FIELDS).get(pk=committed.pk)))
    )
    path = [subtree_root(stored_node, s, e) for s, e in inclusion_path(index, covering.tree_size)]
    assert root_from_path(leaf, index, covering.tree_size, path) == root
    # The report points at the same event and checkpoint.
    (commitment,) = [c for c in report["commitments"] if c["partner"] == b.slug]
    assert commitment["audit_event"] == committed.pk
    assert commitment["sealed_in_checkpoint"]["tree_size"] == covering.tree_size
