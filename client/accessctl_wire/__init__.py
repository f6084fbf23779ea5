"""accessctl's wire format: what the server writes and a partner or an auditor checks.

Django-free, and importing nothing of the project (an import-linter contract in
``.importlinter`` holds that): the server and the partner CLI both build on it, and it
ships as the partner client distribution.

- ``verify_export``: canonical JSON, base64url, Ed25519 public keys (JWKS, PEM),
  detached signatures, the Merkle tree and its proofs (RFC 9162), audit checkpoints, and
  the offline export verifier. One self-contained file, so that an auditor can copy it
  alone; its primitives are re-exported here, and callers import them from here.
- ``tokens``: the API token format (prefix, checksum); the server's keyed digest is not
  wire and stays in ``partners.tokens``.
- ``formats``: sizes (binary units, labelled) and times (``2026-11-29 16:40:05 UTC``) as
  people are shown them, in the portal, emails and the CLI.
- ``codes``: every stable code with its HTTP status and the CLI's exit family.
- ``client``: the partner API over HTTP (httpx): retries, refusals as ``CliError``, file
  URLs (each path segment percent-encoded).
"""

from .verify_export import (
    CHECKPOINT_ORIGIN,
    EXPORT_FORMAT,
    PublicKeys,
    b64,
    canonical_json,
    checkpoint_text,
    consistency_path,
    inclusion_path,
    key_for,
    leaf_hash,
    load_public_keys,
    needed_nodes,
    node_hash,
    parse_public_keys,
    perfect_subtrees,
    ranges,
    root_from_path,
    signature_problem,
    split,
    subtree_root,
    unb64,
    verify_consistency,
)

__all__ = [
    "CHECKPOINT_ORIGIN",
    "EXPORT_FORMAT",
    "PublicKeys",
    "b64",
    "canonical_json",
    "checkpoint_text",
    "consistency_path",
    "inclusion_path",
    "key_for",
    "leaf_hash",
    "load_public_keys",
    "needed_nodes",
    "node_hash",
    "parse_public_keys",
    "perfect_subtrees",
    "ranges",
    "root_from_path",
    "signature_problem",
    "split",
    "subtree_root",
    "unb64",
    "verify_consistency",
]
