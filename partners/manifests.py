"""Signed checkpoint manifests: what a partner may verify offline against the lab's key."""

import hashlib
from typing import Any

from accessctl.signing.keys import sign_detached
from accessctl_wire import canonical_json
from partners.models import Checkpoint

__all__ = ["commit_id", "manifest", "signed_manifest"]


def manifest(checkpoint: Checkpoint) -> dict[str, Any]:
    """Deterministic: the same checkpoint always gives the same bytes to sign."""
    return {
        "release": checkpoint.release.slug,
        "checkpoint": checkpoint.pk,
        "tag": checkpoint.tag,
        "training_step": checkpoint.training_step,
        "files": [
            {"path": a.path, "size": a.size, "sha256": a.sha256}
            for a in checkpoint.artifacts.order_by("path")
        ],
    }


def signed_manifest(checkpoint: Checkpoint) -> dict[str, Any]:
    body = manifest(checkpoint)
    return {"manifest": body, "signature": sign_detached(canonical_json(body))}


def commit_id(body: dict[str, Any]) -> str:
    """The 40-hex commit id a checkpoint has on the Hub-compatible endpoint (docs/hub.md):
    the first 160 bits of the SHA-256 of its manifest's canonical JSON, the bytes the lab
    signs. It names exactly one set of files (paths, sizes, SHA-256), so a client that
    pins it never mixes checkpoints; it does not change when the signing key rotates."""
    return hashlib.sha256(canonical_json(body)).hexdigest()[:40]
