"""Writing a partner's marked copy of a safetensors file, tensor by tensor.

For every marked tensor ``t`` (``matched_tensors``), the copy holds

    t' = round(t + alpha * sigma_t * s)

with ``sigma_t`` the population standard deviation of ``t`` (computed in float64 over
the whole tensor), ``s`` the keyed +-1 pattern of (key, name, shape) and ``round`` the
identity for F32 and unbiased stochastic rounding for F16 and BF16 (round up with
probability equal to the fractional part, from a keyed stream: deterministic). Without
stochastic rounding a mark smaller than half a bf16 step would vanish on most weights.
Non-finite weights are copied unchanged. Everything else is copied byte for byte,
header included, so the copy is a drop-in file.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from .errors import FingerprintError
from .keys import _check_key, rounding_bits, signs
from .st_format import Header, TensorInfo, matched_tensors, read_header

__all__ = ["DEFAULT_CHUNK_BYTES", "MarkResult", "mark_safetensors"]

DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024  # bytes of one tensor read at a time
_COPY_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class MarkResult:
    """What ``mark_safetensors`` wrote: byte count, SHA-256 hex, marked tensor names."""

    size: int
    sha256: str
    tensors: list[str]


class _Sink:
    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self.target.write(data)
        self.digest.update(data)
        self.size += len(data)


def _read_exact(source: BinaryIO, n: int) -> bytes:
    data = source.read(n)
    if len(data) != n:
        raise FingerprintError("not_safetensors", "Not a safetensors file: the data is truncated.")
    return data


def _copy(source: BinaryIO, sink: _Sink, start: int, stop: int) -> None:
    source.seek(start)
    while start < stop:
        chunk = _read_exact(source, min(_COPY_BYTES, stop - start))
        sink.write(chunk)
        start += len(chunk)


def _to_float32(raw: bytes, dtype: str) -> np.ndarray:
    if dtype == "F32":
        return np.frombuffer(raw, dtype="<f4")  # read-only view: never written to
    if dtype == "F16":
        return np.frombuffer(raw, dtype="<f2").astype(np.float32)
    # BF16 is the upper half of an IEEE float32.
    return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)


def _round_f16(y: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Stochastic rounding of finite float32 ``y`` to float16, never to infinity.

    In float16's normal range a float32 carries 13 bits below float16's precision:
    adding 13 random bits to the magnitude and truncating them rounds away from zero
    with probability equal to the fraction they held (as for BF16). Below it (|y| <
    2^-14, steps of 2^-24), ``y`` in units of 2^-24 goes up from its floor when
    ``(noise + 1/2) / 2^16`` is below its fractional part. Powers of two scale exactly.
    """
    bits = y.view(np.uint32)
    rounded = (bits + (noise >> 3).astype(np.uint32)) & np.uint32(0xFFFFE000)
    with np.errstate(over="ignore"):
        out = rounded.view(np.float32).astype(np.float16)
    over = np.isinf(out)
    if over.any():  # rounded up past 65504: truncate instead
        out[over] = (bits[over] & np.uint32(0xFFFFE000)).view(np.float32).astype(np.float16)
    tiny = np.abs(y) < np.float32(2.0**-14)
    if tiny.any():
        q = y[tiny] * np.float32(2.0**24)
        floor = np.floor(q)
        u = (noise[tiny].astype(np.float32) + np.float32(0.5)) * np.float32(2.0**-16)
        out[tiny] = ((floor + (u < q - floor)) * np.float32(2.0**-24)).astype(np.float16)
    return out


def _round_bf16(y: np.ndarray, noise: np.ndarray) -> np.ndarray:
    bits = y.view(np.uint32)
    up = ((bits + noise.astype(np.uint32)) >> 16).astype(np.uint16)
    down = (bits >> 16).astype(np.uint16)
    # Never round a finite weight up to infinity.
    return np.where((up & 0x7F80) == 0x7F80, down, up)


def _marked_bytes(
    raw: bytes, info: TensorInfo, key: bytes, scale: float, start: int
) -> bytes | memoryview:
    x = _to_float32(raw, info.dtype)
    stop = start + x.size
    y = signs(key, info.name, info.shape, start, stop, scale=scale)
    np.add(y, x, out=y)
    # Fast paths when every value is finite (a float64 sum of float32 values cannot
    # overflow, so it is finite exactly when they all are).
    if np.isfinite(y.sum(dtype=np.float64)):
        if info.dtype == "F32":
            return y.astype("<f4", copy=False).data.cast("B")
        if info.dtype == "F16":
            noise = rounding_bits(key, info.name, info.shape, start, stop)
            return _round_f16(y, noise).astype("<f2", copy=False).data.cast("B")
        if info.dtype == "BF16":
            bits = y.view(np.uint32)
            np.add(bits, rounding_bits(key, info.name, info.shape, start, stop), out=bits)
            np.right_shift(bits, 16, out=bits)
            rounded = bits.astype("<u2")
            if not np.any((rounded & 0x7F80) == 0x7F80):  # no finite weight became infinite
                return rounded.data.cast("B")
            y = signs(key, info.name, info.shape, start, stop, scale=scale)
            np.add(y, x, out=y)
    finite = np.isfinite(x) & np.isfinite(y)
    if info.dtype == "F32":
        out = np.where(finite, y, x).astype("<f4")
    elif info.dtype == "F16":
        noise = rounding_bits(key, info.name, info.shape, start, stop)
        out = np.where(finite, _round_f16(np.where(finite, y, 0), noise), x.astype(np.float16))
        out = out.astype("<f2")
    else:
        noise = rounding_bits(key, info.name, info.shape, start, stop)
        original = np.frombuffer(raw, dtype="<u2")
        out = np.where(
            finite, _round_bf16(np.where(finite, y, 0).astype(np.float32), noise), original
        )
        out = out.astype("<u2")
    return out.tobytes()


def _row_sums(x: np.ndarray) -> tuple[list[float], list[float], int]:
    """Per-row sum and sum of squares (float64) of the finite weights, and their count.

    Squares are rounded to float32 (IEEE, so the same on every machine) and rows summed
    in float64 by NumPy's pairwise summation: the result depends only on the row.
    """
    sums = x.sum(axis=1, dtype=np.float64)
    squares = np.square(x).sum(axis=1, dtype=np.float64)
    count = x.size
    if not (np.isfinite(sums).all() and np.isfinite(squares).all()):
        finite = np.isfinite(x)
        clean = np.where(finite, x, np.float32(0))
        sums = clean.sum(axis=1, dtype=np.float64)
        squares = np.square(clean).sum(axis=1, dtype=np.float64)
        count = int(finite.sum())
    return sums.tolist(), squares.tolist(), count


def _mark_tensor(
    source: BinaryIO, sink: _Sink, info: TensorInfo, key: bytes, alpha: float, chunk_bytes: int
) -> None:
    rows, cols = info.shape
    itemsize = (info.end - info.begin) // (rows * cols)
    row_bytes = cols * itemsize
    rows_per_chunk = max(1, chunk_bytes // row_bytes)
    # First pass: sigma over the whole tensor. Row sums are exact-summed (math.fsum) so
    # the result does not depend on the chunking.
    sums: list[float] = []
    squares: list[float] = []
    count = 0
    chunks = range(0, rows, rows_per_chunk)
    cached: bytes | None = None
    source.seek(info.begin)
    for first in chunks:
        n = min(rows_per_chunk, rows - first)
        raw = _read_exact(source, n * row_bytes)
        if n == rows:
            cached = raw
        s, q, c = _row_sums(_to_float32(raw, info.dtype).reshape(n, cols))
        sums.extend(s)
        squares.extend(q)
        count += c
    mean = math.fsum(sums) / max(count, 1)
    variance = max(math.fsum(squares) / max(count, 1) - mean * mean, 0.0)
    scale = alpha * math.sqrt(variance)
    # Second pass: mark and write.
    if cached is None:
        source.seek(info.begin)
    for first in chunks:
        n = min(rows_per_chunk, rows - first)
        raw = cached if cached is not None else _read_exact(source, n * row_bytes)
        sink.write(_marked_bytes(raw, info, key, scale, first * cols))


def mark_safetensors(
    source: BinaryIO,
    target: BinaryIO,
    *,
    key: bytes,
    alpha: float,
    patterns: Sequence[str],
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> MarkResult:
    """Write the marked copy of ``source`` to ``target``; return its size, SHA-256, marks.

    ``source``: a seekable binary file opened for reading (it is read twice for a marked
    tensor larger than ``chunk_bytes``); ``target``: a binary file opened for writing,
    written sequentially from its current position. ``key``: 32 bytes (``derive_key``).
    ``alpha``: mark amplitude in units of each tensor's standard deviation (finite,
    0 < alpha <= 0.1; ``DEFAULT_ALPHA`` = 1e-3). ``patterns``: glob patterns of tensor
    names (``matched_tensors`` says which are marked; tensors of other dtypes are
    skipped, not refused). ``chunk_bytes``: at most this many bytes of a tensor (whole
    rows, at least one) are in memory at a time, plus their float32 copies.

    The header (length prefix + JSON) and every unmarked byte are copied verbatim, so
    names, shapes, dtypes, offsets and ``__metadata__`` are those of the source; with
    nothing matched the copy equals the source byte for byte. Deterministic: the same
    (source, key, alpha, patterns) give the same bytes whatever ``chunk_bytes``.

    Raises ``FingerprintError`` with code ``not_safetensors`` when the source does not
    parse or is truncated, ``bad_argument`` for a bad key, alpha or chunk size.
    """
    key = _check_key(key)
    if not (isinstance(alpha, float | int) and math.isfinite(alpha) and 0 < alpha <= 0.1):
        raise FingerprintError("bad_argument", "alpha must be a number in (0, 0.1].")
    if chunk_bytes < 1:
        raise FingerprintError("bad_argument", "chunk_bytes must be positive.")
    header = read_header(source)
    marked = set(matched_tensors(header, patterns))
    with np.errstate(all="ignore"):  # non-finite weights are handled explicitly
        return _mark_file(source, target, header, marked, key, float(alpha), chunk_bytes)


def _mark_file(
    source: BinaryIO,
    target: BinaryIO,
    header: Header,
    marked: set[str],
    key: bytes,
    alpha: float,
    chunk_bytes: int,
) -> MarkResult:
    sink = _Sink(target)
    sink.write(header.raw)
    position = header.data_start
    for info in header.tensors:
        if info.name not in marked:
            continue
        _copy(source, sink, position, info.begin)
        _mark_tensor(source, sink, info, key, alpha, chunk_bytes)
        position = info.end
    _copy(source, sink, position, header.file_size)
    return MarkResult(
        size=sink.size,
        sha256=sink.digest.hexdigest(),
        tensors=[t.name for t in header.tensors if t.name in marked],
    )
