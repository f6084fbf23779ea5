"""Reading a suspect's (or an original's) tensors as float32 arrays, lazily."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .errors import FingerprintError
from .st_format import Header, read_header

__all__ = ["DETECTION_FORMATS", "TensorFile", "read_tensors"]

DETECTION_FORMATS = ("safetensors", "gguf")
_FLOAT_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": None}
_GGUF_MAGIC = b"GGUF"
_GGUF_SKIPPED = frozenset({"I8", "I16", "I32", "I64"})


class TensorFile(Mapping[str, np.ndarray]):
    """A read-only mapping name -> float32 array, read from the file on each access.

    Holds only the header (safetensors) or the memory map (GGUF): memory is about one
    tensor at a time. ``shape(name)`` and ``dtype(name)`` answer without reading data;
    ``markable`` lists the names a safetensors original would have marked.
    """

    def __init__(
        self,
        names: dict[str, tuple[tuple[int, ...], str]],
        loader: Any,
        header: Header | None = None,
    ) -> None:
        self._names = names
        self._loader = loader
        self.header = header

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        return self._loader(name)

    def __contains__(self, name: object) -> bool:  # without reading the tensor
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._names[name][0]

    def dtype(self, name: str) -> str:
        return self._names[name][1]


def _sniff(source: BinaryIO) -> str:
    source.seek(0)
    head = source.read(4)
    source.seek(0)
    return "gguf" if head == _GGUF_MAGIC else "safetensors"


def read_tensors(
    source: BinaryIO | str | os.PathLike[str], *, format: str | None = None
) -> TensorFile:
    """The floating-point tensors of a safetensors or GGUF file, as float32 on access.

    ``source``: a path, or a seekable binary file kept open while the result is used
    (GGUF is memory-mapped: a file object that is not a file on disk is first copied to
    a temporary file, unlinked at once, its space freed with the result).
    ``format``: ``"safetensors"``, ``"gguf"`` or None (sniffed: GGUF files start with
    ``GGUF``). Safetensors: F32, F16, BF16 and F64 tensors, with their shapes; integer
    and 8-bit tensors are left out. GGUF: every tensor the installed ``gguf`` package
    can dequantize (``gguf.quants.dequantize``: F32, F16, BF16, Q8_0, Q4_0, K-quants,
    ...), in NumPy (row-major) shape, i.e. GGUF's ``ne`` reversed; names as stored.

    Raises ``FingerprintError``: ``unknown_format`` for a format not in
    ``DETECTION_FORMATS``, ``not_safetensors`` / ``not_gguf`` when the file does not
    parse (also on access, for data that turns out truncated).
    """
    if format is not None and format not in DETECTION_FORMATS:
        raise FingerprintError("unknown_format", f"Unknown tensor file format {format!r}.")
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            with path.open("rb") as handle:
                fmt = format or _sniff(handle)
                if fmt == "gguf":
                    return _read_gguf(path)
                header = read_header(handle)
        except OSError as exc:
            raise FingerprintError("unknown_format", "The file cannot be opened.") from exc

        def opener() -> BinaryIO:
            return path.open("rb")

        return _read_safetensors(header, opener, close=True)
    fmt = format or _sniff(source)
    if fmt == "gguf":
        name = getattr(source, "name", None)
        if isinstance(name, str | os.PathLike) and Path(name).is_file():
            return _read_gguf(Path(name))
        return _read_gguf_copy(source)
    return _read_safetensors(read_header(source), lambda: source, close=False)


def _read_safetensors(header: Header, opener: Callable[[], BinaryIO], *, close: bool) -> TensorFile:
    infos = {t.name: t for t in header.tensors if t.dtype in _FLOAT_DTYPES}

    def load(name: str) -> np.ndarray:
        info = infos[name]
        handle = opener()
        try:
            handle.seek(info.begin)
            raw = handle.read(info.end - info.begin)
        finally:
            if close:
                handle.close()
        if len(raw) != info.end - info.begin:
            raise FingerprintError(
                "not_safetensors", "Not a safetensors file: the data is truncated."
            )
        numpy_dtype = _FLOAT_DTYPES[info.dtype]
        if numpy_dtype is None:
            flat = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            flat = np.frombuffer(raw, dtype=numpy_dtype).astype(np.float32)
        return flat.reshape(info.shape)

    return TensorFile({n: (t.shape, t.dtype) for n, t in infos.items()}, load, header)


def _read_gguf_copy(source: BinaryIO) -> TensorFile:
    """GGUF is memory-mapped: copy a file object that is not a file on disk (an S3 object,
    an upload) to a temporary file, map it, and unlink it (the mapping keeps the data)."""
    with tempfile.NamedTemporaryFile(prefix="suspect-", suffix=".gguf", delete=False) as copy:
        try:
            source.seek(0)
            shutil.copyfileobj(source, copy, 8 * 1024 * 1024)
        except BaseException:
            os.unlink(copy.name)
            raise
    try:
        return _read_gguf(Path(copy.name))
    finally:
        os.unlink(copy.name)


def _read_gguf(path: Path) -> TensorFile:
    from gguf import GGUFReader
    from gguf.quants import dequantize

    try:
        reader = GGUFReader(path)
        tensors = {t.name: t for t in reader.tensors if t.tensor_type.name not in _GGUF_SKIPPED}
        names = {}
        for t in tensors.values():
            shape = tuple(int(d) for d in reversed(t.shape.tolist()))
            names[t.name] = (shape, t.tensor_type.name)
    except Exception as exc:
        raise FingerprintError("not_gguf", "Not a GGUF file the gguf package can read.") from exc

    def load(name: str) -> np.ndarray:
        tensor = tensors[name]
        try:
            if tensor.tensor_type.name == "F64":
                values = np.asarray(tensor.data).view(np.float64)
            else:
                values = dequantize(tensor.data, tensor.tensor_type)
            return np.asarray(values, dtype=np.float32).reshape(names[name][0])
        except Exception as exc:
            raise FingerprintError(
                "not_gguf", f"GGUF tensor {name!r} cannot be dequantized."
            ) from exc

    return TensorFile(names, load)
