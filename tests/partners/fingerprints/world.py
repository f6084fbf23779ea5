"""A small fingerprinted release for the serving tests: synthetic safetensors shards (a
few hundred KB), one with weight matrices the default patterns mark, one with none; and
how its partners download it (the ``accessctl`` CLI, ``huggingface_hub``) and what their
copies must be."""

import hashlib
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
from huggingface_hub import snapshot_download
from rest_framework.test import APIClient
from safetensors.numpy import load, save

from partners.manifests import manifest
from partners.models import Checkpoint, Partner, Release
from tests import factories as f

DAY = timedelta(days=1)
MARKED = "model-00001-of-00002.safetensors"
UNMARKED = "model-00002-of-00002.safetensors"


def _tensors(seed: int, shapes: dict[str, tuple[tuple[int, ...], str]]) -> bytes:
    rng = np.random.default_rng(seed)
    return save(
        {
            name: (rng.standard_normal(shape) * 0.02).astype(dtype)
            for name, (shape, dtype) in shapes.items()
        },
        metadata={"format": "np"},
    )


FILES = {
    MARKED: _tensors(
        1,
        {
            "layers.0.attn.weight": ((256, 256), "float32"),
            "layers.0.attn.bias": ((256,), "float32"),
            "layers.0.mlp.weight": ((512, 256), "float16"),
            "embed.weight": ((300, 64), "float32"),
        },
    ),
    # Nothing a "*.weight" pattern names: every partner gets the shared file.
    UNMARKED: _tensors(2, {"norm.bias": ((256,), "float32"), "norm.scale": ((256,), "float32")}),
    "config.json": b'{"model_type": "test", "layers": 1}',
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def loaded(data: bytes) -> dict[str, np.ndarray]:
    return load(data)


class World:
    """Two partners with open windows on a fingerprinted release (public already, so a
    grant is issued directly) and a checkpoint of ``FILES``; grants are issued on ask."""

    def __init__(self, *, fingerprint: bool = True, files: dict[str, bytes] = FILES) -> None:
        self.release: Release = f.release(public_in=-DAY, fingerprint=fingerprint)
        self.checkpoint: Checkpoint = f.stored_checkpoint(self.release, files, tag="step-1")
        self.partners: list[Partner] = [f.partner(), f.partner()]
        for partner in self.partners:
            f.window(self.release, partner)
        self.secrets = {p.pk: f.token(f.partner_user(p)) for p in self.partners}

    def grant(self, partner: Partner):
        return f.grant(self.checkpoint, partner, quota_bytes=100 * 1024 * 1024)

    def api(self, partner: Partner) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.secrets[partner.pk]}")
        return client

    def grant_token(self, partner: Partner, grant) -> str:
        return self.api(partner).get(f"/api/v1/grants/{grant.pk}").json()["token"]


CLI = str(Path(sys.executable).with_name("accessctl"))


def cli_download(server: str, secret: str, release: str, into: Path, tmp_path: Path):
    """``accessctl download <release>:step-1`` into ``into``, as a partner runs it (it
    verifies every file against the partner's signed manifest); the finished process."""
    args = ["download", f"{release}:step-1", "--dir", str(into), "--quiet"]
    return subprocess.run(
        [CLI, "--server", server, "--token", secret, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")},
        timeout=180,
        check=False,
    )


def hub_download(world: World, partner: Partner, endpoint: str, cache: Path) -> Path:
    """``snapshot_download`` of the release from the Hub endpoint: the snapshot folder."""
    return Path(
        snapshot_download(
            f"lab/{world.release.slug}",
            endpoint=endpoint,
            token=world.secrets[partner.pk],
            cache_dir=cache,
        )
    )


def check_copies(world: World, folders: dict[int, Path]) -> None:
    """Each partner's folder holds its own signed bytes; only the marked shard differs
    between partners; the copies load with the same names, shapes and dtypes."""
    first, second = (folders[p.pk] for p in world.partners)
    for partner in world.partners:
        own = {e["path"]: e["sha256"] for e in manifest(world.checkpoint, partner)["files"]}
        for path in FILES:
            assert sha256((folders[partner.pk] / path).read_bytes()) == own[path]
    assert (first / MARKED).read_bytes() != (second / MARKED).read_bytes()
    for path in (UNMARKED, "config.json"):
        assert (first / path).read_bytes() == (second / path).read_bytes() == FILES[path]
    original = loaded(FILES[MARKED])
    for folder in (first, second):
        copy = loaded((folder / MARKED).read_bytes())
        assert {n: (a.shape, a.dtype) for n, a in copy.items()} == {
            n: (a.shape, a.dtype) for n, a in original.items()
        }
