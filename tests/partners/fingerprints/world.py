"""A small fingerprinted release for the serving tests: synthetic safetensors shards (a
few hundred KB), one with weight matrices the default patterns mark, one with none."""

import hashlib
from datetime import timedelta

import numpy as np
from rest_framework.test import APIClient
from safetensors.numpy import load, save

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
