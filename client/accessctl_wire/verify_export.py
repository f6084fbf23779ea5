"""Verify an accessctl audit export offline, trusting only the lab's public key.

    python verify_export.py EXPORT.jsonl --public-key jwks.json|key.pem

This file is self-contained (Python 3.11 standard library plus ``cryptography``) and
imports nothing else, not even from its own package: an auditor copies this one file
anywhere and runs it, no Django and no accessctl install needed. ``manage.py
verify_audit_export`` runs the same code.

For the same reason it is the one definition of what the verifier has to recompute:
canonical JSON, base64url, Ed25519 public keys (JWKS or PEM), detached signatures and
the Merkle tree with its proofs. The server (manifests, audit sealing, exports) and the
CLI import them from here, through the package's names (``from accessctl_wire import
canonical_json``), so what is signed and what is verified cannot drift apart.

The log is a Merkle tree as in RFC 6962 / RFC 9162 section 2.1: leaf hash
``SHA-256(0x00 || canonical event)``, node hash ``SHA-256(0x01 || left || right)``, the
tree over ``n`` leaves split at the largest power of two below ``n``. A signed checkpoint
states a tree size and root hash. An export (JSON Lines) holds:

1. ``header``: the filters, the signed checkpoints covering the export (the earliest
   that contains its first event, and the one its proofs are against) with a consistency
   proof between them, and a signed *manifest* naming the exported leaf indices (as
   ranges, in order), their count and the export's files.
2. one ``event`` line per exported event, in leaf order: ``leaf_index`` and the event.
3. ``nodes`` lines: the tree nodes the events' inclusion proofs need, shared between
   proofs (``[level, index, hash]``; level 0 is a leaf). The audit path of each event is
   read from these, so each event is proven on its own.
4. ``end``: the number of event lines. A missing ``end`` line means a truncated file.

Exactly this structure, nothing else: one header (line 1), event lines, then nodes lines
(none when no proof needs one), then one end line, the last line. The nodes are exactly
those ``needed_nodes`` names for the signed leaves, each once. Any other line (a second
end or header, a nodes line after the end, an event after the nodes, a node stated twice
or needed by no proof) is named as a modification, by line number.

Exit status 0 when everything verifies; 1 with one line per failure otherwise, naming the
event (by leaf index and id) or the checkpoint that fails and how: modified, inserted,
deleted, reordered, truncated, or signed by an unknown key.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import hashlib
import itertools
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

if TYPE_CHECKING:  # imported where used: ``--help`` runs without cryptography
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "CHECKPOINT_ORIGIN",
    "EXPORT_FORMAT",
    "PublicKeys",
    "Report",
    "b64",
    "canonical_json",
    "checkpoint_text",
    "consistency_path",
    "inclusion_path",
    "key_for",
    "leaf_hash",
    "load_public_keys",
    "main",
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
    "verify",
    "verify_consistency",
]

EXPORT_FORMAT = "accessctl-audit-export/1"
CHECKPOINT_ORIGIN = "accessctl-audit-log/1"

# --- Merkle tree arithmetic (RFC 9162, section 2.1) ---------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


NodeGetter = Callable[[int, int], bytes]  # (level, index) of a perfect subtree -> hash


def subtree_root(get: NodeGetter, start: int, end: int) -> bytes:
    """MTH of leaves [start, end), from stored perfect subtrees (level, index)."""
    size = end - start
    if size & (size - 1) == 0 and start % size == 0:
        return get(size.bit_length() - 1, start // size)
    k = split(size)
    return node_hash(subtree_root(get, start, start + k), subtree_root(get, start + k, end))


def inclusion_path(m: int, n: int) -> list[tuple[int, int]]:
    """The subtrees [start, end) whose roots form leaf ``m``'s audit path in a tree of
    ``n`` leaves, leaf-side first (RFC 9162 2.1.3.1)."""
    path: list[tuple[int, int]] = []
    start, end = 0, n
    while end - start > 1:
        k = split(end - start)
        if m < start + k:
            path.append((start + k, end))
            end = start + k
        else:
            path.append((start, start + k))
            start += k
    path.reverse()
    return path


def consistency_path(m: int, n: int) -> list[tuple[int, int]]:
    """The subtrees whose roots prove a tree of ``m`` leaves is a prefix of one of ``n``
    (RFC 9162 2.1.4.1, SUBPROOF)."""

    def sub(m: int, start: int, end: int, complete: bool) -> list[tuple[int, int]]:
        size = end - start
        if m == size:
            return [] if complete else [(start, end)]
        k = split(size)
        if m <= k:
            return [*sub(m, start, start + k, complete), (start + k, end)]
        return [*sub(m - k, start + k, end, False), (start, start + k)]

    return sub(m, 0, n, True) if 0 < m < n else []


def perfect_subtrees(start: int, end: int) -> Iterator[tuple[int, int]]:
    """Split [start, end) of an RFC tree into the (level, index) perfect subtrees whose
    hashes combine into its root: what ``subtree_root`` reads."""
    size = end - start
    if size & (size - 1) == 0 and start % size == 0:
        yield size.bit_length() - 1, start // size
        return
    k = split(size)
    yield from perfect_subtrees(start, start + k)
    yield from perfect_subtrees(start + k, end)


def needed_nodes(exported: Sequence[int], size: int) -> Iterator[tuple[int, int]]:
    """The ``(level, index)`` nodes an export states for the leaves ``exported`` (sorted)
    of a tree of ``size`` leaves, each once: both children of every subtree on a path from
    an exported leaf to the root, as perfect subtrees. The exporter writes exactly these;
    the verifier refuses any other."""

    def has(start: int, end: int) -> bool:
        i = bisect.bisect_left(exported, start)
        return i < len(exported) and exported[i] < end

    edge: set[tuple[int, int]] = set()  # keys emitted for non-perfect spans (the right edge)
    stack = [(0, size)] if len(exported) else []
    while stack:
        start, end = stack.pop()
        if end - start == 1:
            continue
        k = split(end - start)
        for a, b in ((start, start + k), (start + k, end)):
            span = b - a
            if span & (span - 1) == 0:
                key = (span.bit_length() - 1, a // span)
                if key not in edge:
                    yield key
            else:
                for key in perfect_subtrees(a, b):
                    if key not in edge:
                        edge.add(key)
                        yield key
            if has(a, b):
                stack.append((a, b))


def root_from_path(leaf: bytes, m: int, n: int, path: list[bytes]) -> bytes:
    """The root implied by leaf ``m``'s hash and its audit path (RFC 9162 2.1.3.2)."""
    fn, sn, r = m, n - 1, leaf
    for p in path:
        if sn == 0:
            raise ValueError("audit path too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ValueError("audit path too short")
    return r


def verify_consistency(m: int, n: int, old: bytes, new: bytes, proof: list[bytes]) -> bool:
    """RFC 9162 2.1.4.2: is the tree of ``m`` leaves with root ``old`` a prefix of the
    tree of ``n`` leaves with root ``new``?"""
    if m == n:
        return old == new and not proof
    if not 0 < m < n:
        return False
    if m & (m - 1) == 0:
        proof = [old, *proof]
    if not proof:
        return False
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old and sr == new and sn == 0


# --- Canonical forms -----------------------------------------------------------------


def canonical_json(value: object) -> bytes:
    """The bytes a signature or a leaf hash covers: keys sorted, no whitespace, UTF-8
    (not ASCII escapes). Pinned by a test: changing it breaks every existing signature."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def checkpoint_text(tree_size: int, root: bytes, sealed_at: str) -> bytes:
    """What a checkpoint signature covers (a signed note in the manner of RFC 9162's
    signed tree heads)."""
    return f"{CHECKPOINT_ORIGIN}\n{tree_size}\n{b64(root)}\n{sealed_at}\n".encode()


def b64(data: bytes) -> str:
    """base64url without padding, as JOSE and the rest of accessctl write it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    if not isinstance(text, str) or "=" in text:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def ranges(indices: Iterable[int]) -> list[list[int]]:
    """Sorted leaf indices as [[first, last], ...]."""
    out: list[list[int]] = []
    for i in indices:
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


# --- Keys ------------------------------------------------------------------------------

# Ed25519 public keys by key id; the id ``None``: one PEM key, given without an id.
PublicKeys: TypeAlias = "dict[str | None, Ed25519PublicKey]"


def load_public_keys(path: Path) -> PublicKeys:
    """Keys by id from a JWKS file (``/.well-known/jwks.json``), or one PEM key."""
    return parse_public_keys(path.read_text())


def parse_public_keys(text: str) -> PublicKeys:
    """Ed25519 keys by key id from a JWKS document, or one PEM key (id ``None``: it
    verifies whatever key id a signature names). ``ValueError`` if it is neither."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if text.lstrip().startswith("{"):
        try:
            return {
                jwk["kid"]: Ed25519PublicKey.from_public_bytes(unb64(jwk["x"]))
                for jwk in json.loads(text)["keys"]
            }
        except (KeyError, TypeError) as exc:
            raise ValueError("not a JWK set of Ed25519 keys") from exc
    key = load_pem_public_key(text.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the PEM key is not an Ed25519 public key")
    return {None: key}


def key_for(keys: PublicKeys, kid: object) -> Ed25519PublicKey | None:
    """The key that checks a signature naming ``kid``: that key, else a PEM key given
    without an id, else None."""
    return keys.get(kid) if isinstance(kid, str) and kid in keys else keys.get(None)


def signature_problem(keys: PublicKeys, payload: bytes, sig: dict[str, str]) -> str:
    """'' when ``sig`` verifies under a known key, else what is wrong."""
    from cryptography.exceptions import InvalidSignature

    kid = sig.get("kid")
    key = key_for(keys, kid)
    if key is None:
        return f"signed by an unknown key {kid!r}"
    try:
        key.verify(unb64(sig["signature"]), payload)
    except (InvalidSignature, KeyError, ValueError):
        return f"signature by key {kid!r} does not verify (modified, or signed by another key)"
    return ""


# --- Verification ---------------------------------------------------------------------


@dataclass
class Report:
    events: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, text: str) -> None:
        self.failures.append(text)

    @property
    def ok(self) -> bool:
        return not self.failures


def _event_label(line_no: int, index: object, event_id: object) -> str:
    return f"event at line {line_no} (leaf {index}, id {event_id})"


_EVENT_PREFIX = b'{"event":'
_EVENT_TAIL = re.compile(rb',"leaf_index":(0|[1-9][0-9]*),"type":"event"}\n\Z')
_EVENT_ID = re.compile(rb',"id":(\d+),"occurred_at":')


@dataclass(frozen=True, slots=True)
class EventLine:
    index: object
    event_id: object
    leaf: bytes
    # False when the line decodes to an event but is not byte for byte the canonical line
    # the exporter writes: it then carries bytes the log never signed.
    exact: bool


def _event_line(raw: bytes) -> EventLine | None:
    """The event line ``raw`` holds, or None if it is not one.

    An event line must be exactly ``canonical_json({"event": e, "leaf_index": i, "type":
    "event"})`` and a newline. The event's bytes are hashed as they stand (no decoding
    and re-encoding: this is most of the verifier's work), so a byte changed inside the
    event changes its leaf hash, and the fixed prefix and tail leave no room for a byte
    outside it. A line that decodes to an event in any other spelling (an extra key,
    whitespace, key order, ``1.0`` for ``1``, an escape) is reported as modified: a
    re-encoding would verify, but the file would then hold bytes nobody signed.
    """
    tail = _EVENT_TAIL.search(raw)
    if raw.startswith(_EVENT_PREFIX) and tail:
        body = raw[len(_EVENT_PREFIX) : tail.start()]
        found = _EVENT_ID.search(body)
        event_id = int(found.group(1)) if found else None
        return EventLine(int(tail.group(1)), event_id, leaf_hash(body), exact=True)
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("type") != "event":
        return None
    event = record.get("event")
    event_id = event.get("id") if isinstance(event, dict) else None
    index = record.get("leaf_index")
    if isinstance(index, float) and index.is_integer():
        index = int(index)  # "7.0": the same leaf, spelled in bytes nobody signed
    return EventLine(index, event_id, leaf_hash(canonical_json(event)), exact=False)


# The fields each line other than an event line holds, exactly (an event line's are fixed
# by ``_event_line``). The manifest's and the checkpoints' own fields are signed.
_LINE_FIELDS = {
    "header": {"type", "format", "checkpoints", "consistency", "manifest"},
    "nodes": {"type", "nodes"},
    "end": {"type", "events"},
}


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, value in pairs:
        if key in record:
            raise ValueError(f"duplicate key {key!r}")
        record[key] = value
    return record


def _not_an_integer(text: str) -> NoReturn:
    raise ValueError(f"number {text} is not an integer")


def _other_line(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """A header, nodes or end line: its record, and '' when ``raw`` is exactly
    ``canonical_json(record)`` and a newline, else what is wrong with it.

    Like an event line, every other line must be exactly what the exporter writes: a
    duplicated key (a reader keeping the first copy would believe a forged one), a
    non-integer number (``121.0``, ``1.21e2``: the format has none), an extra field,
    whitespace, another key order, an escape or a byte order mark are bytes nobody signed.
    The record is None when the line cannot be read at all.
    """
    try:
        record = json.loads(
            raw,
            object_pairs_hook=_unique_keys,
            parse_float=_not_an_integer,
            parse_constant=_not_an_integer,
        )
    except json.JSONDecodeError:
        return None, "not JSON (modified or truncated)"
    except ValueError as exc:  # a duplicate key, a float, bytes that are not UTF-8
        return None, f"modified ({exc}: bytes nobody signed)"
    if not isinstance(record, dict):
        return None, "not a JSON object (modified)"
    fields = _LINE_FIELDS.get(record.get("type"))  # type: ignore[arg-type]
    if fields is not None and set(record) != fields:
        extra, missing = sorted(set(record) - fields), sorted(fields - set(record))
        return record, f"modified (fields {extra} not in the format, {missing} missing)"
    if canonical_json(record) + b"\n" != raw:
        return record, (
            "modified (the line is not exactly its canonical form: it holds bytes nobody signed)"
        )
    return record, ""


def _kind_of(raw: bytes) -> str:
    """The ``type`` a line that is no event line says it has ('' when none)."""
    record, _ = _other_line(raw)
    kind = record.get("type") if record is not None else None
    return kind if isinstance(kind, str) else ""


# Where each kind of line may follow the last one that set the stage: event lines only
# before any nodes line, nodes lines before the end line, nothing after the end line.
def _misplaced(stage: str, kind: str) -> str:
    if stage == "end":
        return "a line after the end line"
    if kind == "event" and stage == "nodes":
        return "an event line after the proof nodes"
    if kind == "header":
        return "a second header line"
    return ""


def verify(path: Path, keys: PublicKeys) -> Report:
    """Check the export at ``path``; constant memory apart from the proof nodes and one
    hash per exported event."""
    report = Report()
    with path.open("rb") as handle:
        lines = iter(enumerate(handle, start=1))
        try:
            _, first = next(lines)
        except StopIteration:
            first = b""
        header, problem = _other_line(first)
        if header is None:
            report.fail(f"line 1: not an accessctl audit export header ({problem})")
            return report
        if header.get("type") != "header" or header.get("format") != EXPORT_FORMAT:
            report.fail(f"line 1: not a {EXPORT_FORMAT} header")
            return report
        if problem:
            report.fail(f"line 1 (header): {problem}")
        manifest, target = _check_header(header, keys, report)
        if manifest is None or target is None:
            return report
        tree_size, root = target
        for index in manifest.get("missing_leaves", []):
            report.fail(
                f"leaf {index}: deleted (its event row was gone from the database at export "
                "time, though sealed and not removed by retention)"
            )
        expected = {
            i for first_i, last_i in manifest["leaf_ranges"] for i in range(first_i, last_i + 1)
        }
        leaves: dict[int, tuple[int, object, bytes]] = {}
        seen: list[int] = []
        nodes: dict[tuple[int, int], bytes] = {}
        node_lines: dict[tuple[int, int], int] = {}
        end = None
        # The one structure an export has: header, events, nodes, end (see the module).
        stage = "events"
        for line_no, raw in lines:
            parsed = _event_line(raw)
            line_kind = "event" if parsed is not None else _kind_of(raw)
            misplaced = _misplaced(stage, line_kind)
            if misplaced:
                report.fail(f"line {line_no}: modified ({misplaced})")
            elif line_kind in ("nodes", "end"):
                stage = line_kind
            if parsed is not None:
                index, event_id, value = parsed.index, parsed.event_id, parsed.leaf
                label = _event_label(line_no, index, event_id)
                if not parsed.exact:
                    report.fail(
                        f"{label}: modified (the line is not exactly the signed canonical "
                        "form: it holds bytes outside the signed event)"
                    )
                if type(index) is not int or index not in expected:
                    report.fail(
                        f"{label}: inserted (not among the exported leaves the manifest signs)"
                    )
                elif index in leaves:
                    report.fail(f"{label}: inserted (leaf {index} appears twice)")
                else:
                    leaves[index] = (line_no, event_id, value)
                    seen.append(index)
                continue
            record, problem = _other_line(raw)
            if problem:
                report.fail(f"line {line_no}: {problem}")
            if record is None:
                continue
            kind = record.get("type")
            if kind == "nodes":
                for level, index, text in record.get("nodes", []):
                    if (level, index) in nodes:
                        report.fail(
                            f"line {line_no}: modified (node [{level}, {index}] is stated "
                            f"twice, first on line {node_lines[(level, index)]})"
                        )
                        continue
                    nodes[(level, index)] = unb64(text)
                    node_lines[(level, index)] = line_no
            elif kind == "end":
                end = end or record
            else:
                report.fail(f"line {line_no}: unknown line type {kind!r}")
        report.events = len(leaves)
        if end is None:
            report.fail("the file is truncated: no end line")
        elif type(end.get("events")) is not int or end.get("events") != len(seen):
            report.fail(f"end line says {end.get('events')} events, the file holds {len(seen)}")
        for index in sorted(expected - set(leaves)):
            report.fail(f"leaf {index}: deleted (signed in the manifest, missing from the file)")
        unused = set(nodes) - set(needed_nodes(sorted(expected), tree_size))
        for level, index in sorted(unused, key=lambda key: node_lines[key]):
            report.fail(
                f"line {node_lines[(level, index)]}: modified (node [{level}, {index}] is no "
                "proof node of the exported events)"
            )
        for before, after in itertools.pairwise(seen):
            if after < before:
                line_no, event_id, _ = leaves[after]
                report.fail(
                    f"{_event_label(line_no, after, event_id)}: reordered (comes after leaf {before})"
                )
        _check_inclusion(leaves, nodes, tree_size, root, report)
    return report


def _check_header(
    header: dict[str, Any], keys: PublicKeys, report: Report
) -> tuple[dict[str, Any] | None, tuple[int, bytes] | None]:
    checkpoints = header.get("checkpoints") or []
    parsed = []
    for cp in checkpoints:
        label = f"checkpoint (tree size {cp.get('tree_size')}, sealed {cp.get('sealed_at')})"
        try:
            size, root = int(cp["tree_size"]), unb64(cp["root_hash"])
            payload = checkpoint_text(size, root, cp["sealed_at"])
        except (KeyError, ValueError, TypeError):
            report.fail(f"{label}: malformed")
            continue
        if problem := signature_problem(keys, payload, cp.get("signature") or {}):
            report.fail(f"{label}: {problem}")
            continue
        parsed.append((size, root, label))
    if len(parsed) != len(checkpoints) or not parsed:
        if not checkpoints:
            report.fail("the header holds no checkpoint")
        return None, None
    for (m, old, label_m), (n, new, label_n) in itertools.pairwise(parsed):
        proof = [unb64(h) for h in header.get("consistency", {}).get(f"{m}-{n}", [])]
        if not verify_consistency(m, n, old, new, proof):
            report.fail(f"{label_n} is not consistent with {label_m}: the log was rewritten")
            return None, None
    manifest = header.get("manifest") or {}
    try:
        body = {k: v for k, v in manifest.items() if k != "signature"}
        problem = signature_problem(keys, canonical_json(body), manifest["signature"])
    except (KeyError, TypeError):
        problem = "no signature"
    if problem:
        report.fail(f"manifest: {problem}")
        return None, None
    size, root, _ = parsed[-1]
    if manifest.get("tree_size") != size or manifest.get("root_hash") != b64(root):
        report.fail("manifest: names another checkpoint than the header's last one")
        return None, None
    return manifest, (size, root)


def _check_inclusion(
    leaves: dict[int, tuple[int, object, bytes]],
    nodes: dict[tuple[int, int], bytes],
    tree_size: int,
    root: bytes,
    report: Report,
) -> None:
    """Each event on its own: its leaf hash and its audit path (read from the shared
    nodes) must give the checkpoint's root.

    Fast path: hash the tree once, bottom-up, from the events where there are events and
    from the nodes elsewhere, and check every node the file states against the computed
    one. When all agree and the root matches, every event's own proof holds (each path
    uses only stated nodes, all equal to the computed ones). Otherwise each event is
    checked on its own, which names exactly the events that fail.
    """
    exported = sorted(leaves)

    def stated(start: int, end: int) -> bytes | None:
        try:
            return subtree_root(lambda lv, ix: nodes[(lv, ix)], start, end)
        except KeyError:
            return None

    def has_events(start: int, end: int) -> bool:
        i = bisect.bisect_left(exported, start)
        return i < len(exported) and exported[i] < end

    agreed = True

    def walk(start: int, end: int) -> bytes | None:
        nonlocal agreed
        if not has_events(start, end):
            return stated(start, end)
        if end - start == 1:
            value: bytes | None = leaves[start][2]
        else:
            k = split(end - start)
            left, right = walk(start, start + k), walk(start + k, end)
            value = node_hash(left, right) if left is not None and right is not None else None
        claim = stated(start, end) if (end - start) & (end - start - 1) == 0 else None
        if value is None or (claim is not None and claim != value):
            agreed = False
        return value

    if exported and walk(0, tree_size) == root and agreed:
        return
    for index in exported:
        line_no, event_id, computed = leaves[index]
        label = _event_label(line_no, index, event_id)
        path = []
        for start, end in inclusion_path(index, tree_size):
            value = stated(start, end)
            if value is None:
                report.fail(f"{label}: no inclusion proof (its proof nodes are missing)")
                break
            path.append(value)
        else:
            if root_from_path(computed, index, tree_size, path) != root:
                report.fail(
                    f"{label}: modified (its inclusion proof does not give the signed root)"
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="the .jsonl export file")
    parser.add_argument(
        "--public-key", type=Path, required=True, help="the lab's JWKS (jwks.json) or a PEM key"
    )
    options = parser.parse_args(argv)
    try:
        keys = load_public_keys(options.public_key)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: cannot read the public key {options.public_key}: {exc}", file=sys.stderr)
        return 2
    try:
        report = verify(options.export, keys)
    except OSError as exc:
        print(f"error: cannot read {options.export}: {exc.strerror}", file=sys.stderr)
        return 2
    for failure in report.failures:
        print(f"FAIL {failure}")
    if report.ok:
        print(f"OK {report.events} events verified against the signed checkpoints")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
