"""Canonical JSON is what every signature and every audit leaf covers: its bytes are
pinned here, and it has one definition that the signer and the verifiers share."""

import ast
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import accessctl_wire
from accessctl_wire import b64, canonical_json, leaf_hash, parse_public_keys, signature_problem

ROOT = Path(__file__).resolve().parents[2]

MANIFEST = {
    "tag": "step-1",
    "release": "v4",
    "checkpoint": 7,
    "training_step": 120000,
    "files": [
        {"path": "model-00001.safetensors", "size": 4294967296, "sha256": "ab" * 32},
        {"path": "tokenizer/é.json", "size": 0, "sha256": "cd" * 32},
    ],
    "note": 'quote " backslash \\ tab \t nul \x00 emoji \U0001f600',
    "ok": True,
    "none": None,
    "ratio": 0.5,
}
# Written by the definitions before the wire package existed (signing.keys.canonical_json
# and verify_export.canonical, identical): keys sorted, no whitespace, UTF-8 as is,
# control characters escaped.
PINNED = (
    b'{"checkpoint":7,"files":[{"path":"model-00001.safetensors","sha256":"'
    + b"ab" * 32
    + b'","size":4294967296},{"path":"tokenizer/\xc3\xa9.json","sha256":"'
    + b"cd" * 32
    + b'","size":0}],"none":null,"note":"quote \\" backslash \\\\ tab \\t nul \\u0000 '
    b'emoji \xf0\x9f\x98\x80","ok":true,"ratio":0.5,"release":"v4","tag":"step-1",'
    b'"training_step":120000}'
)
# Ed25519 signatures are deterministic (RFC 8032): this key signs PINNED into exactly this.
SEED = bytes(range(32))
SIGNATURE = "17CRAAo8f2O0qWrwM5q1XF7-PuyrE7n6WQManeg8CDzU6SHMgTkoOzYXXnkRKnTN1G_MlBUADIbXORTKGNBVDw"


def test_canonical_json_bytes_are_pinned():
    assert canonical_json(MANIFEST) == PINNED
    assert hashlib.sha256(PINNED).hexdigest() == (
        "7e47b1a05d335a1a6a698a3fb9c593abaec92b7dcc9a4a7c8da9c7eae5908550"
    )
    assert b64(leaf_hash(PINNED)) == "H8PHu6P4Y40luRahEUr9_3WD6UH2AK59Adi5-aCMAqA"


def test_a_signature_made_before_the_move_still_verifies():
    public = Ed25519PrivateKey.from_private_bytes(SEED).public_key()
    jwks = (
        '{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", '
        f'"x": "{b64(public.public_bytes_raw())}"}}]}}'
    )
    keys = parse_public_keys(jwks)
    signature = {"alg": "EdDSA", "kid": "k1", "signature": SIGNATURE}
    assert signature_problem(keys, canonical_json(MANIFEST), signature) == ""
    assert b64(Ed25519PrivateKey.from_private_bytes(SEED).sign(PINNED)) == SIGNATURE
    tampered = {**MANIFEST, "checkpoint": 8}
    assert "does not verify" in signature_problem(keys, canonical_json(tampered), signature)


@pytest.mark.parametrize(
    "module",
    [
        "partners.manifests",  # signs checkpoint manifests
        "accessctl.audit.sealing",  # hashes audit leaves
        "accessctl.audit.exports",  # writes and signs export manifests
        "accessctl_cli.verify",  # verifies manifests on the partner's machine
        "accessctl_wire.verify_export",  # verifies exports offline
    ],
)
def test_signers_and_verifiers_share_the_one_canonical_json(module):
    imported = __import__(module, fromlist=["canonical_json"])
    assert imported.canonical_json is accessctl_wire.canonical_json


def test_canonical_json_is_defined_once_in_the_tree():
    """No second canonical form: a ``json.dumps(..., sort_keys=True)`` anywhere but the
    wire package's is a second definition waiting to drift."""
    found = []
    for package in (
        "accessctl",
        "client/accessctl_cli",
        "client/accessctl_wire",
        "partners",
        "bench",
    ):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call) and any(k.arg == "sort_keys" for k in node.keywords):
                    found.append(str(path.relative_to(ROOT)))
    assert found == ["client/accessctl_wire/verify_export.py"]
