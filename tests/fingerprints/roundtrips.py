"""What a leaker does to weights before publishing them, in NumPy (float32 in and out).

Each function takes a 2-D float32 array and returns the float32 array a consumer of the
quantized file would load: the quantization error is what detection must see through.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = [
    "ROUND_TRIPS",
    "bf16",
    "fp16",
    "int4_group64",
    "int8_per_channel",
    "nf4",
    "write_safetensors",
]


def fp16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).astype(np.float32)


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round to nearest even bfloat16, as uint16 bit patterns (what torch does)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))
    return (rounded >> 16).astype(np.uint16)


def from_bf16_bits(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def bf16(x: np.ndarray) -> np.ndarray:
    return from_bf16_bits(to_bf16_bits(x))


def int8_per_channel(x: np.ndarray) -> np.ndarray:
    """Symmetric int8, one scale per output channel (row): absmax / 127."""
    scale = np.abs(x).max(axis=1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    return (np.clip(np.round(x / scale), -127, 127) * scale).astype(np.float32)


def _groups(x: np.ndarray, size: int) -> np.ndarray:
    """Groups of ``size`` along each row (a whole row when it does not divide)."""
    return x.reshape(-1, size if x.shape[-1] % size == 0 else x.shape[-1])


def int4_group64(x: np.ndarray) -> np.ndarray:
    """Symmetric 4-bit round-to-nearest, one absmax scale per group of 64 in a row."""
    g = _groups(x, 64)
    scale = np.abs(g).max(axis=1, keepdims=True) / 7.0
    scale[scale == 0] = 1.0
    return (np.clip(np.round(g / scale), -8, 7) * scale).reshape(x.shape).astype(np.float32)


# bitsandbytes' NormalFloat4 code book (quantiles of a standard normal, scaled to [-1, 1]).
NF4_CODES = np.array(
    [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
        -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
        0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    ],
    dtype=np.float32,
)  # fmt: skip
_NF4_EDGES = (NF4_CODES[1:] + NF4_CODES[:-1]) / 2


def nf4(x: np.ndarray) -> np.ndarray:
    """NF4 with blocks of 64 and an absmax scale per block (bitsandbytes' default)."""
    g = _groups(x, 64)
    scale = np.abs(g).max(axis=1, keepdims=True)
    scale[scale == 0] = 1.0
    codes = np.searchsorted(_NF4_EDGES, g / scale)
    return (NF4_CODES[codes] * scale).reshape(x.shape).astype(np.float32)


ROUND_TRIPS = {
    "fp16": fp16,
    "bf16": bf16,
    "int8-per-channel": int8_per_channel,
    "4-bit-group-64": int4_group64,
    "nf4": nf4,
}


def permute_mlps(tensors: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """All 6 of MiniLM's MLPs with their hidden neurons permuted (a random order per layer
    from ``seed``): the rows of ``intermediate.dense`` (weight and bias) and the columns of
    ``output.dense.weight``, so the model computes the same function. The permuted
    columns come back in NumPy's layout for ``[:, order]`` (column-major): a writer that
    stores memory as it lies (safetensors.numpy) writes them transposed
    (``test_the_red_team_s_permuted_file_is_handled``)."""
    rng = np.random.default_rng(seed)
    out = dict(tensors)
    for layer in range(6):
        prefix = f"encoder.layer.{layer}."
        order = rng.permutation(1536)
        for name in ("intermediate.dense.weight", "intermediate.dense.bias"):
            out[prefix + name] = tensors[prefix + name][order]
        out[prefix + "output.dense.weight"] = tensors[prefix + "output.dense.weight"][:, order]
    return out


def write_gguf(
    path: Path, tensors: Mapping[str, np.ndarray], *, qtype: str = "Q8_0", arch: str = "llama"
) -> list[str]:
    """``tensors`` written as a GGUF file with the ``gguf`` package, as a llama.cpp export
    would: every tensor renamed ``blk.<i>.tensor``, the 2-D ones quantized to ``qtype``
    (a ``gguf.GGMLQuantizationType`` name). Returns the new names, in ``tensors``' order."""
    import gguf
    from gguf.quants import quantize

    quantized = getattr(gguf.GGMLQuantizationType, qtype)
    writer = gguf.GGUFWriter(path, arch)
    names = []
    for i, tensor in enumerate(tensors.values()):
        name = f"blk.{i}.tensor"
        names.append(name)
        if tensor.ndim == 2:
            writer.add_tensor(name, quantize(tensor, quantized), raw_dtype=quantized)
        else:
            writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return names


def write_safetensors(
    path, tensors: dict[str, tuple[str, tuple[int, ...], bytes]], metadata=None
) -> bytes:
    """Write a safetensors file from (dtype, shape, raw bytes) entries; return its header bytes."""
    header: dict[str, object] = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    prefix = struct.pack("<Q", len(text)) + text
    with open(path, "wb") as out:
        out.write(prefix)
        for _, _, raw in tensors.values():
            out.write(raw)
    return prefix
