"""The offline export verifier as an auditor runs it (``verify_export.py FILE
--public-key KEY``): keys it cannot use and files that are not exports are refused with
one line and their exit status, before any event is looked at. Verifying real exports,
and naming each kind of tampering, is tests/accessctl/test_audit_log.py."""

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from accessctl_wire import b64, parse_public_keys, unb64, verify_export
from accessctl_wire.verify_export import EXPORT_FORMAT, main


def pem(public_key) -> str:
    return public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture
def jwks(tmp_path):
    key = Ed25519PrivateKey.generate().public_key()
    path = tmp_path / "jwks.json"
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    path.write_text(json.dumps({"keys": [{"kty": "OKP", "kid": "k1", "x": b64(raw)}]}))
    return path


def run(capsys, export, key):
    status = main([str(export), "--public-key", str(key)])
    out, err = capsys.readouterr()
    return status, out, err


def test_a_pem_public_key_verifies_under_any_key_id():
    key = Ed25519PrivateKey.generate()
    keys = parse_public_keys(pem(key.public_key()))
    assert list(keys) == [None]
    assert keys[None].public_bytes(Encoding.Raw, PublicFormat.Raw) == key.public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"keys": [{"kty": "OKP", "kid": "k1"}]}', "not a JWK set of Ed25519 keys"),
        ('{"kid": "k1", "x": "AAAA"}', "not a JWK set of Ed25519 keys"),
        ('{"keys": 5}', "not a JWK set of Ed25519 keys"),
        ('{"keys": [{"kid": "k1", "x": "AAAA="}]}', "not base64url"),
        (pem(generate_private_key(SECP256R1()).public_key()), "not an Ed25519 public key"),
    ],
    ids=["key without x", "a single JWK", "keys not a list", "padded x", "ECDSA PEM"],
)
def test_a_key_file_that_is_not_ed25519_public_keys_is_refused(text, why):
    with pytest.raises(ValueError, match=why):
        parse_public_keys(text)


@pytest.mark.parametrize("text", ["AAAA=", "AA==", 7, None])
def test_base64url_is_unpadded_text_only(text):
    """The wire format never pads: a padded value is not one of ours (and not silently
    read as one)."""
    with pytest.raises(ValueError, match="not base64url"):
        unb64(text)


def test_an_unusable_key_file_exits_2_naming_it(capsys, tmp_path, jwks):
    export = tmp_path / "export.jsonl"
    export.write_text("")
    ecdsa = tmp_path / "ecdsa.pem"
    ecdsa.write_text(pem(generate_private_key(SECP256R1()).public_key()))
    for key in (tmp_path / "missing.json", ecdsa):
        status, out, err = run(capsys, export, key)
        assert status == 2 and out == ""
        assert err.startswith(f"error: cannot read the public key {key}: ")


def test_an_unreadable_export_exits_2_naming_it(capsys, tmp_path, jwks):
    status, out, err = run(capsys, tmp_path / "nowhere.jsonl", jwks)
    assert (status, out) == (2, "")
    assert err == f"error: cannot read {tmp_path / 'nowhere.jsonl'}: No such file or directory\n"


@pytest.mark.parametrize(
    ("content", "failure"),
    [
        (b"", "line 1: not an accessctl audit export header (not JSON (modified or truncated))"),
        (b"[1,2]\n", "line 1: not an accessctl audit export header (not a JSON object (modified))"),
        (
            b'{"format":"accessctl-audit-export/0","type":"header"}\n',
            f"line 1: not a {EXPORT_FORMAT} header",
        ),
        (
            b'{"event":{},"leaf_index":0,"type":"event"}\n',
            f"line 1: not a {EXPORT_FORMAT} header",
        ),
    ],
    ids=["empty", "not an object", "another format", "events without a header"],
)
def test_a_file_that_is_not_an_export_fails_at_line_1(capsys, tmp_path, jwks, content, failure):
    export = tmp_path / "export.jsonl"
    export.write_bytes(content)
    status, out, err = run(capsys, export, jwks)
    assert status == 1 and err == ""
    assert out == f"FAIL {failure}\n"


@pytest.mark.parametrize(
    ("header", "failure"),
    [
        ({}, "the header holds no checkpoint"),
        (
            {"checkpoints": [{"tree_size": 3, "sealed_at": "2025-01-01T00:00:00Z"}]},
            "checkpoint (tree size 3, sealed 2025-01-01T00:00:00Z): malformed",
        ),
        (
            {"checkpoints": [{"tree_size": "three", "root_hash": "AAAA", "sealed_at": "x"}]},
            "checkpoint (tree size three, sealed x): malformed",
        ),
    ],
    ids=["no checkpoint", "no root hash", "size not a number"],
)
def test_a_header_without_a_usable_checkpoint_verifies_nothing(
    capsys, tmp_path, jwks, header, failure
):
    export = tmp_path / "export.jsonl"
    export.write_text(json.dumps({"type": "header", "format": EXPORT_FORMAT, **header}) + "\n")
    status, out, _ = run(capsys, export, jwks)
    assert status == 1
    lines = out.splitlines()
    assert f"FAIL {failure}" in lines
    assert not any("event" in line for line in lines)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 33])
def test_the_needed_nodes_hold_every_proof_once(size):
    """The nodes an export states (and the only ones the verifier accepts): each once, and
    every exported event's audit path among them."""
    for exported in ([0], [size - 1], list(range(0, size, 3)), list(range(size))):
        needed = list(verify_export.needed_nodes(exported, size))
        assert len(needed) == len(set(needed))
        for index in exported:
            for start, end in verify_export.inclusion_path(index, size):
                assert all(key in needed for key in verify_export.perfect_subtrees(start, end))
    assert list(verify_export.needed_nodes([], size)) == []
