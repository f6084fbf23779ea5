"""The safetensors container, parsed without trusting it.

Layout (https://huggingface.co/docs/safetensors, "Format"): 8 bytes, little-endian
unsigned header length ``n``; ``n`` bytes of UTF-8 JSON, an object mapping each tensor
name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the
byte after the header) plus an optional ``"__metadata__"`` object of strings; then the
data. Every check here raises ``FingerprintError("not_safetensors")``, never another
exception, whatever the bytes.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from .errors import FingerprintError

__all__ = [
    "DTYPE_SIZES",
    "MARKABLE_DTYPES",
    "MAX_HEADER_BYTES",
    "Header",
    "TensorInfo",
    "matched_tensors",
    "read_header",
]

MAX_HEADER_BYTES = 100_000_000  # the reference implementation's limit
# Bits per element; the sub-byte float types of recent versions pack several per byte.
DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}  # fmt: skip
MARKABLE_DTYPES = frozenset({"F32", "F16", "BF16"})


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry: ``begin``/``end`` are absolute byte offsets in the file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class Header:
    """A parsed header: the raw bytes (length prefix + JSON), tensors in file order."""

    raw: bytes
    tensors: tuple[TensorInfo, ...]
    metadata: dict[str, str]
    data_start: int
    file_size: int

    def by_name(self) -> dict[str, TensorInfo]:
        return {t.name: t for t in self.tensors}


def _bad(message: str) -> FingerprintError:
    return FingerprintError("not_safetensors", f"Not a safetensors file: {message}.")


def _size_of(source: BinaryIO) -> int:
    try:
        return os.fstat(source.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        here = source.tell()
        size = source.seek(0, os.SEEK_END)
        source.seek(here)
        return size


def read_header(source: BinaryIO) -> Header:
    """Parse and validate the header of a seekable binary file (position is moved).

    Checks: length prefix within the file and at most ``MAX_HEADER_BYTES``; UTF-8 JSON
    object; every entry has a known dtype, a shape of non-negative integers and
    offsets inside the data whose length is ``prod(shape) * itemsize``; no two tensors
    overlap. Raises ``FingerprintError("not_safetensors")`` otherwise.
    """
    try:
        size = _size_of(source)
        source.seek(0)
        prefix = source.read(8)
    except (OSError, ValueError) as exc:
        raise _bad("it cannot be read") from exc
    if len(prefix) != 8:
        raise _bad("shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", prefix)
    if n < 2 or n > MAX_HEADER_BYTES or 8 + n > size:
        raise _bad("the header length is out of range")
    text = source.read(n)
    if len(text) != n:
        raise _bad("the header is truncated")
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad("the header is not JSON") from exc
    if not isinstance(header, dict):
        raise _bad("the header is not a JSON object")
    data_start = 8 + n
    data_len = size - data_start
    metadata: dict[str, str] = {}
    tensors: list[TensorInfo] = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise _bad("__metadata__ is not an object of strings")
            metadata = dict(entry)
            continue
        tensors.append(_entry(name, entry, data_start, data_len))
    tensors.sort(key=lambda t: (t.begin, t.end))
    for before, after in itertools.pairwise(tensors):
        if after.begin < before.end:
            raise _bad(f"tensors {before.name!r} and {after.name!r} overlap")
    return Header(bytes(prefix + text), tuple(tensors), metadata, data_start, size)


def _entry(name: str, entry: Any, data_start: int, data_len: int) -> TensorInfo:
    if not isinstance(entry, dict):
        raise _bad(f"entry {name!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_SIZES:
        raise _bad(f"tensor {name!r} has an unknown dtype")
    if not isinstance(shape, list) or not all(type(d) is int and 0 <= d < 2**62 for d in shape):
        raise _bad(f"tensor {name!r} has a bad shape")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(type(o) is int for o in offsets)
        or not 0 <= offsets[0] <= offsets[1] <= data_len
    ):
        raise _bad(f"tensor {name!r} has offsets outside the data")
    count = 1
    for d in shape:
        count *= d
    if count * DTYPE_SIZES[dtype] != offsets[1] - offsets[0]:
        raise _bad(f"tensor {name!r} has a byte length that does not match its shape")
    return TensorInfo(name, dtype, tuple(shape), data_start + offsets[0], data_start + offsets[1])


def _is_markable(info: TensorInfo) -> bool:
    return info.dtype in MARKABLE_DTYPES and len(info.shape) == 2 and 0 not in info.shape


def matched_tensors(header: Header | dict[str, Any], patterns: Sequence[str]) -> list[str]:
    """Names (file order) of the tensors ``mark_safetensors`` marks with these patterns.

    A tensor is marked when it is 2-D, non-empty, of dtype F32, F16 or BF16, and its
    name matches one of the glob ``patterns`` (``fnmatch.fnmatchcase``). Other dtypes
    (F64, 8-bit floats, integers) are never marked, even when their name matches.
    ``header`` is a parsed ``Header`` or the JSON object of a safetensors header.
    """
    if isinstance(header, dict):
        infos = [
            TensorInfo(
                k, v.get("dtype", ""), tuple(v.get("shape", ())), *v.get("data_offsets", (0, 0))
            )
            for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict)
        ]
        infos.sort(key=lambda t: (t.begin, t.end))
    else:
        infos = list(header.tensors)
    pats = tuple(patterns)
    return [
        t.name
        for t in infos
        if _is_markable(t) and any(fnmatch.fnmatchcase(t.name, p) for p in pats)
    ]
