"""Signed checkpoint manifests: what a partner may verify offline against the lab's key."""

from typing import Any

from accessctl.signing.keys import sign_detached
from accessctl_wire import canonical_json
from partners.models import Checkpoint

__all__ = ["manifest", "signed_manifest"]


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
