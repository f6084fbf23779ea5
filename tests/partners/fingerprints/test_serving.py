"""Leak attribution, serving (docs/fingerprints.md, *Serving*): a grant of a fingerprinted
release commits to the partner's key and queues its own copies; nothing marked is served
before the commitment is sealed; every download path serves the partner's copy, and the
partner's signed manifest names its own bytes."""

import importlib
import json

import pytest
from cryptography.exceptions import InvalidTag
from django.core.files.storage import storages

from accessctl.audit.models import AuditCheckpoint, AuditEvent, AuditLeaf
from accessctl.audit.sealing import seal
from accessctl_cli.verify import load_keys, verify_manifest
from partners import actions
from partners import fingerprints as fp
from partners.actions.fingerprints import VARIANTS_PREFIX
from partners.errors import ActionError
from partners.fingerprints_store import current_secret, key_for, secret_of
from partners.manifests import commit_id, manifest
from partners.models import ArtifactVariant, FingerprintKey, FingerprintSecret, Grant
from tests import factories as f

from .world import FILES, MARKED, UNMARKED, World, loaded, sha256

pytestmark = pytest.mark.django_db


def download(world: World, partner, grant, path: str, **headers):
    token = world.grant_token(partner, grant)
    meta = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
    return world.api(partner).get(
        f"/api/v1/grants/{grant.pk}/files/{path}", HTTP_X_GRANT_TOKEN=token, **meta
    )


def body(response) -> bytes:
    """The bytes; reading a stream to its end closes the file, as a server would."""
    return b"".join(response.streaming_content) if response.streaming else response.content


# -- the secret and keys -----------------------------------------------------------------


def test_the_secret_is_made_once_and_stored_only_encrypted():
    row, raw = current_secret()
    again, same = current_secret()
    assert (again.pk, same) == (row.pk, raw) and len(raw) == 32
    assert FingerprintSecret.objects.count() == 1
    assert raw not in bytes(row.secret_encrypted)
    assert secret_of(row) == raw
    # The associated data names the row: the blob copied to another row does not open.
    other = FingerprintSecret.objects.create(secret_encrypted=row.secret_encrypted)
    with pytest.raises(InvalidTag):
        secret_of(other)


# -- issuing a grant ----------------------------------------------------------------------


def test_a_grant_commits_to_the_partner_key_and_queues_its_copies():
    world = World()
    partner = world.partners[0]
    world.grant(partner)

    key = FingerprintKey.objects.get(release=world.release, partner=partner)
    derived = key_for(world.release, partner)
    assert key.commitment == fp.commitment(derived, world.release.slug, partner.slug)
    assert key.sealed_at is None
    (event,) = AuditEvent.objects.filter(action="fingerprint.committed")
    assert (event.target_type, event.target_id) == ("partners.partner", str(partner.pk))
    assert event.partner_id == partner.pk
    assert event.changes["release"] == world.release.slug
    assert event.changes["commitment"] == key.commitment
    # Never the key or the secret, in any form.
    text = json.dumps(event.changes)
    for secret in (derived, current_secret()[1]):
        assert secret.hex() not in text and secret.hex().upper() not in text
    # One pending variant per file, config.json too (served only once the commitment is
    # sealed), with the release's settings; the committed grant's event comes before.
    variants = ArtifactVariant.objects.filter(partner=partner).select_related("artifact")
    assert sorted(v.artifact.path for v in variants) == sorted(FILES)
    assert {v.status for v in variants} == {"pending"}
    assert {(v.alpha, tuple(v.patterns)) for v in variants} == {(1e-3, ("*.weight",))}
    issued = AuditEvent.objects.get(action="grant.issued")
    assert issued.pk < event.pk


def test_a_release_without_fingerprinting_has_no_keys_or_copies():
    world = World(fingerprint=False)
    world.grant(world.partners[0])
    assert not FingerprintKey.objects.exists() and not ArtifactVariant.objects.exists()
    assert not AuditEvent.objects.filter(action="fingerprint.committed").exists()


def test_a_second_grant_of_the_partner_reuses_its_commitment(settings):
    world = World()
    partner = world.partners[0]
    grant = world.grant(partner)
    actions.revoke_grant(actor=f.superuser(), grant=grant, reason="again")
    world.grant(partner)
    assert FingerprintKey.objects.filter(partner=partner).count() == 1
    assert AuditEvent.objects.filter(action="fingerprint.committed").count() == 1
    assert ArtifactVariant.objects.filter(partner=partner).count() == len(FILES)


# -- before the copy is written -----------------------------------------------------------


def test_a_download_before_the_copy_is_written_is_refused_retryably(settings):
    settings.ACCESSCTL_VARIANT_RETRY_SECONDS = 17
    world = World()
    partner = world.partners[0]
    grant = world.grant(partner)

    refused = download(world, partner, grant, MARKED)
    assert refused.status_code == 503
    assert refused["Retry-After"] == "17"
    assert refused.json()["code"] == "variant_not_ready"
    assert refused["Content-Type"] == "application/problem+json"
    (denied,) = AuditEvent.objects.filter(action="download.denied")
    assert (denied.target_type, denied.target_id) == ("partners.grant", str(grant.pk))
    assert denied.reason == "variant_not_ready" and denied.outcome == "denied"
    assert denied.changes["artifact"] == MARKED and denied.changes["variant"] == "pending"
    grant.refresh_from_db()
    assert grant.bytes_used == 0
    # A file no copy is made of waits too: no byte before the commitment is sealed.
    waits = download(world, partner, grant, "config.json")
    assert waits.status_code == 503 and waits.json()["code"] == "variant_not_ready"
    assert not AuditEvent.objects.filter(action="download.authorized").exists()
    # The manifest cannot name the partner's bytes yet: the same refusal.
    manifest = world.api(partner).get(f"/api/v1/checkpoints/{world.checkpoint.pk}/manifest")
    assert manifest.status_code == 503 and manifest.json()["code"] == "variant_not_ready"
    assert manifest["Retry-After"] == "17"
    assert AuditEvent.objects.filter(action="api.denied", reason="variant_not_ready").count() == 1


@pytest.mark.parametrize("mode", ["local", "nginx", "s3"])
def test_no_byte_of_the_release_is_authorized_before_the_commitment_is_sealed(settings, mode):
    """Issue 17: the commitment is sealed into the log before the partner's first byte.
    Every file waits, marked or not, on every path (API GET and HEAD, the manifest, the
    Hub's resolve, a first use through the Hub), in every mode."""
    settings.ACCESSCTL_DOWNLOAD_MODE = mode
    world = World()
    granted, first_use = world.partners
    grant = world.grant(granted)
    slug = world.release.slug
    for path in FILES:
        for method in ("get", "head"):
            token = world.grant_token(granted, grant)
            refused = getattr(world.api(granted), method)(
                f"/api/v1/grants/{grant.pk}/files/{path}", HTTP_X_GRANT_TOKEN=token
            )
            assert refused.status_code == 503, (path, method)
            assert refused["Retry-After"]
        for partner in (granted, first_use):  # the second: the Hub's first use grants
            for method in ("get", "head"):
                hub = getattr(world.api(partner), method)(f"/lab/{slug}/resolve/main/{path}")
                assert hub.status_code == 503, (path, method, partner.slug)
                assert hub["Retry-After"]
    assert Grant.objects.filter(partner=first_use).exists()
    signed = world.api(granted).get(f"/api/v1/checkpoints/{world.checkpoint.pk}/manifest")
    assert signed.status_code == 503 and signed.json()["code"] == "variant_not_ready"
    assert not AuditEvent.objects.filter(action="download.authorized").exists()
    assert not FingerprintKey.objects.filter(sealed_at__isnull=False).exists()

    actions.write_variants()
    settings.ACCESSCTL_DOWNLOAD_MODE = "local"  # the bytes now (s3 needs a bucket)
    for partner in world.partners:
        hub = world.api(partner).get(f"/lab/{slug}/resolve/main/config.json")
        assert hub.status_code == 200 and body(hub) == FILES["config.json"]
    served = download(world, granted, grant, "config.json")
    assert served.status_code == 200 and body(served) == FILES["config.json"]

    # What a neutral party checks from an export: the commitment's first covering
    # checkpoint is older than the partner's first download.authorized, which the
    # checkpoint does not cover.
    seal()
    for partner in world.partners:
        key = FingerprintKey.objects.get(partner=partner)
        committed = AuditEvent.objects.get(action="fingerprint.committed", partner_id=partner.pk)
        covering = (
            AuditCheckpoint.objects.filter(
                tree_size__gt=AuditLeaf.objects.get(event_id=committed.pk).index
            )
            .order_by("tree_size")
            .first()
        )
        assert covering is not None and covering.sealed_at == key.sealed_at
        first = (
            AuditEvent.objects.filter(action="download.authorized", partner_id=partner.pk)
            .order_by("pk")
            .first()
        )
        assert first is not None and first.occurred_at > covering.sealed_at
        assert AuditLeaf.objects.get(event_id=first.pk).index >= covering.tree_size


def test_a_file_of_a_fingerprinted_release_without_a_variant_is_not_served():
    """The backstop: a file no variant was prepared for (no path leaves one out) waits
    rather than being served before the commitment is sealed."""
    world = World()
    partner = world.partners[0]
    grant = world.grant(partner)
    actions.write_variants()
    ArtifactVariant.objects.filter(partner=partner, artifact__path="config.json").delete()
    refused = download(world, partner, grant, "config.json")
    assert refused.status_code == 503 and refused.json()["code"] == "variant_not_ready"
    denied = AuditEvent.objects.filter(action="download.denied").latest("pk")
    assert denied.changes["variant"] == "missing"


def test_a_revoked_grant_is_told_so_not_to_wait():
    world = World()
    partner = world.partners[0]
    grant = world.grant(partner)
    token = world.grant_token(partner, grant)
    actions.revoke_grant(actor=f.superuser(), grant=grant, reason="r")
    refused = world.api(partner).get(
        f"/api/v1/grants/{grant.pk}/files/{MARKED}", HTTP_X_GRANT_TOKEN=token
    )
    assert refused.status_code == 403 and refused.json()["code"] == "grant_revoked"


# -- writing ------------------------------------------------------------------------------


def test_the_commitment_is_sealed_before_any_copy_is_ready():
    world = World()
    partner = world.partners[0]
    world.grant(partner)
    assert not AuditCheckpoint.objects.exists()

    assert actions.write_variants() == {"ready": 3, "failed": 0}

    key = FingerprintKey.objects.get(partner=partner)
    committed = AuditEvent.objects.get(action="fingerprint.committed")
    leaf = AuditLeaf.objects.get(event_id=committed.pk)
    sealed = AuditCheckpoint.objects.filter(tree_size__gt=leaf.index).order_by("tree_size").first()
    assert sealed is not None and key.sealed_at == sealed.sealed_at
    for variant in ArtifactVariant.objects.filter(partner=partner):
        assert variant.status == "ready" and variant.ready_at >= key.sealed_at
    ready = AuditEvent.objects.filter(action="variant.ready").order_by("pk")
    assert sorted(e.changes["artifact"] for e in ready) == sorted(FILES)
    assert all(e.pk > committed.pk for e in ready)
    # Idempotent: nothing left to write, nothing recorded again.
    assert actions.write_variants() == {"ready": 0, "failed": 0}
    assert actions.write_variants([v.pk for v in ArtifactVariant.objects.all()]) == {
        "ready": 0,
        "failed": 0,
    }
    assert AuditEvent.objects.filter(action="variant.ready").count() == 3


def test_a_marked_copy_is_stored_under_the_partner_prefix_and_an_unmatched_file_is_shared():
    world = World()
    partner = world.partners[0]
    world.grant(partner)
    actions.write_variants()
    marked = ArtifactVariant.objects.get(partner=partner, artifact__path=MARKED)
    shared = ArtifactVariant.objects.get(partner=partner, artifact__path=UNMARKED)
    assert marked.storage_key == f"{VARIANTS_PREFIX}/{partner.slug}/{marked.artifact.storage_key}"
    assert marked.sha256 != marked.artifact.sha256 and marked.size == marked.artifact.size
    assert "layers.0.attn.weight" in marked.tensors and "layers.0.attn.bias" not in marked.tensors
    with storages["artifacts"].open(marked.storage_key) as handle:
        stored = handle.read()
    assert sha256(stored) == marked.sha256 and len(stored) == marked.size
    assert shared.tensors == [] and shared.storage_key == shared.artifact.storage_key
    assert shared.sha256 == shared.artifact.sha256


def test_a_file_that_is_not_safetensors_fails_with_a_short_error_and_is_audited():
    world = World(files={MARKED: b"not a safetensors file at all", "config.json": b"{}"})
    partner = world.partners[0]
    grant = world.grant(partner)
    assert actions.write_variants() == {"ready": 1, "failed": 1}  # config.json: shared
    variant = ArtifactVariant.objects.get(artifact__path=MARKED)
    assert variant.status == "failed"
    assert variant.error.startswith("not_safetensors") and "Traceback" not in variant.error
    (failed,) = AuditEvent.objects.filter(action="variant.failed")
    assert failed.reason == "not_safetensors" and failed.outcome == "failure"
    assert (failed.target_type, failed.partner_id) == ("partners.artifactvariant", partner.pk)
    # Still refused, retryably.
    refused = download(world, partner, grant, MARKED)
    assert refused.status_code == 503 and refused.json()["code"] == "variant_not_ready"


# -- serving ------------------------------------------------------------------------------


def test_two_partners_get_their_own_copies_and_their_own_signed_manifests():
    world = World()
    grants = {p.pk: world.grant(p) for p in world.partners}
    actions.write_variants()
    jwks = world.api(world.partners[0]).get("/.well-known/jwks.json").json()
    keys = load_keys(json.dumps(jwks))

    got: dict[int, dict[str, bytes]] = {}
    for partner in world.partners:
        grant = grants[partner.pk]
        signed = world.api(partner).get(f"/api/v1/checkpoints/{world.checkpoint.pk}/manifest")
        assert signed.status_code == 200
        verify_manifest(signed.json(), keys, "the server's published keys")
        listed = {e["path"]: e for e in signed.json()["manifest"]["files"]}
        got[partner.pk] = {}
        for path in FILES:
            answer = download(world, partner, grant, path)
            assert answer.status_code == 200, answer.content
            data = body(answer)
            got[partner.pk][path] = data
            # The partner's own bytes: its manifest, its ETag and digest header.
            assert sha256(data) == listed[path]["sha256"] and len(data) == listed[path]["size"]
            assert answer["ETag"] == f'"{sha256(data)}"'
            assert answer["X-Content-SHA256"] == sha256(data)
        # A range of the copy is the copy's bytes.
        ranged = download(world, partner, grant, MARKED, Range="bytes=100-199")
        assert ranged.status_code == 206 and body(ranged) == got[partner.pk][MARKED][100:200]

    first, second = (got[p.pk] for p in world.partners)
    # Only the marked shard differs; the rest is the lab's file, shared.
    assert first[MARKED] != second[MARKED] != FILES[MARKED]
    assert first[UNMARKED] == second[UNMARKED] == FILES[UNMARKED]
    assert first["config.json"] == FILES["config.json"]
    # Drop-in: the same names, shapes and dtypes; only the marked tensors moved, slightly.
    original = loaded(FILES[MARKED])
    marked = ArtifactVariant.objects.get(partner=world.partners[0], artifact__path=MARKED)
    for copy in (first[MARKED], second[MARKED]):
        assert copy[:8] == FILES[MARKED][:8]
        tensors = loaded(copy)
        assert sorted(tensors) == sorted(original)
        for name, array in tensors.items():
            assert (array.shape, array.dtype) == (original[name].shape, original[name].dtype)
            if name in marked.tensors:
                assert not (array == original[name]).all()
                assert abs(array.astype("f8") - original[name]).max() < 1e-2 * 0.02 * 10
            else:
                assert (array == original[name]).all()
    # Grants are charged the copy's size (the same as the original's).
    for partner in world.partners:
        grant = Grant.objects.get(pk=grants[partner.pk].pk)
        assert grant.bytes_used == sum(len(d) for d in FILES.values())  # the range: leased


# -- settings -----------------------------------------------------------------------------


def test_fingerprint_settings_are_fixed_once_copies_exist():
    world = World()
    officer = f.superuser()
    actions.update_release(actor=officer, release=world.release, fingerprint_alpha=2e-3)
    world.grant(world.partners[0])
    for change in (
        {"fingerprint": False},
        {"fingerprint_alpha": 5e-3},
        {"fingerprint_patterns": ["*.w"]},
    ):
        with pytest.raises(ActionError) as refused:
            actions.update_release(actor=officer, release=world.release, **change)
        assert refused.value.code == "fingerprint_fixed"
    assert (
        AuditEvent.objects.filter(action="release.refused", reason="fingerprint_fixed").count() == 3
    )
    # Other fields still change.
    actions.update_release(actor=officer, release=world.release, name="Renamed")


@pytest.mark.parametrize(
    "patterns", [[], [""], ["  "], "*.weight", [1], ["x"] * 33, ["a" * 201], None]
)
def test_fingerprint_patterns_are_a_short_list_of_glob_strings(patterns):
    release = f.release()
    with pytest.raises(ActionError) as refused:
        actions.update_release(actor=f.superuser(), release=release, fingerprint_patterns=patterns)
    assert refused.value.code == "fingerprint_patterns_invalid"


def test_turning_fingerprinting_on_prepares_copies_for_grants_already_issued():
    world = World(fingerprint=False)
    holder, other = world.partners
    world.grant(holder)
    actions.update_release(actor=f.superuser(), release=world.release, fingerprint=True)
    assert FingerprintKey.objects.filter(partner=holder).count() == 1
    assert not FingerprintKey.objects.filter(partner=other).exists()
    assert ArtifactVariant.objects.filter(partner=holder, status="pending").count() == len(FILES)
    (committed,) = AuditEvent.objects.filter(action="fingerprint.committed")
    assert committed.actor is not None  # the staff member who turned it on


def test_files_added_to_a_held_checkpoint_get_copies_too():
    world = World()
    partner = world.partners[0]
    world.grant(partner)
    extra = {"model-extra.safetensors": FILES[MARKED]}
    specs = [f.stored_spec(world.release, "step-1", p, c) for p, c in extra.items()]
    actions.register_checkpoint(actor=None, release=world.release, tag="step-1", artifacts=specs)
    assert ArtifactVariant.objects.filter(partner=partner).count() == len(FILES) + 1
    assert FingerprintKey.objects.filter(partner=partner).count() == 1


def test_the_hub_names_the_partner_commit_and_waits_for_its_copies(settings):
    world = World()
    partner, other = world.partners
    world.grant(partner)
    repo = f"/api/models/lab/{world.release.slug}/revision/main"
    waiting = world.api(partner).get(repo)
    assert waiting.status_code == 503 and waiting.json()["code"] == "variant_not_ready"
    assert waiting["Retry-After"] == str(settings.ACCESSCTL_VARIANT_RETRY_SECONDS)
    resolve = world.api(partner).head(f"/lab/{world.release.slug}/resolve/main/{MARKED}")
    assert resolve.status_code == 503

    actions.write_variants()
    world.grant(other)
    actions.write_variants()
    infos = {p.pk: world.api(p).get(repo).json() for p in world.partners}
    assert infos[partner.pk]["sha"] != infos[other.pk]["sha"]
    for p in world.partners:
        own = {e["path"]: e["sha256"] for e in manifest(world.checkpoint, p)["files"]}
        assert infos[p.pk]["sha"] == commit_id(manifest(world.checkpoint, p))
        assert {s["rfilename"]: s["lfs"]["sha256"] for s in infos[p.pk]["siblings"]} == own
        head = world.api(p).head(f"/lab/{world.release.slug}/resolve/main/{MARKED}")
        assert head.status_code == 200 and head["X-Linked-Etag"] == f'"{own[MARKED]}"'
        assert head["X-Repo-Commit"] == infos[p.pk]["sha"]


def test_the_migration_gives_every_file_a_variant_ready_only_once_sealed():
    """0016: files written before every file had a variant get one: ready (the shared
    file) for a sealed commitment, pending for one not sealed yet."""
    from django.apps import apps

    backfill = importlib.import_module("partners.migrations.0016_variants_for_every_file").backfill
    world = World()
    sealed, unsealed = world.partners
    world.grant(sealed)
    actions.write_variants()
    world.grant(unsealed)
    ArtifactVariant.objects.filter(artifact__path="config.json").delete()

    backfill(apps, None)

    mine = ArtifactVariant.objects.get(partner=sealed, artifact__path="config.json")
    assert mine.status == "ready" and mine.sha256 == sha256(FILES["config.json"])
    assert mine.storage_key == mine.artifact.storage_key and mine.tensors == []
    theirs = ArtifactVariant.objects.get(partner=unsealed, artifact__path="config.json")
    assert theirs.status == "pending"
    backfill(apps, None)  # idempotent
    assert ArtifactVariant.objects.filter(artifact__path="config.json").count() == 2


def test_the_shared_commit_id_names_the_checkpoint_for_a_partner_before_and_after(settings):
    """Model info before the grant answers the shared commit id; a client pinned to it is
    told to wait (503, not RevisionNotFound) while the copies are written, then gets its
    own files under that id; its own id names the checkpoint too."""
    world = World()
    partner = world.partners[0]
    slug = world.release.slug
    shared = commit_id(manifest(world.checkpoint))
    before = world.api(partner).get(f"/api/models/lab/{slug}/revision/main")
    assert before.status_code == 200 and before.json()["sha"] == shared
    world.grant(partner)
    for url in (
        f"/api/models/lab/{slug}/revision/{shared}",
        f"/lab/{slug}/resolve/{shared}/config.json",
    ):
        waiting = world.api(partner).get(url)
        assert waiting.status_code == 503 and waiting.json()["code"] == "variant_not_ready"
        assert waiting["Retry-After"] == str(settings.ACCESSCTL_VARIANT_RETRY_SECONDS)

    actions.write_variants()
    own = commit_id(manifest(world.checkpoint, partner))
    assert own != shared
    mine = {e["path"]: e["sha256"] for e in manifest(world.checkpoint, partner)["files"]}
    for name in (shared, own):
        info = world.api(partner).get(f"/api/models/lab/{slug}/revision/{name}")
        assert info.status_code == 200 and info.json()["sha"] == name
        assert {s["rfilename"]: s["lfs"]["sha256"] for s in info.json()["siblings"]} == mine
        head = world.api(partner).head(f"/lab/{slug}/resolve/{name}/{MARKED}")
        assert head.status_code == 200 and head["X-Repo-Commit"] == name
        assert head["X-Linked-Etag"] == f'"{mine[MARKED]}"'
    assert world.api(partner).get(f"/api/models/lab/{slug}/revision/main").json()["sha"] == own
    unknown = world.api(partner).get(f"/api/models/lab/{slug}/revision/{'0' * 40}")
    assert unknown.status_code == 404 and unknown.json()["code"] == "revision_not_found"


def test_no_copy_is_written_for_a_partner_that_cannot_download_it():
    """A grant revoked (or a partner suspended) before the worker got to its copies: they
    are not stored for nobody; a new grant has them written."""
    world = World()
    revoked, suspended = world.partners
    grant = world.grant(revoked)
    world.grant(suspended)
    actions.revoke_grant(actor=f.superuser(), grant=grant, reason="r")
    suspended.status = "suspended"
    suspended.save(update_fields=["status"])

    assert actions.write_variants() == {"ready": 0, "failed": 0}
    assert set(ArtifactVariant.objects.values_list("status", flat=True)) == {"pending"}
    assert not storages["artifacts"].exists(f"{VARIANTS_PREFIX}/{revoked.slug}")
    assert not AuditEvent.objects.filter(action="variant.ready").exists()

    world.grant(revoked)  # sends the waiting copies again (on commit)
    assert actions.write_variants() == {"ready": len(FILES), "failed": 0}
    assert ArtifactVariant.objects.filter(partner=revoked, status="ready").count() == len(FILES)
    assert ArtifactVariant.objects.filter(partner=suspended, status="pending").count() == len(FILES)


def test_a_batch_authorization_gives_each_partner_its_own_copy(settings):
    """``POST /api/v1/grants/{id}/authorizations``: a copy not written yet is refused for
    that file (503 ``variant_not_ready``, its ``download.denied``, nothing debited); once
    written, each partner's answer names its own bytes, as the file's GET does."""
    settings.ACCESSCTL_DOWNLOAD_MODE = "local"
    world = World()
    first, second = world.partners
    grants = {p.pk: world.grant(p) for p in (first, second)}

    def batch(partner):
        grant = grants[partner.pk]
        return (
            world.api(partner)
            .post(
                f"/api/v1/grants/{grant.pk}/authorizations",
                {"files": [{"path": MARKED}, {"path": UNMARKED}, {"path": "config.json"}]},
                format="json",
                HTTP_X_GRANT_TOKEN=world.grant_token(partner, grant),
            )
            .json()["files"]
        )

    waiting = batch(first)
    # config.json too: no byte of the release before the commitment is sealed.
    assert [(a["status"], a["code"]) for a in waiting] == [(503, "variant_not_ready")] * 3
    denied = AuditEvent.objects.filter(action="download.denied", reason="variant_not_ready")
    assert sorted(e.changes["artifact"] for e in denied) == sorted(FILES)
    assert Grant.objects.get(pk=grants[first.pk].pk).bytes_used == 0

    actions.write_variants()
    answers = {p.pk: {a["path"]: a for a in batch(p)} for p in (first, second)}
    for partner in (first, second):
        mine = ArtifactVariant.objects.get(partner=partner, artifact__path=MARKED)
        assert answers[partner.pk][MARKED]["sha256"] == mine.sha256
        got = world.api(partner).get(
            answers[partner.pk][MARKED]["href"],
            HTTP_X_GRANT_TOKEN=world.grant_token(partner, grants[partner.pk]),
        )
        assert sha256(body(got)) == mine.sha256
    assert answers[first.pk][MARKED]["sha256"] != answers[second.pk][MARKED]["sha256"]
