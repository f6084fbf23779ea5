"""A small fingerprinted release for the detection tests: two partners holding keys, a
synthetic checkpoint (two weight matrices and a bias), and their marked copies.

The keys and marked copies come through the serving side when it is there (a grant on a
fingerprinted release commits a key: ``partners.fingerprints_store``); until then the
test commits keys itself from a test secret and writes the copies with the core's
``mark_safetensors``, the same function the serving task calls.
"""

import hashlib
import io
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors

from partners.models import FingerprintKey, FingerprintSecret, Partner, Release
from tests import factories as f

DAY = timedelta(days=1)
SECRET = hashlib.sha256(b"accessctl detection tests").digest()
SHAPES = {"layers.0.mlp.weight": (512, 256), "layers.1.mlp.weight": (256, 512)}


def original_bytes(seed: int = 7) -> bytes:
    rng = np.random.default_rng(seed)
    tensors = {
        name: rng.normal(0, 0.02, shape).astype(np.float32) for name, shape in SHAPES.items()
    }
    tensors["layers.0.norm.bias"] = rng.normal(0, 0.02, (256,)).astype(np.float32)
    return save_safetensors(tensors)


def _key_for_test(release: Release, partner: Partner) -> bytes:
    from partners.fingerprints import derive_key

    return derive_key(SECRET, release.slug, partner.slug)


def _serving_side() -> bool:
    try:
        import partners.fingerprints_store  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class MarkedWorld:
    release: Release
    partners: dict[str, Partner]
    original: bytes
    copies: dict[str, bytes] = field(default_factory=dict)

    def key(self, slug: str) -> bytes:
        from partners.actions.detections import _key_for

        return _key_for(self.release, self.partners[slug])


def marked_world(
    monkeypatch: Any, *, slugs: tuple[str, ...] = ("aurora", "borealis")
) -> MarkedWorld:
    from partners.fingerprints import commitment, mark_safetensors

    release = f.release("v5", public_in=-DAY)
    Release.objects.filter(pk=release.pk).update(fingerprint=True)
    release.refresh_from_db()
    original = original_bytes()
    checkpoint = f.stored_checkpoint(release, {"model.safetensors": original})
    partners = {slug: f.partner(slug) for slug in slugs}
    for partner in partners.values():
        f.window(release, partner)
        f.grant(checkpoint, partner)
    if not FingerprintKey.objects.filter(release=release).exists():
        assert not _serving_side(), "the serving side commits a key per grant"
        monkeypatch.setattr("partners.actions.detections._key_for", _key_for_test)
        secret = FingerprintSecret.objects.create(secret_encrypted=b"test")
        for partner in partners.values():
            FingerprintKey.objects.create(
                release=release,
                partner=partner,
                secret=secret,
                commitment=commitment(_key_for_test(release, partner), release.slug, partner.slug),
            )
    world = MarkedWorld(release, partners, original)
    for slug in partners:
        target = io.BytesIO()
        mark_safetensors(
            io.BytesIO(original),
            target,
            key=world.key(slug),
            alpha=release.fingerprint_alpha,
            patterns=list(release.fingerprint_patterns),
        )
        world.copies[slug] = target.getvalue()
    return world


def int8_per_channel(data: bytes) -> bytes:
    """A leak as it is usually found: every tensor quantized to int8 per output channel
    and back (absmax scaling), saved as float16."""
    tensors = load_safetensors(data)
    out = {}
    for name, array in tensors.items():
        if array.ndim == 2:
            scale = np.abs(array).max(axis=1, keepdims=True) / 127.0
            scale[scale == 0] = 1.0
            array = np.clip(np.round(array / scale), -127, 127) * scale
        out[name] = array.astype(np.float16)
    return save_safetensors(out)


def four_bit_per_group(data: bytes, group: int = 32) -> bytes:
    """Symmetric 4-bit per group of ``group`` weights along the input axis, and back."""
    tensors = load_safetensors(data)
    out = {}
    for name, array in tensors.items():
        if array.ndim == 2 and array.shape[1] % group == 0:
            rows, cols = array.shape
            grouped = array.reshape(rows, cols // group, group)
            scale = np.abs(grouped).max(axis=2, keepdims=True) / 7.0
            scale[scale == 0] = 1.0
            array = (np.clip(np.round(grouped / scale), -8, 7) * scale).reshape(rows, cols)
        out[name] = array.astype(np.float32)
    return save_safetensors(out)
