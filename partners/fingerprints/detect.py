"""Scoring a suspect file set against every candidate partner's key.

For each marked original tensor ``t`` (``O_t``, ``N_t`` weights) with a counterpart in
the suspect brought to the original's layout (``S_t``), the suspect is first fitted to
the original by least squares, ``S_t ~ diag(a) O_t diag(b)`` (a scale per row and one
per column), and

    d_t = S_t - diag(a) O_t diag(b)
    z_{p,t} = sum(d_t * s_{p,t}) / sqrt(sum(d_t * d_t))
    Z_p = sum_t w_t z_{p,t} / sqrt(sum_t w_t^2),   w_t = sqrt(N_t) * min(1, r_med / r_t)

``s_{p,t}`` being partner ``p``'s sign pattern for the tensor, ``r_t = |d_t| / |fit|``
its relative noise and ``r_med`` the median of ``r_t`` (Stouffer's weighted sum). A
tensor whose fit explains little (cosine below 0.5: replaced, junk) is left out.

Why: a function-preserving rescaling (a query x100 and its key /100, a folded norm, an
unused tensor x1000) makes ``S - O`` of one tensor enormous; pooled over all tensors it
drowned every other tensor's evidence. The fit absorbs any such scaling, and per-tensor
scores combined with bounded weights make a tampered or junk tensor cost only its share.

Null law: for a partner whose copy is not in the suspect, ``s_p`` is independent of
every ``d_t`` and every ``w_t`` (the fit, the weights and the alignment never look at a
key), so given them ``Z_p = sum_i c_i s_i`` with ``sum c_i^2 = 1``: standard normal by
the central limit theorem and ``P(Z_p >= z) <= exp(-z^2/2)`` (Hoeffding) whatever the
``d_t`` are. For the partner whose copy leaked, ``z_{p,t} ~ sqrt(N_t) / r_t`` times the
mark's share that survived, and an exact copy gives ``Z = sqrt(N)`` (N = sum N_t).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import FingerprintError
from .keys import BLOCK, _check_key, signs
from .read import TensorFile
from .st_format import MARKABLE_DTYPES, matched_tensors

__all__ = [
    "ALIGN_CORRELATION",
    "CLEAR_Z",
    "FIT_CORRELATION",
    "NAME_Z",
    "SCHEME",
    "SCORING",
    "Candidate",
    "detect",
    "p_false_positive",
    "verdict",
]

SCHEME = "accessctl-spread-spectrum-v1"
SCORING = "fit-per-tensor-stouffer-v2"  # v1 pooled d = suspect - original over all tensors
NAME_Z = 8.0  # every named partner is above this: P(false) <= 6.2e-16 each
CLEAR_Z = 4.0  # every other partner is below this, else the verdict is inconclusive
ALIGN_CORRELATION = 0.9  # a suspect tensor in this layout correlates at least this much
MATCH_CORRELATION = 0.5  # a differently named suspect tensor is taken above this
FIT_CORRELATION = 0.5  # a compared tensor whose fitted original explains less is left out
_FIT_MIN = 16
_FIT_PASSES = 3
_SCORE_CHUNK = 8 * BLOCK
_PROJECTION = 256
_FULL_COLUMNS = 2048
_ROW_BLOCK = 1024
_MAX_PERMUTED_ROWS = 65536
_PERMUTED_CANDIDATES = 3


@dataclass(frozen=True)
class Candidate:
    """A partner who received the release: its label (slug) and 32-byte key."""

    label: str
    key: bytes


def p_false_positive(z: float) -> float:
    """One-sided normal tail ``P(Z >= z)`` = ``erfc(z / sqrt 2) / 2``."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def verdict(scores: Mapping[str, float]) -> tuple[str, list[str]]:
    """(verdict, named labels) from each partner's z.

    ``named``: exactly one partner above ``NAME_Z`` (8) and every other below
    ``CLEAR_Z`` (4). ``collusion``: two or more above 8 and every other below 4 (each
    colluder is held to the same bar as a single leaker). ``inconclusive``: anything
    else, including a partner between 4 and 8 (evidence too weak to name and too
    strong to clear), and nobody above 8. Named labels are sorted by z, highest first.
    """
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    above = [label for label, z in ranked if z > NAME_Z]
    gray = [label for label, z in ranked if CLEAR_Z <= z <= NAME_Z]
    if not above or gray:
        return "inconclusive", []
    return ("named" if len(above) == 1 else "collusion"), above


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a.ravel().astype(np.float32, copy=False)
    b = b.ravel().astype(np.float32, copy=False)
    am = a - np.float32(a.mean(dtype=np.float64))
    bm = b - np.float32(b.mean(dtype=np.float64))
    den = math.sqrt(float(np.dot(am, am)) * float(np.dot(bm, bm)))
    return float(np.dot(am, bm)) / den if den > 0 and math.isfinite(den) else 0.0


def _unit_rows(x: np.ndarray, projection: np.ndarray | None) -> np.ndarray:
    y = x if projection is None else x @ projection
    y = y - y.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(y, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (y / norms).astype(np.float32)


def _match_rows(suspect: np.ndarray, original: np.ndarray) -> np.ndarray | None:
    """Index ``pi`` with ``suspect[pi]`` row-aligned to ``original``, or None.

    Each original row takes the suspect row of highest cosine (rows centred; rows
    longer than 2048 are first projected on 256 fixed random directions, which keep
    cosines to about 1/16). Rows claimed twice are then settled greedily, best cosine
    first, among the rows nobody claimed. None for fewer than 2 or more than 65536 rows.
    """
    rows, cols = original.shape
    if rows > _MAX_PERMUTED_ROWS or rows < 2:
        return None
    projection = None
    if cols > _FULL_COLUMNS:
        rng = np.random.default_rng(0x5EED)  # fixed: the alignment must not depend on keys
        projection = (rng.standard_normal((cols, _PROJECTION)) / math.sqrt(_PROJECTION)).astype(
            np.float32
        )
    o = _unit_rows(original, projection)
    s = _unit_rows(suspect, projection)
    best = np.empty(rows, dtype=np.int64)
    score = np.empty(rows, dtype=np.float32)
    for first in range(0, rows, _ROW_BLOCK):
        sims = o[first : first + _ROW_BLOCK] @ s.T
        best[first : first + _ROW_BLOCK] = np.argmax(sims, axis=1)
        score[first : first + _ROW_BLOCK] = sims.max(axis=1)
    taken = np.zeros(rows, dtype=bool)
    keep = np.zeros(rows, dtype=bool)
    # The highest-scoring claim on each suspect row keeps it; the others are re-matched.
    for i in np.argsort(-score, kind="stable"):
        if not taken[best[i]]:
            taken[best[i]] = keep[i] = True
    if (~keep).sum() > max(8, rows // 20):
        return None  # not a permutation of the original's rows: no point in forcing one
    for i in np.flatnonzero(~keep)[np.argsort(-score[~keep], kind="stable")]:
        free = np.flatnonzero(~taken)
        j = int(free[np.argmax(s[free] @ o[i])])
        best[i] = j
        taken[j] = True
    return best


def _aligned(original: np.ndarray, suspect: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
    """The suspect in the original's layout: (array, correlation, transposed, permuted).

    ``suspect`` has the original's shape or its transpose (the caller checks). The
    layout in order if it correlates at least 0.9, else the best of the row and column
    permutations found, else the best seen.
    """
    layouts: list[tuple[np.ndarray, bool]] = []
    if suspect.shape == original.shape:
        layouts.append((suspect, False))
    if suspect.T.shape == original.shape:  # a square matrix is tried both ways
        layouts.append((suspect.T, True))
    if not layouts:
        raise ValueError("the suspect tensor has neither the shape nor its transpose")
    best = (layouts[0][0], -2.0, layouts[0][1], False)
    for x, transposed in layouts:
        c = _corr(x, original)
        if c > best[1]:
            best = (x, c, transposed, False)
        if c >= ALIGN_CORRELATION:
            return best
    for x, transposed in layouts:
        # Hidden-neuron permutations permute the rows of one matrix or its columns.
        rows = _match_rows(x, original)
        cols = _match_rows(x.T, original.T)
        tries = []
        if rows is not None:
            tries.append(x[rows])
        if cols is not None:
            tries.append(x[:, cols])
        for z in tries:
            c = _corr(z, original)
            if c > best[1]:
                best = (z, c, transposed, True)
            if c >= ALIGN_CORRELATION:
                return best
    return best


def _profile(x: np.ndarray, original: np.ndarray) -> float:
    """How well row or column norms agree in order: one of them survives a permutation of
    the other axis exactly (a cheap ranking of candidates for the permutation search)."""
    return max(
        _corr(np.linalg.norm(x, axis=0), np.linalg.norm(original, axis=0)),
        _corr(np.linalg.norm(x, axis=1), np.linalg.norm(original, axis=1)),
    )


def _counterpart(
    name: str,
    o: np.ndarray,
    suspect: Mapping[str, np.ndarray],
    used: set[str],
    load: Callable[[str], np.ndarray | None],
) -> tuple[str, tuple[np.ndarray, float, bool, bool]] | None:
    """The suspect tensor standing for original tensor ``name``, aligned, or None.

    Same name (same or transposed shape) first; else the unused tensor of that shape with
    the highest correlation in order, above 0.5; else, for a renamed tensor whose neurons
    were also permuted, the permutation search on the 3 tensors of that shape whose row
    or column norms agree best, kept if it reaches 0.9.
    """
    shapes = {o.shape, o.shape[::-1]}
    if name in suspect and name not in used and _shape(suspect, name) in shapes:
        s = load(name)
        return None if s is None else (name, _aligned(o, s))
    best, match = MATCH_CORRELATION, None
    profiles: list[tuple[float, str]] = []
    for other in suspect:
        if other in used or _shape(suspect, other) not in shapes:
            continue
        s = load(other)
        if s is None:
            continue
        layouts = [x for x in (s, s.T) if x.shape == o.shape]
        c = max(_corr(x, o) for x in layouts)
        if c > best:
            best, match = c, other
        profiles.append((max(_profile(x, o) for x in layouts), other))
    if match is not None:
        s = load(match)
        return None if s is None else (match, _aligned(o, s))
    for _, other in sorted(profiles, reverse=True)[:_PERMUTED_CANDIDATES]:
        s = load(other)
        if s is None:
            continue
        aligned = _aligned(o, s)
        if aligned[1] >= ALIGN_CORRELATION:
            return other, aligned
    return None


def _residual(x: np.ndarray, o: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``(d, fit, relative noise)`` of the suspect ``x`` against the original ``o``.

    ``x`` is first fitted as ``diag(a) o diag(b)`` by least squares (``a`` per row when
    rows have at least 16 elements, ``b`` per column when columns do; else one scalar;
    3 alternating passes), so that a function-preserving rescaling of a tensor, of its
    output channels or of its input columns (a query scaled up and its key down, a
    LayerNorm folded into the next linear) costs nothing; ``d = x - diag(a) o diag(b)``
    (flat float32, non-finite suspect values taken as 0). ``fit`` is the cosine between
    ``x`` and the fitted original (1 for a scaled copy, about 0 for junk); ``relative``
    is ``|d| / |fit|``, the noise per unit of weight. Neither looks at a key.
    """
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    rows, cols = o.shape
    a = np.ones(rows, dtype=np.float32)
    b = np.ones(cols, dtype=np.float32)
    fit_rows, fit_cols = cols >= _FIT_MIN, rows >= _FIT_MIN
    # The normal equations are matrix-vector products of x*o and o*o; their two buffers
    # are then reused for the fitted original and d (fresh memory is slow to touch).
    xo, oo = np.multiply(x, o), np.multiply(o, o)
    if not (fit_rows or fit_cols):
        den = float(oo.sum(dtype=np.float64))
        a[:] = float(xo.sum(dtype=np.float64)) / den if den > 0 else 0.0
    for _ in range(_FIT_PASSES if fit_rows and fit_cols else 1):
        if fit_rows:
            num, den = xo @ b, oo @ (b * b)
            a = np.divide(num, den, out=np.zeros(rows, dtype=np.float32), where=den > 0)
        if fit_cols:
            num, den = a @ xo, (a * a) @ oo
            b = np.divide(num, den, out=np.zeros(cols, dtype=np.float32), where=den > 0)
    m = np.multiply(o, a[:, None], out=oo)
    m *= b[None, :]
    mm = float(np.dot(m.ravel(), m.ravel()))
    xm = float(np.dot(x.ravel(), m.ravel()))
    xx = float(np.dot(x.ravel(), x.ravel()))
    d = np.subtract(x, m, out=xo).ravel()
    if not np.isfinite(d).all():
        d[~np.isfinite(d)] = 0.0
    dd = float(np.dot(d, d))
    if not (mm > 0 and xx > 0 and math.isfinite(mm) and math.isfinite(xx)):
        return d, 0.0, math.inf
    return d, xm / math.sqrt(mm * xx), math.sqrt(dd / mm)


def _stouffer_weights(relative: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Stouffer weights ``w_t = sqrt(N_t) * min(1, r_med / r_t)``.

    ``r_t`` is a tensor's relative noise and ``r_med`` its median over the tensors used
    (each tensor counted once, so that no single large tensor sets it): a tensor as
    clean as the typical one counts with ``sqrt(N_t)`` (the weight that makes ``Z`` the
    pooled statistic when every tensor is equally noisy), a tensor far noisier than the
    rest (perturbed, re-trained) in proportion to how much of the mark it can still
    carry. The weights depend on ``d`` and the original only, never on a key, so ``Z``
    keeps its null law.
    """
    if relative.size == 0:
        return np.zeros(0)
    median = float(np.median(relative))
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(relative > median, median / relative, 1.0)
    return np.sqrt(sizes) * np.nan_to_num(factor, nan=0.0, posinf=0.0)


def _original_marked(original: Mapping[str, np.ndarray], patterns: Sequence[str]) -> list[str]:
    if isinstance(original, TensorFile) and original.header is not None:
        return matched_tensors(original.header, patterns)

    names = []
    for name in original:
        if isinstance(original, TensorFile) and original.dtype(name) not in MARKABLE_DTYPES:
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            names.append(name)
    return names


def _shape(tensors: Mapping[str, np.ndarray], name: str) -> tuple[int, ...]:
    if isinstance(tensors, TensorFile):
        return tensors.shape(name)
    return tuple(np.shape(tensors[name]))


def detect(
    original: Mapping[str, np.ndarray],
    suspect: Mapping[str, np.ndarray],
    candidates: Sequence[Candidate],
    *,
    alpha: float,
    patterns: Sequence[str],
) -> dict[str, Any]:
    """Score ``suspect`` against each candidate's mark; return the JSON-ready report body.

    ``original``: name -> array of the unmarked release (a ``read_tensors`` result, a
    ``collections.ChainMap`` of several shards, or a dict); the marked tensors are the
    2-D ones whose name matches ``patterns`` (and, for a safetensors ``TensorFile``,
    whose stored dtype was markable: exactly ``matched_tensors``). ``suspect``: name ->
    array, any float dtype (e.g. ``read_tensors`` of a safetensors or GGUF file).
    ``candidates``: partners who received the release. ``alpha``: the release's mark
    amplitude (reported; z does not depend on it).

    Alignment per marked original tensor: the suspect tensor of the same name if its
    shape is the same or transposed, else the unused suspect tensor of that shape (or
    transposed) with the highest correlation above 0.5; then, if the correlation in
    that layout is below 0.9, rows and columns are matched to the original's (hidden-
    neuron permutations); a tensor both renamed and permuted is looked for among the 3
    of its shape whose row or column norms agree best. Original tensors without a
    counterpart are left out. Memory: one original tensor, plus the suspect tensors read
    while looking for renamed ones (up to the whole suspect, as float32).

    Scoring (module docstring): each compared tensor is fitted to the original per row
    and column, scored on its own, and the scores combined by Stouffer's weighted sum;
    a tensor whose fit is below ``FIT_CORRELATION`` (0.5) is listed with ``used``
    false and left out.

    Returns ``{"scheme", "scoring", "alpha", "patterns", "tensors": [{"original", "suspect",
    "weights", "correlation", "permuted", "transposed", "fit", "relative_noise" (None
    when nothing fitted), "used", "stouffer_weight" (used ones)}], "weights" (of the
    used tensors), "partners":
    [{"partner", "z", "p_false_positive", "p_bound"}] (z descending), "thresholds",
    "verdict", "named"}``; ``p_bound`` = ``exp(-z^2/2)`` is the distribution-free
    bound. Raises ``FingerprintError("bad_argument")`` for a bad key or duplicate
    labels; never on the suspect's contents (a tensor it cannot read is skipped).
    """
    labels = [c.label for c in candidates]
    if len(set(labels)) != len(labels):
        raise FingerprintError("bad_argument", "Candidate labels must be unique.")
    keys = [_check_key(c.key) for c in candidates]
    with np.errstate(all="ignore"):  # a suspect's non-finite values are zeroed in d
        return _detect(original, suspect, labels, keys, alpha, patterns)


def _detect(
    original: Mapping[str, np.ndarray],
    suspect: Mapping[str, np.ndarray],
    labels: list[str],
    keys: list[bytes],
    alpha: float,
    patterns: Sequence[str],
) -> dict[str, Any]:
    sums: list[np.ndarray] = []  # per used tensor: sum(d * s_p) for every key, over |d|
    noise: list[float] = []  # per used tensor: its relative noise r_t
    sizes: list[int] = []
    compared: list[dict[str, Any]] = []
    used: set[str] = set()
    cache: dict[str, np.ndarray] = {}

    def load(name: str) -> np.ndarray | None:
        if name not in cache:
            try:
                cache[name] = np.asarray(suspect[name], dtype=np.float32)
            except FingerprintError:
                return None
        return cache[name]

    marked = _original_marked(original, patterns)
    for name in marked:
        o = np.asarray(original[name], dtype=np.float32)
        if o.ndim != 2 or o.size == 0:
            continue
        found = _counterpart(name, o, suspect, used, load)
        if found is None:
            continue
        match, aligned = found
        cache.pop(match, None)  # each suspect tensor is compared once: free it
        used.add(match)
        x, correlation, transposed, permuted = aligned
        d, fit, relative = _residual(x, o)
        # A tensor equal to the original (d = 0: an unmarked copy) is compared and scores
        # 0 for every key; one that the original does not explain is left out.
        kept = fit >= FIT_CORRELATION and 0 <= relative < math.inf
        entry = {
            "original": name,
            "suspect": match,
            "weights": int(d.size),
            "correlation": round(correlation, 6),
            "permuted": permuted,
            "transposed": transposed,
            "fit": round(fit, 6),
            "relative_noise": float(f"{relative:.4g}") if math.isfinite(relative) else None,
            "used": bool(kept),
        }
        compared.append(entry)
        if not kept:
            continue
        norm = math.sqrt(float(np.dot(d, d)))
        row = np.zeros(len(keys), dtype=np.float64)
        for start in range(0, d.size, _SCORE_CHUNK):
            part = d[start : start + _SCORE_CHUNK]
            for k, key in enumerate(keys):
                row[k] += float(np.dot(part, signs(key, name, o.shape, start, start + part.size)))
        sums.append(row / norm if norm > 0 else row)
        noise.append(relative)
        sizes.append(int(d.size))
    weights = _stouffer_weights(np.array(noise), np.array(sizes, dtype=np.float64))
    used_entries = [t for t in compared if t["used"]]
    for t, w in zip(used_entries, weights, strict=True):
        t["stouffer_weight"] = float(f"{w:.6g}")
    if sums and float(np.dot(weights, weights)) > 0:
        total = weights @ np.vstack(sums) / math.sqrt(float(np.dot(weights, weights)))
    else:
        total = np.zeros(len(keys))
    scores = {label: float(total[k]) for k, label in enumerate(labels)}
    outcome, named = verdict(scores)
    partners = [
        {
            "partner": label,
            "z": round(z, 4),
            "p_false_positive": p_false_positive(z),
            "p_bound": min(1.0, math.exp(-z * z / 2)) if z > 0 else 1.0,
        }
        for label, z in sorted(scores.items(), key=lambda item: -item[1])
    ]
    return {
        "scheme": SCHEME,
        "scoring": SCORING,
        "alpha": alpha,
        "patterns": list(patterns),
        "tensors": compared,
        "weights": sum(t["weights"] for t in compared if t["used"]),
        "partners": partners,
        "thresholds": {"name": NAME_Z, "clear": CLEAR_Z},
        "verdict": outcome,
        "named": named,
    }
