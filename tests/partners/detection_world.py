"""A small fingerprinted release for the detection tests: two partners holding keys, a
synthetic checkpoint (two weight matrices and a bias), and their marked copies.

The keys and marked copies come through the serving side: a grant on a fingerprinted
release commits the partner's key, and ``write_variants`` writes their copy.
"""

from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors

from partners import actions
from partners.models import ArtifactVariant, FingerprintKey, Partner, Release
from partners.storage import artifact_storage
from tests import factories as f
from tests.fingerprints.roundtrips import write_gguf

DAY = timedelta(days=1)
SHAPES = {"layers.0.mlp.weight": (512, 256), "layers.1.mlp.weight": (256, 512)}


def original_bytes(seed: int = 7) -> bytes:
    rng = np.random.default_rng(seed)
    tensors = {
        name: rng.normal(0, 0.02, shape).astype(np.float32) for name, shape in SHAPES.items()
    }
    tensors["layers.0.norm.bias"] = rng.normal(0, 0.02, (256,)).astype(np.float32)
    return save_safetensors(tensors)


def keyed_release(slug: str, partner: Partner) -> Release:
    """A launched, fingerprinted release that ``partner`` was granted (so holds a
    committed key, through the serving side's action); its one file is a placeholder."""
    release = f.release(slug, public_in=-DAY, fingerprint=True)
    checkpoint = f.stored_checkpoint(release, {"model.safetensors": b"placeholder"})
    f.window(release, partner)
    f.grant(checkpoint, partner)
    assert FingerprintKey.objects.filter(release=release, partner=partner).exists()
    return release


@dataclass
class MarkedWorld:
    release: Release
    partners: dict[str, Partner]
    original: bytes
    copies: dict[str, bytes] = field(default_factory=dict)


def marked_world(*, slugs: tuple[str, ...] = ("aurora", "borealis")) -> MarkedWorld:
    """A fingerprinted release with one checkpoint; each partner is granted it, which
    commits their key, and the serving task writes their marked copies (read back here
    from artifact storage: the bytes each partner downloads)."""
    release = f.release("v5", public_in=-DAY, fingerprint=True)
    original = original_bytes()
    checkpoint = f.stored_checkpoint(release, {"model.safetensors": original})
    partners = {slug: f.partner(slug) for slug in slugs}
    for partner in partners.values():
        f.window(release, partner)
        f.grant(checkpoint, partner)
    assert FingerprintKey.objects.filter(release=release).count() == len(slugs)
    actions.write_variants(None)
    world = MarkedWorld(release, partners, original)
    storage = artifact_storage()
    for slug, partner in partners.items():
        variant = ArtifactVariant.objects.get(partner=partner, artifact__checkpoint=checkpoint)
        assert variant.status == ArtifactVariant.Status.READY, variant.error
        with storage.open(variant.storage_key, "rb") as handle:
            world.copies[slug] = handle.read()
        assert world.copies[slug] != original
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


def gguf_q8(data: bytes, path) -> bytes:
    """The safetensors ``data`` re-exported as GGUF with the ``gguf`` package: 2-D tensors
    quantized to Q8_0 and renamed as llama.cpp names them (``blk.<i>.tensor``)."""
    write_gguf(path, load_safetensors(data), qtype="Q8_0", arch="llama")
    return path.read_bytes()
