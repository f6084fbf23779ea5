"""Keys, commitments and the keyed pseudo-random streams a mark is made of.

Everything here is a pure function of its arguments: the same key, tensor name and
shape give the same sign pattern on any machine, in any process, with any chunking.

The streams come from NumPy's ``PCG64`` bit generator seeded through ``SeedSequence``
with a 256-bit HMAC-SHA256 digest, and are read with ``random_raw`` (raw 64-bit
outputs). NumPy's compatibility policy (NEP 19) freezes exactly these two algorithms,
not the ``Generator`` methods, so a detection run years later with a newer NumPy
recomputes the pattern a variant was marked with; tests pin golden values.

A tensor's elements (row-major order) are cut in blocks of ``BLOCK`` elements, and
block ``b`` has its own seed ``HMAC-SHA256(key, label | name | shape | b)``: any
range of elements can be generated without the ones before it, so a tensor larger
than memory is marked (and scored) chunk by chunk with the same result.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import FingerprintError

__all__ = [
    "BLOCK",
    "KEY_BYTES",
    "commitment",
    "derive_key",
    "rounding_bits",
    "signs",
]

KEY_BYTES = 32
BLOCK = 1 << 20  # elements per independently seeded block of a stream
_HKDF_SALT = b"accessctl-fingerprint-key-v1"
_COMMITMENT_PREFIX = b"accessctl-fingerprint-commitment-v1\0"
_STREAM_PREFIX = b"accessctl-fingerprint-stream-v1\0"
_SIGNS = b"signs"
_ROUNDING = b"rounding"


def _text(value: str, what: str) -> bytes:
    if not isinstance(value, str) or not value or "\0" in value:
        raise FingerprintError("bad_argument", f"The {what} must be a non-empty string.")
    return value.encode("utf-8")


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
        raise FingerprintError("bad_argument", f"A fingerprint key is {KEY_BYTES} bytes.")
    return bytes(key)


def derive_key(secret: bytes, release_slug: str, partner_slug: str) -> bytes:
    """The 32-byte fingerprint key of one partner for one release.

    HKDF-SHA256 (RFC 5869) of the lab secret, salt ``accessctl-fingerprint-key-v1``,
    info ``release\\0partner`` (UTF-8). Raises ``FingerprintError("bad_argument")`` for
    a secret shorter than 16 bytes or an empty slug.
    """
    if not isinstance(secret, bytes | bytearray) or len(secret) < 16:
        raise FingerprintError("bad_argument", "The lab secret must be at least 16 bytes.")
    info = _text(release_slug, "release slug") + b"\0" + _text(partner_slug, "partner slug")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=_HKDF_SALT, info=info)
    return hkdf.derive(bytes(secret))


def commitment(key: bytes, release_slug: str, partner_slug: str) -> str:
    """64 hex characters binding a key to (release, partner) without revealing it.

    ``SHA-256(b"accessctl-fingerprint-commitment-v1\\0" + release + b"\\0" + partner
    + b"\\0" + key)``. Publishing it (sealed in the audit log) before the partner's
    first download fixes the key: a neutral party given the key later recomputes it.
    """
    data = (
        _COMMITMENT_PREFIX
        + _text(release_slug, "release slug")
        + b"\0"
        + _text(partner_slug, "partner slug")
        + b"\0"
        + _check_key(key)
    )
    return hashlib.sha256(data).hexdigest()


def _shape_text(shape: Sequence[int]) -> bytes:
    return "x".join(str(int(d)) for d in shape).encode("ascii")


def _raw_block(
    key: bytes, label: bytes, name: str, shape: Sequence[int], block: int, n64: int
) -> np.ndarray:
    message = b"\0".join(
        (
            _STREAM_PREFIX + label,
            name.encode("utf-8"),
            _shape_text(shape),
            block.to_bytes(8, "little"),
        )
    )
    digest = hmac.new(key, message, hashlib.sha256).digest()
    bits = np.random.PCG64(np.random.SeedSequence(int.from_bytes(digest, "little")))
    return np.asarray(bits.random_raw(n64), dtype="<u8")


def _stream(
    key: bytes, label: bytes, name: str, shape: Sequence[int], start: int, stop: int, per64: int
) -> np.ndarray:
    """Raw 64-bit words covering elements [start, stop) of a stream; ``per64`` elements per word."""
    key = _check_key(key)
    total = 1
    for d in shape:
        total *= int(d)
    if not 0 <= start <= stop <= total:
        raise FingerprintError("bad_argument", "Element range outside the tensor.")
    parts = []
    first, last = start // BLOCK, (stop - 1) // BLOCK if stop > start else start // BLOCK - 1
    for block in range(first, last + 1):
        size = min(BLOCK, total - block * BLOCK)
        parts.append(_raw_block(key, label, name, shape, block, -(-size // per64)))
    return np.concatenate(parts) if parts else np.zeros(0, dtype="<u8")


_PLUS_MINUS = np.array([-1.0, 1.0], dtype=np.float32)


def signs(
    key: bytes,
    name: str,
    shape: Sequence[int],
    start: int = 0,
    stop: int | None = None,
    *,
    scale: float = 1.0,
) -> np.ndarray:
    """The keyed +-1 pattern ``s`` of elements [start, stop) of a tensor, float32, 1-D.

    Element ``i`` (row-major index) is +1 when bit ``i mod BLOCK`` (little-endian) of its
    block's PCG64 stream is 1, else -1: independent fair signs under the key. Errors:
    ``FingerprintError("bad_argument")`` for a key that is not 32 bytes or a range
    outside the tensor. ``scale``: return ``float32(scale) * s`` instead (in one pass).
    """
    total = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    stop = total if stop is None else stop
    words = _stream(key, _SIGNS, name, shape, start, stop, 64)
    if stop <= start:
        return np.zeros(0, dtype=np.float32)
    # BLOCK is a multiple of 64: blocks concatenate without padding (but the last).
    bits = np.unpackbits(words.view(np.uint8), bitorder="little")
    offset = start - (start // BLOCK) * BLOCK
    table = _PLUS_MINUS if scale == 1.0 else np.array([-scale, scale], dtype=np.float32)
    return table[bits[offset : offset + (stop - start)]]


def rounding_bits(
    key: bytes, name: str, shape: Sequence[int], start: int = 0, stop: int | None = None
) -> np.ndarray:
    """Keyed uniform 16-bit integers (uint16, 1-D) for stochastic rounding of [start, stop).

    A stream separate from ``signs`` (label ``rounding``), so the rounding noise is
    independent of the mark. Same errors as ``signs``.
    """
    total = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    stop = total if stop is None else stop
    if stop <= start:
        return np.zeros(0, dtype=np.uint16)
    words = _stream(key, _ROUNDING, name, shape, start, stop, 4)
    offset = start - (start // BLOCK) * BLOCK
    return words.view("<u2")[offset : offset + (stop - start)]
