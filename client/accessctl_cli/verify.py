"""Checking what a download directory holds against the lab's signed manifest: the
manifest's Ed25519 signature, then each file's size and SHA-256. Used by ``download``
before any byte is fetched and by ``verify`` at any time after."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

from accessctl_wire import (
    canonical_json,
    checkpoint_text,
    key_for,
    leaf_hash,
    parse_public_keys,
    root_from_path,
    signature_problem,
    unb64,
    verify_consistency,
)
from accessctl_wire.client import CliError

__all__ = [
    "STATE",
    "load_keys",
    "safe_path",
    "sha256_of",
    "verify_commitments",
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


class EvidenceError(ValueError):
    """A proof, leaf or checkpoint of a report's commitment evidence does not hold."""


def _checkpoint(keys: dict[str | None, Any], checkpoint: Any, what: str) -> tuple[int, bytes, str]:
    """A signed audit checkpoint's ``(tree_size, root, sealed_at)`` once its signature
    verifies."""
    try:
        size, root = int(checkpoint["tree_size"]), unb64(checkpoint["root_hash"])
        sealed_at, signature = str(checkpoint["sealed_at"]), dict(checkpoint["signature"])
    except (KeyError, TypeError, ValueError) as exc:
        raise EvidenceError(f"the {what} checkpoint is malformed") from exc
    problem = signature_problem(keys, checkpoint_text(size, root, sealed_at), signature)
    if problem:
        raise EvidenceError(f"the {what} checkpoint (tree size {size}) is {problem}")
    return size, root, sealed_at


def _included(leaf: Any, size: int, root: bytes, what: str) -> tuple[int, dict[str, Any]]:
    """Leaf ``leaf`` (its event record, index and proof) is in the tree of ``size`` leaves
    with ``root``: its index and event."""
    try:
        event, index = dict(leaf["event"]), int(leaf["leaf_index"])
        proof = [unb64(p) for p in leaf["proof"]]
        if leaf.get("checkpoint") != size or not 0 <= index < size:
            raise ValueError
        if root_from_path(leaf_hash(canonical_json(event)), index, size, proof) != root:
            raise ValueError
    except (KeyError, TypeError, ValueError) as exc:
        raise EvidenceError(
            f"the {what}'s inclusion proof does not lead to the signed root of tree size {size}"
        ) from exc
    return index, event


def _commitment_line(keys: dict[str | None, Any], entry: dict[str, Any]) -> str:
    """What one partner's evidence proves, or ``EvidenceError``."""
    if "evidence" not in entry:
        raise EvidenceError(
            "the report carries no commitment evidence (made before reports included it): "
            "check the commitment against an audit export instead"
        )
    evidence = entry.get("evidence")
    if not isinstance(evidence, dict):
        raise EvidenceError("the commitment was not sealed when the report was made")
    n, root_n, sealed_at = _checkpoint(keys, evidence.get("sealed"), "sealing")
    latest, root_l, _ = _checkpoint(keys, evidence.get("latest"), "newest")
    try:
        proof = [unb64(p) for p in evidence.get("consistency") or []]
    except (TypeError, ValueError):
        proof = None
    if latest < n or proof is None or not verify_consistency(n, latest, root_n, root_l, proof):
        raise EvidenceError(
            f"checkpoint {n} is not a prefix of checkpoint {latest} (consistency proof fails)"
        )
    index, event = _included(evidence.get("commitment"), n, root_n, "commitment")
    changes: dict[str, Any] = event["changes"] if isinstance(event.get("changes"), dict) else {}
    if (
        event.get("action") != "fingerprint.committed"
        or changes.get("commitment") != entry.get("commitment")
        or event.get("id") != entry.get("audit_event")
    ):
        raise EvidenceError(
            f"leaf {index} is not this partner's fingerprint.committed event of the report's "
            "commitment"
        )
    where = f"commitment sealed in checkpoint {n} ({sealed_at})"
    download = evidence.get("first_download")
    if download is None:
        return f"{where}; no download of the release by this partner yet"
    if not isinstance(download, dict) or not isinstance(download.get("event"), dict):
        raise EvidenceError("the first download's record is malformed")
    unproven = download.get("leaf_index")
    if unproven is None or (download.get("proof") is None and int(unproven) >= latest):
        if download["event"].get("action") != "download.authorized":
            raise EvidenceError("the first download's record is no download.authorized event")
        return f"{where}, before its first download (logged after checkpoint {latest})"
    m, first = _included(download, latest, root_l, "first download")
    if first.get("action") != "download.authorized" or first.get("partner_id") != event.get(
        "partner_id"
    ):
        raise EvidenceError(f"leaf {m} is not this partner's download.authorized event")
    if m < n:
        raise EvidenceError(
            f"its first download (leaf {m}) was logged before checkpoint {n} sealed the "
            "commitment: the key is not proven fixed before the partner's first byte"
        )
    return f"{where}, before its first download at leaf {m}"


def verify_commitments(report: dict[str, Any], keys: dict[str | None, Any]) -> list[str]:
    """Check every partner's commitment evidence in ``report`` offline (checkpoint
    signatures with ``keys``, inclusion and consistency proofs, the leaves' records):
    ``"<partner>: commitment sealed in checkpoint N (time), before its first download at
    leaf M"`` per partner. ``CliError`` (``verification_failed``) on the first that
    fails, naming the partner and what failed."""
    lines = []
    for entry in report.get("commitments") or []:
        partner = entry.get("partner") if isinstance(entry, dict) else None
        try:
            if not isinstance(entry, dict):
                raise EvidenceError("the commitment entry is malformed")
            lines.append(f"{partner}: {_commitment_line(keys, entry)}")
        except EvidenceError as exc:
            raise CliError("verification_failed", f"partner {partner}: {exc}") from exc
    return lines


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
