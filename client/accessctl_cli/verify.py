"""Checking what a download directory holds against the lab's signed manifest: the
manifest's Ed25519 signature, then each file's size and SHA-256. Used by ``download``
before any byte is fetched and by ``verify`` at any time after."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

from accessctl_wire import canonical_json, key_for, parse_public_keys, signature_problem, unb64
from accessctl_wire.client import CliError

__all__ = [
    "STATE",
    "load_keys",
    "safe_path",
    "sha256_of",
    "verify_dir",
    "verify_manifest",
    "verify_report",
    "write_atomically",
]

STATE = ".accessctl"


def load_keys(text: str) -> dict[str | None, Any]:
    """Ed25519 public keys by key id from a JWKS document, or one PEM key (id None)."""
    try:
        return parse_public_keys(text)
    except ValueError as exc:
        raise CliError("usage", f"cannot use that public key: {exc}") from exc


def verify_manifest(signed: dict[str, Any], keys: dict[str | None, Any], source: str) -> None:
    from cryptography.exceptions import InvalidSignature

    signature = signed.get("signature") or {}
    key = key_for(keys, signature.get("kid"))
    if key is None:
        raise CliError(
            "verification_failed",
            f"the manifest is signed by key {signature.get('kid')!r}, which {source} does not hold",
        )
    try:
        key.verify(unb64(signature["signature"]), canonical_json(signed["manifest"]))
    except (InvalidSignature, KeyError, ValueError) as exc:
        raise CliError(
            "verification_failed",
            f"the manifest's signature does not verify against {source}: refusing it",
        ) from exc


def verify_report(signed: dict[str, Any], keys: dict[str | None, Any], source: str) -> None:
    """Check a leak-attribution report (``GET /api/v1/staff/detections/{id}``'s answer, or
    any JSON object holding its ``report`` and ``signature``) against the lab's keys: the
    detached Ed25519 signature over the report's canonical JSON. ``CliError``
    (``verification_failed``) when it does not verify or names a key ``source`` lacks."""
    report, signature = signed.get("report"), signed.get("signature")
    if not isinstance(report, dict) or not isinstance(signature, dict):
        raise CliError("verification_failed", "the file holds no signed report")
    problem = signature_problem(keys, canonical_json(report), signature)
    if problem:
        raise CliError(
            "verification_failed", f"the report's {problem} (keys: {source}): refusing it"
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def safe_path(root: Path, relative: str) -> Path:
    """``root/relative``, refusing absolute paths and ``..`` from a manifest."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts:
        raise CliError("verification_failed", f"the manifest names an unsafe path {relative!r}")
    return root.joinpath(*parts)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a reader (or a run after ``kill -9``) sees
    the old content or the new, never a cut one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def verify_dir(root: Path, keys: dict[str | None, Any] | None) -> list[str]:
    """Problems with ``root``'s files against its saved signed manifest ([] when fine)."""
    saved = root / STATE / "manifest.json"
    if not saved.exists():
        raise CliError("usage", f"{root} holds no downloaded checkpoint ({saved} is missing)")
    signed = json.loads(saved.read_text())
    if keys is None:
        keys = load_keys((root / STATE / "jwks.json").read_text())
        source = "the keys saved at download time"
    else:
        source = "the given public key"
    verify_manifest(signed, keys, source)
    problems = []
    for entry in signed["manifest"]["files"]:
        path = safe_path(root, entry["path"])
        if not path.exists():
            problems.append(f"{entry['path']}: missing")
        elif path.stat().st_size != entry["size"]:
            problems.append(
                f"{entry['path']}: size {path.stat().st_size}, expected {entry['size']}"
            )
        elif sha256_of(path) != entry["sha256"]:
            problems.append(
                f"{entry['path']}: SHA-256 differs from the signed manifest (corrupted)"
            )
    return problems
