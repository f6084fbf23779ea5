"""Signed checkpoint manifests: what a partner may verify offline against the lab's key."""

import hashlib
from collections.abc import Iterable
from typing import Any

from accessctl.signing.keys import sign_detached
from accessctl_wire import canonical_json
from partners.models import Artifact, ArtifactVariant, Checkpoint, Partner
from partners.queries import partner_files

__all__ = ["VariantsNotReady", "commit_id", "manifest", "partner_artifacts", "signed_manifest"]


class VariantsNotReady(Exception):
    """A partner's copy of some file of the checkpoint is not written yet (fingerprinted
    release): its manifest cannot name the partner's bytes; ``paths`` says which."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(", ".join(paths))
        self.paths = paths


def partner_artifacts(checkpoint: Checkpoint, partner: Partner | None) -> list[Artifact]:
    """The checkpoint's files by path, as ``partner`` gets them: a fingerprinted
    release's file with the partner's own ready copy carries that copy's size, SHA-256
    and storage key (docs/fingerprints.md); every other file is the shared one.
    ``VariantsNotReady`` when a copy is still being written (or failed)."""
    if partner is None:
        return sorted(checkpoint.artifacts.all(), key=lambda a: a.path)
    files = partner_files(partner, checkpoint)
    waiting = [
        a.path for a in files if a.variant_status not in (None, ArtifactVariant.Status.READY)
    ]
    if waiting:
        raise VariantsNotReady(waiting)
    return files


def manifest(
    checkpoint: Checkpoint,
    partner: Partner | None = None,
    *,
    files: Iterable[Artifact] | None = None,
) -> dict[str, Any]:
    """Deterministic: the same checkpoint always gives the same bytes to sign. With a
    ``partner``, the partner's own files (``partner_artifacts``: a fingerprinted release's
    partner gets its own SHA-256s, so two partners' manifests differ there); ``files``:
    those already read."""
    if files is None:
        files = partner_artifacts(checkpoint, partner)
    return {
        "release": checkpoint.release.slug,
        "checkpoint": checkpoint.pk,
        "tag": checkpoint.tag,
        "training_step": checkpoint.training_step,
        "files": [
            {"path": a.path, "size": a.size, "sha256": a.sha256}
            for a in sorted(files, key=lambda a: a.path)
        ],
    }


def signed_manifest(checkpoint: Checkpoint, partner: Partner | None = None) -> dict[str, Any]:
    body = manifest(checkpoint, partner)
    return {"manifest": body, "signature": sign_detached(canonical_json(body))}


def commit_id(body: dict[str, Any]) -> str:
    """The 40-hex commit id a checkpoint has on the Hub-compatible endpoint (docs/hub.md):
    the first 160 bits of the SHA-256 of its manifest's canonical JSON, the bytes the lab
    signs. It names exactly one set of files (paths, sizes, SHA-256), so a client that
    pins it never mixes checkpoints; it does not change when the signing key rotates.
    For a fingerprinted release it is the partner's own (its manifest is)."""
    return hashlib.sha256(canonical_json(body)).hexdigest()[:40]
