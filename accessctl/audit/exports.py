"""Compliance exports: the audit events that match the filters, with the proof that they
are complete and unmodified (see ``accessctl_wire.verify_export`` for the format and the checks).

``request_export`` records the request (audited) and queues ``write_export``, which seals
what is new, then streams the matching sealed events, in leaf order, into three files in
artifact storage: ``.jsonl`` (the evidence: events, signed checkpoints, the signed
manifest and the proof nodes), ``.csv`` and ``.ocsf.jsonl`` (OCSF-style API Activity
records for a SIEM). Memory stays constant but for one 8-byte index per exported event.
"""

import csv
import hashlib
import json
import tempfile
from array import array
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.module_loading import import_string

from accessctl.codes import Code, registered
from accessctl.dispatch import after_commit
from accessctl.signing.keys import sign_detached
from accessctl_wire import EXPORT_FORMAT, b64, canonical_json, needed_nodes, ranges

from .events import AuditAction, record
from .models import AuditCheckpoint, AuditEvent, AuditExport, AuditRetention
from .sealing import FIELDS, checkpoint_json, consistency, event_record, seal, timestamp

__all__ = [
    "ExportError",
    "mark_export_failed",
    "matching_events",
    "request_export",
    "write_export",
]

NODES_PER_LINE = 1000
FETCH = 50_000


class ExportError(Exception):
    """A refused export; ``code`` is registered (``accessctl_wire.codes``)."""

    def __init__(self, code: Code | str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = registered(code), message


def storage() -> Storage:
    return storages["exports"]


def _clean_filters(filters: dict[str, Any]) -> dict[str, Any]:
    allowed = {"since", "until", "partner", "release", "action", "outcome"}
    unknown = set(filters) - allowed
    if unknown:
        raise ExportError("invalid", f"Unknown filters: {', '.join(sorted(unknown))}.")
    clean = {k: v for k, v in filters.items() if v not in (None, "", [])}
    for key in ("since", "until"):
        if key in clean and not isinstance(clean[key], str):
            clean[key] = clean[key].isoformat()
    return clean


def _scope(name: str, value: str) -> Q:
    """The domain's meaning of filter ``name`` (``partner``, ``release``): a callable named
    in ``settings.ACCESSCTL_AUDIT_EXPORT_SCOPES``, so the platform imports no domain code."""
    scope: Callable[[str], Q] = import_string(settings.ACCESSCTL_AUDIT_EXPORT_SCOPES[name])
    return scope(value)


def matching_events(filters: dict[str, Any]) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.all()
    if since := filters.get("since"):
        events = events.filter(occurred_at__gte=datetime.fromisoformat(since))
    if until := filters.get("until"):
        events = events.filter(occurred_at__lt=datetime.fromisoformat(until))
    if partner := filters.get("partner"):
        events = events.filter(_scope("partner", partner))
    if outcome := filters.get("outcome"):
        events = events.filter(outcome=outcome)
    if action := filters.get("action"):  # "grant.revoked", or a prefix: "grant.*"
        if action.endswith("*"):
            events = events.filter(action__startswith=action[:-1])
        else:
            events = events.filter(action=action)
    if release := filters.get("release"):
        events = events.filter(_scope("release", release))
    return events


@transaction.atomic
def request_export(*, actor: User, filters: dict[str, Any]) -> AuditExport:
    if not actor.has_perm("audit.export_auditevent"):
        raise ExportError("forbidden", "You lack the permission to export the audit trail.")
    clean = _clean_filters(filters)
    try:
        matching_events(clean).exists()
    except ValueError as exc:
        raise ExportError("invalid", f"Bad filter: {exc}") from exc
    export = AuditExport.objects.create(
        requested_by=actor, requested_at=timezone.now(), filters=clean
    )
    record(AuditAction.AUDIT_EXPORT_REQUESTED, actor=actor, target=export, changes=clean)
    # By name: the task calls this module (accessctl.dispatch.send).
    after_commit("accessctl.audit.tasks.write_audit_export", export.pk)
    return export


def _rows(filters: dict[str, Any], size: int) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(leaf index, event values or None when the event row is gone), in leaf order."""
    columns = ", ".join(f"e.{connection.ops.quote_name(f)}" for f in _columns())
    sql = (
        f"SELECT l.{connection.ops.quote_name('index')}, e.id IS NULL, {columns} "  # noqa: S608
        "FROM audit_auditleaf l LEFT JOIN audit_auditevent e ON e.id = l.event_id "
        f"WHERE l.{connection.ops.quote_name('index')} < %s"
    )
    params: list[Any] = [size]
    if filters:
        inner, inner_params = matching_events(filters).values("id").query.sql_with_params()
        sql += f" AND (e.id IS NULL OR e.id IN ({inner}))"
        params += list(inner_params)
    sql += f" ORDER BY l.{connection.ops.quote_name('index')}"
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(2000):
            for index, missing, *values in batch:
                if missing:
                    yield index, None
                    continue
                row = dict(zip(FIELDS, values, strict=True))
                # JSON arrives as text: Django has psycopg load jsonb as text, SQLite stores text.
                row["changes"] = json.loads(row["changes"])
                yield index, row


def _columns() -> list[str]:
    columns = {f.attname: str(f.column) for f in AuditEvent._meta.concrete_fields}
    return [columns[name] for name in FIELDS]


def _runs(indices: list[int], gap: int = 256) -> Iterator[tuple[int, int]]:
    """Sorted indices as (first, last) runs, merging gaps up to ``gap``."""
    first = last = indices[0]
    for index in indices[1:]:
        if index - last > gap:
            yield first, last
            first = index
        last = index
    yield first, last


def _fetch(keys: list[tuple[int, int]]) -> list[list[Any]]:
    """The stored hashes of ``keys``, read as index ranges per level (a range scan of the
    primary key; an ``= ANY`` list gets a generic plan once prepared, and scans)."""
    by_level: dict[int, set[int]] = {}
    for level, index in keys:
        by_level.setdefault(level, set()).add(index)
    out = []
    with connection.cursor() as cursor:
        for level, wanted in sorted(by_level.items()):
            for first, last in _runs(sorted(wanted)):
                if level == 0:
                    cursor.execute(
                        'SELECT "index", hash FROM audit_auditleaf WHERE "index" BETWEEN %s AND %s',
                        [first, last],
                    )
                else:
                    cursor.execute(
                        'SELECT "index", hash FROM audit_auditnode '
                        'WHERE level = %s AND "index" BETWEEN %s AND %s',
                        [level, first, last],
                    )
                out += [
                    [level, index, b64(bytes(value))]
                    for index, value in cursor.fetchall()
                    if index in wanted
                ]
    return out


def _ocsf(index: int, event: dict[str, Any]) -> dict[str, Any]:
    """An OCSF 1.1-style API Activity (class 6003) record."""
    moment = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
    success = event["outcome"] == "success"
    return {
        "class_uid": 6003,
        "category_uid": 6,
        "activity_id": 99,
        "type_uid": 600399,
        "activity_name": event["action"],
        "time": int(moment.timestamp() * 1000),
        "severity_id": 1,
        "status_id": 1 if success else 2,
        "status": "Success" if success else "Failure",
        "status_detail": event["reason"] or None,
        "actor": {"user": {"name": event["actor_label"], "uid": event["actor_id"]}},
        "src_endpoint": {"ip": event["client_address"]},
        "api": {"operation": event["action"], "request": {"uid": event["request_id"] or None}},
        "resources": [
            {"type": event["target_type"], "uid": event["target_id"], "name": event["target_label"]}
        ],
        "metadata": {
            "product": {"name": "accessctl", "vendor_name": settings.ACCESSCTL_SITE_NAME},
            "version": "1.1.0",
            "uid": str(event["id"]),
            "correlation_uid": event["request_id"] or None,
        },
        "unmapped": {
            "partner_id": event["partner_id"],
            "outcome": event["outcome"],
            "changes": event["changes"],
            "leaf_index": index,
        },
    }


def _line(value: object) -> bytes:
    return canonical_json(value) + b"\n"


def write_export(export_id: int) -> AuditExport:
    """Write an export's files; safe to run again (it rewrites them)."""
    export = AuditExport.objects.select_related("requested_by").get(pk=export_id)
    if export.status == AuditExport.Status.READY:
        return export
    # A checkpoint exists: the export's own request event (``audit.export_requested``,
    # committed with the export) is sealed now if it was not before.
    seal()
    last = AuditCheckpoint.objects.latest()
    size = last.tree_size
    purged_below = max(AuditRetention.objects.values_list("purged_below", flat=True), default=0)
    exported, missing = array("q"), array("q")
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        body_path = folder / "events.jsonl"
        csv_path, ocsf_path = folder / "export.csv", folder / "export.ocsf.jsonl"
        with (
            body_path.open("wb") as body,
            csv_path.open("w", newline="") as csv_file,
            ocsf_path.open("wb") as ocsf,
        ):
            table = csv.writer(csv_file)
            table.writerow(["leaf_index", *FIELDS])
            for index, values in _rows(export.filters, size):
                if values is None:
                    if index >= purged_below:  # deleted behind the trigger's back
                        missing.append(index)
                    continue
                event = event_record(values)
                exported.append(index)
                body.write(_line({"type": "event", "leaf_index": index, "event": event}))
                table.writerow(
                    [index, *(json.dumps(event[f]) if f == "changes" else event[f] for f in FIELDS)]
                )
                ocsf.write(_line(_ocsf(index, event)))
        first = (
            AuditCheckpoint.objects.filter(tree_size__gt=exported[0]).order_by("tree_size").first()
            if len(exported)
            else last
        )
        checkpoints = [first, last] if first and first.tree_size != size else [last]
        manifest: dict[str, Any] = {
            "export": export.pk,
            "filters": export.filters,
            "requested_by": export.requested_by.get_username(),
            "written_at": timestamp(timezone.now()),
            "tree_size": size,
            "root_hash": b64(bytes(last.root_hash)),
            "events": len(exported),
            "leaf_ranges": ranges(exported),
            "purged_below": purged_below,
            # Sealed events whose rows are gone though retention did not remove them.
            "missing_leaves": list(missing),
        }
        manifest["signature"] = sign_detached(canonical_json(manifest))
        header = {
            "type": "header",
            "format": EXPORT_FORMAT,
            "checkpoints": [checkpoint_json(c) for c in checkpoints],
            "consistency": {
                f"{checkpoints[0].tree_size}-{size}": consistency(checkpoints[0].tree_size, size)
            }
            if len(checkpoints) == 2
            else {},
            "manifest": manifest,
        }
        evidence_path = folder / "export.jsonl"
        with evidence_path.open("wb") as raw, body_path.open("rb") as body:
            out = raw
            out.write(_line(header))
            while chunk := body.read(1 << 20):
                out.write(chunk)
            keys: list[tuple[int, int]] = []
            for key in needed_nodes(exported, size):
                keys.append(key)
                if len(keys) == FETCH:
                    _write_nodes(out, _fetch(keys))
                    keys = []
            if keys:
                _write_nodes(out, _fetch(keys))
            out.write(_line({"type": "end", "events": len(exported)}))
        files = {}
        for kind, path, suffix in (
            ("jsonl", evidence_path, ".jsonl"),
            ("csv", csv_path, ".csv"),
            ("ocsf", ocsf_path, ".ocsf.jsonl"),
        ):
            name = f"audit-exports/{export.pk}/audit-export-{export.pk}{suffix}"
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
                handle.seek(0)
                if storage().exists(name):
                    storage().delete(name)
                stored = storage().save(name, File(handle))
            files[kind] = {
                "name": stored,
                "size": path.stat().st_size,
                "sha256": digest.hexdigest(),
            }
    with transaction.atomic():
        AuditExport.objects.filter(pk=export.pk).update(
            status=AuditExport.Status.READY,
            events=len(exported),
            tree_size=size,
            files=files,
            completed_at=timezone.now(),
        )
        export.refresh_from_db()
        record(
            AuditAction.AUDIT_EXPORTED,
            actor=export.requested_by,
            target=export,
            changes={
                "events": len(exported),
                "tree_size": size,
                "sha256": {k: v["sha256"] for k, v in files.items()},
            },
        )
    return export


def _write_nodes(out: IO[bytes], nodes: list[list[Any]]) -> None:
    for start in range(0, len(nodes), NODES_PER_LINE):
        out.write(_line({"type": "nodes", "nodes": nodes[start : start + NODES_PER_LINE]}))


def mark_export_failed(export_id: int, error: str) -> None:
    """Say in the portal why an export's files could not be written."""
    AuditExport.objects.filter(pk=export_id).update(
        status=AuditExport.Status.FAILED, error=error[:300], completed_at=timezone.now()
    )
