"""Leak attribution: per-partner marked copies of model weights, and detection.

A pure package (NumPy, safetensors' format, gguf, cryptography; never Django: an
import-linter contract says so). The scheme, its formulas and what a verdict proves:
docs/fingerprints.md. Layers above it (partners.fingerprints_store, the variant and
detection tasks) call only the names below.
"""

from __future__ import annotations

from .detect import CLEAR_Z, NAME_Z, SCHEME, Candidate, detect, p_false_positive, verdict
from .errors import FingerprintError
from .keys import commitment, derive_key, signs
from .mark import DEFAULT_CHUNK_BYTES, MarkResult, mark_safetensors
from .read import DETECTION_FORMATS, TensorFile, read_tensors
from .st_format import matched_tensors, read_header

__all__ = [
    "CLEAR_Z",
    "DEFAULT_ALPHA",
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_PATTERNS",
    "DETECTION_FORMATS",
    "NAME_Z",
    "SCHEME",
    "Candidate",
    "FingerprintError",
    "MarkResult",
    "TensorFile",
    "commitment",
    "derive_key",
    "detect",
    "mark_safetensors",
    "matched_tensors",
    "p_false_positive",
    "read_header",
    "read_tensors",
    "signs",
    "verdict",
]

DEFAULT_ALPHA = 1e-3
DEFAULT_PATTERNS = ("*.weight",)
