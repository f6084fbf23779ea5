"""Sealing: new audit events become leaves of a Merkle tree, and a signed checkpoint
states the tree's size and root.

Writers never wait for this: events are inserted as before, and the sealer (a Celery
periodic task, one at a time under an advisory lock) appends the committed events it has
not sealed yet, in the order it finds them. The tree's perfect subtrees are stored
(``AuditNode``), so appending touches about one node per leaf and any root or proof
reads O(log n) rows. Before signing, the sealer recomputes the previous checkpoint's root
from the stored nodes: a stored tree someone rewrote is refused, not signed over.
"""

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, Max, OuterRef
from django.utils import timezone

from accessctl.signing.keys import sign_detached
from accessctl_wire import (
    b64,
    canonical_json,
    checkpoint_text,
    consistency_path,
    inclusion_path,
    leaf_hash,
    node_hash,
    subtree_root,
)

from .models import AuditCheckpoint, AuditEvent, AuditLeaf, AuditNode

__all__ = [
    "SealError",
    "checkpoint_json",
    "consistency",
    "event_record",
    "inclusion",
    "seal",
    "stored_node",
    "tree_size",
]

BATCH = 10_000
LOCK = 0x61756469  # pg_advisory_xact_lock key of the sealer ("audi")
# Events are sealed when their transaction has committed. A transaction cannot stay
# open this long (statement and idle timeouts are far shorter), so events older than
# this before the last checkpoint are all sealed already and need not be scanned.
LOOKBACK = timedelta(hours=1)

FIELDS = (
    "id",
    "occurred_at",
    "actor_id",
    "actor_label",
    "action",
    "outcome",
    "reason",
    "target_type",
    "target_id",
    "target_label",
    "partner_id",
    "client_address",
    "request_id",
    "changes",
)


class SealError(Exception):
    """The stored tree does not match what was signed before: someone changed it."""


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_record(values: dict[str, Any]) -> dict[str, Any]:
    """The canonical form of an event (what its leaf hashes), from its column values."""
    record = {name: values[name] for name in FIELDS}
    record["occurred_at"] = timestamp(values["occurred_at"])
    if record["client_address"] is not None:
        record["client_address"] = str(record["client_address"])
    return record


def tree_size() -> int:
    last = AuditLeaf.objects.aggregate(last=Max("index"))["last"]
    return 0 if last is None else last + 1


def stored_node(level: int, index: int) -> bytes:
    if level == 0:
        return bytes(AuditLeaf.objects.values_list("hash", flat=True).get(index=index))
    return bytes(AuditNode.objects.values_list("hash", flat=True).get(level=level, index=index))


def _unsealed(limit: int, after: int) -> list[dict[str, Any]]:
    """Committed events without a leaf, by id, from id ``after`` on (within one run the
    batches move forward; an event that commits behind them is found by the next run)."""
    events = AuditEvent.objects.filter(
        ~Exists(AuditLeaf.objects.filter(event_id=OuterRef("pk"))), id__gt=after
    )
    last = AuditCheckpoint.objects.order_by("-tree_size").first()
    if last is not None:
        events = events.filter(occurred_at__gte=last.sealed_at - LOOKBACK)
    return list(events.order_by("id").values(*FIELDS)[:limit])


def _new_nodes(old: int, new: int, leaves: dict[int, bytes]) -> Iterator[AuditNode]:
    """The perfect subtrees completed by appending leaves [old, new)."""
    below, level = leaves, 1
    while (new >> level) > (old >> level):
        current = {}
        for index in range(old >> level, new >> level):
            left = below.get(2 * index) or stored_node(level - 1, 2 * index)
            right = below.get(2 * index + 1) or stored_node(level - 1, 2 * index + 1)
            current[index] = node_hash(left, right)
            yield AuditNode(level=level, index=index, hash=current[index])
        below, level = current, level + 1


def _append(events: Iterable[dict[str, Any]], old: int) -> int:
    """Append ``events`` (``seal`` passes at least one) as leaves from index ``old``; the
    new tree size."""
    leaves = {
        old + i: leaf_hash(canonical_json(event_record(values))) for i, values in enumerate(events)
    }
    ids = [values["id"] for values in events]
    new = old + len(leaves)
    nodes = list(_new_nodes(old, new, leaves))
    if connection.vendor == "postgresql":  # COPY: several times faster than INSERTs
        with connection.cursor() as cursor:
            with cursor.copy('COPY audit_auditleaf ("index", event_id, hash) FROM STDIN') as copy:
                for (index, value), event_id in zip(leaves.items(), ids, strict=True):
                    copy.write_row((index, event_id, value))
            with cursor.copy('COPY audit_auditnode (level, "index", hash) FROM STDIN') as copy:
                for node in nodes:
                    copy.write_row((node.level, node.index, node.hash))
        return new
    AuditLeaf.objects.bulk_create(
        AuditLeaf(index=i, event_id=e, hash=h)
        for (i, h), e in zip(leaves.items(), ids, strict=True)
    )
    AuditNode.objects.bulk_create(nodes, batch_size=5000)
    return new


def _root(size: int) -> bytes:
    return subtree_root(stored_node, 0, size)


def _lock_sealer() -> None:
    """One sealer at a time, until the current transaction ends (SQLite, the embedded
    default, serializes writers anyway)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK])


def seal(*, batch: int = BATCH) -> AuditCheckpoint | None:
    """Seal every committed, unsealed event and sign a checkpoint; None if none was new.

    Each batch is one transaction; the checkpoint covers all of them.
    """
    sealed_any, after = False, 0
    while True:
        with transaction.atomic():
            _lock_sealer()
            events = _unsealed(batch, after)
            if not events:
                break
            _append(events, tree_size())
            after = events[-1]["id"]
            sealed_any = True
    if not sealed_any:
        return None
    with transaction.atomic():
        _lock_sealer()
        size = tree_size()
        if AuditCheckpoint.objects.filter(tree_size=size).exists():
            return None  # another sealer signed this size meanwhile
        previous = AuditCheckpoint.objects.order_by("-tree_size").first()
        if previous is not None and _root(previous.tree_size) != bytes(previous.root_hash):
            raise SealError(
                f"the stored tree no longer gives the root signed at size {previous.tree_size}"
            )
        root, at = _root(size), timezone.now()
        signature = sign_detached(checkpoint_text(size, root, timestamp(at)))
        return AuditCheckpoint.objects.create(
            tree_size=size,
            root_hash=root,
            sealed_at=at,
            key_id=signature["kid"],
            signature=signature["signature"],
        )


def checkpoint_json(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    return {
        "tree_size": checkpoint.tree_size,
        "root_hash": b64(bytes(checkpoint.root_hash)),
        "sealed_at": timestamp(checkpoint.sealed_at),
        "signature": {"alg": "EdDSA", "kid": checkpoint.key_id, "signature": checkpoint.signature},
    }


def consistency(old: int, new: int) -> list[str]:
    return [b64(subtree_root(stored_node, start, end)) for start, end in consistency_path(old, new)]


def inclusion(index: int, size: int) -> list[str]:
    """Leaf ``index``'s RFC 9162 audit path in the tree of ``size`` leaves (base64url
    hashes, leaf side first): ``root_from_path`` turns it and the leaf into the root."""
    return [
        b64(subtree_root(stored_node, start, end)) for start, end in inclusion_path(index, size)
    ]
