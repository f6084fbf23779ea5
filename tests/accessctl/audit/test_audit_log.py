"""The tamper-evident audit log: append-only in the database, sealed into a signed
Merkle tree, exported with proofs, and verified offline by the standalone verifier,
which names the event or checkpoint that fails for each kind of tampering."""

import csv
import json
import os
import re
import stat
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import DatabaseError, OperationalError, connection, transaction
from django.utils import timezone

import accessctl.settings as configured
from accessctl.audit import sealing
from accessctl.audit.events import AuditAction, record
from accessctl.audit.exports import ExportError, request_export, write_export
from accessctl.audit.models import AuditCheckpoint, AuditEvent, AuditExport, AuditLeaf
from accessctl.audit.retention import apply_retention
from accessctl.signing import keys
from accessctl_wire import verify_export
from partners import actions
from tests import factories as f

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


@pytest.fixture
def history():
    """Two partners' worth of real actions: grants, a revocation, denied downloads."""
    a, b = f.partner("aurora"), f.partner("borealis", jurisdiction="DE")
    v3 = f.release("v3", public_in=-DAY)
    v4 = f.release("v4", public_in=-DAY)
    grants = []
    for partner in (a, b):
        for release in (v3, v4):
            f.window(release, partner)
            grants.append(f.grant(f.checkpoint(release, tag=f"s-{partner.slug}"), partner))
    actions.revoke_grant(actor=None, grant=grants[0], reason="audit test")
    for grant in grants:
        f.authorize(grant)
    return {"a": a, "b": b, "v3": v3, "v4": v4, "grants": grants}


@pytest.fixture
def jwks(tmp_path):
    keys.current_key()
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(keys.jwks()))
    return path


def export(tmp_path, filters=None):
    staff = f.staff("Compliance")
    requested = request_export(actor=staff, filters=filters or {})
    done = write_export(requested.pk)
    files = {}
    tmp_path.mkdir(parents=True, exist_ok=True)
    for kind, meta in done.files.items():
        path = tmp_path / f"export.{kind}"
        with storages["exports"].open(meta["name"], "rb") as handle:
            path.write_bytes(handle.read())
        files[kind] = path
    return done, files


def verify(path, jwks):
    return verify_export.verify(path, verify_export.load_public_keys(jwks))


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def write(path, records):
    """Lines in the exporter's own canonical form, so only the intended change differs."""
    path.write_bytes(b"".join(verify_export.canonical_json(r) + b"\n" for r in records))


# The database refuses changes.


def test_database_refuses_update_and_delete_of_audit_events(history):
    event = AuditEvent.objects.first()
    for sql in (
        "UPDATE audit_auditevent SET action = 'x' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="audit_immutable"), transaction.atomic():
            connection.cursor().execute(sql, [event.pk])
    with pytest.raises(DatabaseError, match="audit_immutable"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(reason="edited")
    sealing.seal()
    for table in ("audit_auditleaf", "audit_auditnode", "audit_auditcheckpoint"):
        with pytest.raises(DatabaseError, match="audit_immutable"), transaction.atomic():
            connection.cursor().execute(f"DELETE FROM {table}")  # noqa: S608


def test_retention_deletes_only_old_sealed_events_and_is_audited(jwks, tmp_path):
    old = [
        record(AuditAction.PARTNER_UPDATED, actor=None, at=timezone.now() - 400 * DAY)
        for _ in range(3)
    ]
    recent = f.partner("fresh")
    retention = apply_retention(older_than=365 * DAY, operator="ops@lab")
    assert retention.events_deleted == 3 and retention.purged_below == 3
    assert not AuditEvent.objects.filter(pk__in=[e.pk for e in old]).exists()
    assert AuditEvent.objects.filter(target_id=str(recent.pk)).exists()
    applied = AuditEvent.objects.get(action="audit.retention_applied")
    assert applied.changes["events_deleted"] == 3 and applied.changes["operator"] == "ops@lab"
    assert AuditLeaf.objects.filter(index__lt=3).count() == 3  # the tree stays
    _, files = export(tmp_path)
    report = verify(files["jsonl"], jwks)
    assert report.ok, report.failures


# Sealing.


def test_sealing_signs_checkpoints_each_consistent_with_the_last(history):
    first = sealing.seal()
    assert sealing.seal() is None  # nothing new
    f.partner("late")
    second = sealing.seal()
    assert first.tree_size == AuditEvent.objects.count() - 1 == second.tree_size - 1
    for checkpoint in (first, second):
        payload = verify_export.checkpoint_text(
            checkpoint.tree_size,
            bytes(checkpoint.root_hash),
            sealing.timestamp(checkpoint.sealed_at),
        )
        keys.verify_detached(payload, {"kid": checkpoint.key_id, "signature": checkpoint.signature})
    proof = [verify_export.unb64(h) for h in sealing.consistency(first.tree_size, second.tree_size)]
    assert verify_export.verify_consistency(
        first.tree_size, second.tree_size, bytes(first.root_hash), bytes(second.root_hash), proof
    )
    assert AuditLeaf.objects.values("event_id").distinct().count() == second.tree_size


def test_sealer_refuses_to_sign_over_a_rewritten_tree(history):
    sealing.seal()
    with connection.cursor() as cursor:  # a superuser can switch the trigger off
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(
            "UPDATE audit_auditnode SET hash = %s WHERE level = (SELECT max(level) FROM audit_auditnode)",
            [b"\0" * 32],
        )
        cursor.execute("SET session_replication_role = DEFAULT")
    f.partner("after")
    with pytest.raises(sealing.SealError):
        sealing.seal()


# Exports and the verifier.


def test_export_verifies_and_holds_every_event_in_three_formats(history, jwks, tmp_path):
    done, files = export(tmp_path)
    report = verify(files["jsonl"], jwks)
    assert report.ok, report.failures
    assert report.events == done.events == AuditLeaf.objects.count()
    with files["csv"].open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == done.events
    assert {"grant.issued", "grant.revoked", "download.authorized"} <= {r["action"] for r in rows}
    ocsf = lines(files["ocsf"])
    assert ocsf[0]["class_uid"] == 6003 and ocsf[0]["metadata"]["product"]["name"] == "accessctl"
    assert {r["status"] for r in ocsf} >= {"Success", "Failure"}
    assert AuditEvent.objects.filter(action="audit.exported", target_id=str(done.pk)).exists()
    assert verify_export.main([str(files["jsonl"]), "--public-key", str(jwks)]) == 0


def test_filters_choose_the_events(history, jwks, tmp_path):
    a = history["a"]
    _, files = export(tmp_path, {"partner": "aurora", "action": "download.*"})
    events = [r["event"] for r in lines(files["jsonl"]) if r["type"] == "event"]
    assert events and all(
        e["partner_id"] == a.pk and e["action"].startswith("download.") for e in events
    )
    assert (
        len(events) == AuditEvent.objects.filter(partner=a, action__startswith="download.").count()
    )
    assert verify(files["jsonl"], jwks).ok
    _, by_release = export(tmp_path, {"release": "v3", "outcome": "denied"})
    denied = [r["event"] for r in lines(by_release["jsonl"]) if r["type"] == "event"]
    assert denied and {e["outcome"] for e in denied} == {"denied"}
    assert verify(by_release["jsonl"], jwks).ok


def tampered(files, change):
    records = lines(files["jsonl"])
    change(records)
    write(files["jsonl"], records)
    return records


def event_lines(records):
    return [i for i, r in enumerate(records) if r["type"] == "event"]


def test_verifier_names_a_modified_event(history, jwks, tmp_path):
    _, files = export(tmp_path)
    records = tampered(
        files, lambda rs: rs[event_lines(rs)[3]]["event"].update(actor_label="someone else")
    )
    victim = records[event_lines(records)[3]]
    (failure,) = verify(files["jsonl"], jwks).failures
    assert f"leaf {victim['leaf_index']}, id {victim['event']['id']}" in failure
    assert "modified" in failure


def test_verifier_names_an_inserted_event(history, jwks, tmp_path):
    _, files = export(tmp_path)

    def insert(rs):
        fake = json.loads(json.dumps(rs[event_lines(rs)[0]]))
        fake["event"]["id"] = 999999
        rs.insert(event_lines(rs)[1], fake)

    tampered(files, insert)
    failures = verify(files["jsonl"], jwks).failures
    assert any("id 999999" in x and "inserted" in x for x in failures), failures


def test_verifier_names_a_deleted_event(history, jwks, tmp_path):
    _, files = export(tmp_path)
    records = lines(files["jsonl"])
    gone = records[event_lines(records)[2]]["leaf_index"]
    tampered(files, lambda rs: rs.pop(event_lines(rs)[2]))
    failures = verify(files["jsonl"], jwks).failures
    assert f"leaf {gone}: deleted" in "\n".join(failures)


def test_verifier_names_reordered_events(history, jwks, tmp_path):
    _, files = export(tmp_path)

    def swap(rs):
        i, j = event_lines(rs)[1], event_lines(rs)[2]
        rs[i], rs[j] = rs[j], rs[i]

    tampered(files, swap)
    assert any("reordered" in x for x in verify(files["jsonl"], jwks).failures)


def test_verifier_names_a_truncated_file(history, jwks, tmp_path):
    _, files = export(tmp_path)
    text = files["jsonl"].read_text().splitlines(keepends=True)
    files["jsonl"].write_text("".join(text[: len(text) // 2]))
    failures = verify(files["jsonl"], jwks).failures
    assert any("truncated" in x for x in failures)
    assert any(": deleted" in x for x in failures)


def test_verifier_refuses_a_checkpoint_signed_by_an_unknown_key(history, jwks, tmp_path):
    _, files = export(tmp_path)
    keys.rotate_key()  # a key the verifier's JWKS (written before) does not hold
    checkpoint = sealing.seal() or AuditCheckpoint.objects.latest()
    forged = sealing.checkpoint_json(checkpoint)

    def replace(rs):
        rs[0]["checkpoints"][-1]["signature"] = forged["signature"]

    tampered(files, replace)
    failures = verify(files["jsonl"], jwks).failures
    assert any("checkpoint" in x and "unknown key" in x for x in failures), failures


def test_verifier_refuses_a_forged_manifest(history, jwks, tmp_path):
    _, files = export(tmp_path)
    tampered(files, lambda rs: rs[0]["manifest"].update(leaf_ranges=[[0, 1]]))
    assert any("manifest" in x for x in verify(files["jsonl"], jwks).failures)


def test_verifier_names_rows_changed_in_the_database_behind_the_trigger(history, jwks, tmp_path):
    sealing.seal()
    edited, removed = AuditEvent.objects.order_by("id")[4:6]
    with connection.cursor() as cursor:  # a superuser bypasses the trigger
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(
            "UPDATE audit_auditevent SET actor_label = 'nobody' WHERE id = %s", [edited.pk]
        )
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [removed.pk])
        cursor.execute("SET session_replication_role = DEFAULT")
    _, files = export(tmp_path)
    failures = "\n".join(verify(files["jsonl"], jwks).failures)
    edited_leaf = AuditLeaf.objects.get(event_id=edited.pk).index
    removed_leaf = AuditLeaf.objects.get(event_id=removed.pk).index
    assert f"leaf {edited_leaf}, id {edited.pk}): modified" in failures
    assert f"leaf {removed_leaf}: deleted" in failures


def test_the_standalone_verifier_runs_without_django(history, jwks, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    _, files = export(tmp_path)
    script = Path(verify_export.__file__)
    isolated = tmp_path / "verifier"
    isolated.mkdir()
    (isolated / script.name).write_bytes(script.read_bytes())

    def standalone():
        command = [sys.executable, "-I", str(isolated / script.name), str(files["jsonl"])]
        return subprocess.run(
            [*command, "--public-key", str(jwks)],
            capture_output=True,
            text=True,
            cwd=isolated,
            env={"PATH": "/usr/bin:/bin"},
        )

    run = standalone()
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("OK ")
    tampered(files, lambda rs: rs[event_lines(rs)[0]]["event"].update(action="x"))
    again = standalone()
    assert again.returncode == 1 and again.stdout.startswith("FAIL event at line")


def test_an_export_that_cannot_be_written_is_marked_failed_with_the_reason(
    history, settings, tmp_path
):
    from accessctl.audit.models import AuditExport
    from accessctl.audit.tasks import write_audit_export

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the export folder should be")
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(blocker)},
        },
    }
    requested = request_export(actor=f.staff("Compliance"), filters={})
    with pytest.raises(OSError):
        write_audit_export(requested.pk)
    failed = AuditExport.objects.get(pk=requested.pk)
    assert failed.status == "failed" and failed.error.startswith(
        ("FileExistsError", "NotADirectoryError")
    )


def test_verifier_refuses_checkpoints_that_are_not_consistent(history, jwks, tmp_path):
    sealing.seal()
    f.partner("later")  # more events, a second checkpoint
    _, files = export(tmp_path)
    header = lines(files["jsonl"])[0]
    assert len(header["checkpoints"]) == 2
    assert verify(files["jsonl"], jwks).ok

    def rewrite(rs):
        ((key, proof),) = rs[0]["consistency"].items()
        rs[0]["consistency"][key] = [verify_export.b64(b"\0" * 32), *proof[1:]]

    tampered(files, rewrite)
    failures = verify(files["jsonl"], jwks).failures
    assert any("is not consistent with" in x and "rewritten" in x for x in failures), failures


def _respell_event_line(files, change):
    """Rewrite the third event line's raw bytes with ``change(line, record)``; return the
    record so the failure can be matched to it."""
    raw = files["jsonl"].read_bytes().splitlines(keepends=True)
    position = [i for i, line in enumerate(raw) if json.loads(line)["type"] == "event"][2]
    record = json.loads(raw[position])
    raw[position] = change(raw[position], record)
    files["jsonl"].write_bytes(b"".join(raw))
    return record


def _with(record, **extra):
    return verify_export.canonical_json({**record, **extra}) + b"\n"


# Each spelling carries exactly the signed event (same keys, same values), so only the
# verifier's insistence on the exact signed bytes can tell it from the original.
UNSIGNED_SPELLINGS = {
    "extra key beside the event": lambda line, r: _with(r, note="approved by legal"),
    "extra key first": lambda line, r: b'{"a":1,' + line[1:],
    "duplicate event key": lambda line, r: line[:-2] + b',"type":"event"}\n',
    "spaces after separators": lambda line, r: json.dumps(r, sort_keys=True).encode() + b"\n",
    "keys in another order": lambda line, r: (
        json.dumps(
            {"type": "event", "leaf_index": r["leaf_index"], "event": r["event"]},
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        + b"\n"
    ),
    "trailing space": lambda line, r: line[:-1] + b" \n",
    "carriage return": lambda line, r: line[:-1] + b"\r\n",
    "leaf index as a float": lambda line, r: line.replace(
        b'"leaf_index":%d,' % r["leaf_index"], b'"leaf_index":%d.0,' % r["leaf_index"]
    ),
    "leaf index in exponent form": lambda line, r: line.replace(
        b'"leaf_index":%d,' % r["leaf_index"], b'"leaf_index":%de0,' % r["leaf_index"]
    ),
    "escaped letter in the type": lambda line, r: line.replace(
        b'"type":"event"', b'"type":"\\u0065vent"'
    ),
}


@pytest.mark.parametrize("spelling", sorted(UNSIGNED_SPELLINGS))
def test_verifier_names_an_event_line_that_is_not_exactly_the_signed_form(
    history, jwks, tmp_path, spelling
):
    _, files = export(tmp_path)
    assert verify(files["jsonl"], jwks).ok
    victim = _respell_event_line(files, UNSIGNED_SPELLINGS[spelling])
    report = verify(files["jsonl"], jwks)
    assert not report.ok, f"{spelling}: accepted bytes nobody signed"
    named = [x for x in report.failures if f"id {victim['event']['id']})" in x]
    assert named and all("modified" in x for x in named), report.failures
    assert f"leaf {victim['leaf_index']}" in named[0]


def _respell_line(files, kind, change):
    """Rewrite the first line of type ``kind`` (header, nodes, end) with ``change(line,
    record)``."""
    raw = files["jsonl"].read_bytes().splitlines(keepends=True)
    position = next(i for i, line in enumerate(raw) if json.loads(line)["type"] == kind)
    raw[position] = change(raw[position], json.loads(raw[position]))
    files["jsonl"].write_bytes(b"".join(raw))


def _forged_first_manifest(line, record):
    # A duplicated "manifest" key whose first copy is forged: a parser keeping the last
    # copy verifies the real one, a reader keeping the first believes the forgery.
    forged = verify_export.canonical_json({**record["manifest"], "leaf_ranges": []})
    return line.replace(b'{"checkpoints":', b'{"manifest":' + forged + b',"checkpoints":', 1)


# Header, nodes and end lines: each respelling decodes to the same values (or to values
# a lenient reader would take), so only exact canonical bytes tell it from the original.
OTHER_LINE_SPELLINGS = {
    "header: duplicated manifest, first forged": ("header", _forged_first_manifest),
    "header: extra field": ("header", lambda line, r: _with(r, note="approved by legal")),
    "header: pretty-printed": (
        "header",
        lambda line, r: json.dumps(r, sort_keys=True, indent=1).replace("\n", " ").encode() + b"\n",
    ),
    "header: keys in another order": (
        "header",
        lambda line, r: (
            json.dumps(dict(reversed(r.items())), separators=(",", ":")).encode() + b"\n"
        ),
    ),
    "header: byte order mark": ("header", lambda line, r: b"\xef\xbb\xbf" + line),
    "header: trailing space": ("header", lambda line, r: line[:-1] + b" \n"),
    "nodes: trailing space": ("nodes", lambda line, r: line[:-1] + b" \n"),
    "nodes: extra field": ("nodes", lambda line, r: _with(r, note="x")),
    "end: duplicated count": (
        "end",
        lambda line, r: b'{"events":999,"events":%d,"type":"end"}\n' % r["events"],
    ),
    "end: count as a float": (
        "end",
        lambda line, r: b'{"events":%d.0,"type":"end"}\n' % r["events"],
    ),
    "end: count in exponent form": (
        "end",
        lambda line, r: b'{"events":%de0,"type":"end"}\n' % r["events"],
    ),
    "end: extra field": ("end", lambda line, r: _with(r, note="x")),
    "end: spaces": ("end", lambda line, r: json.dumps(r, sort_keys=True).encode() + b"\n"),
}


@pytest.mark.parametrize("spelling", sorted(OTHER_LINE_SPELLINGS))
def test_verifier_refuses_any_line_that_is_not_exactly_its_canonical_form(
    history, jwks, tmp_path, spelling
):
    _, files = export(tmp_path)
    assert verify(files["jsonl"], jwks).ok
    kind, change = OTHER_LINE_SPELLINGS[spelling]
    _respell_line(files, kind, change)
    report = verify(files["jsonl"], jwks)
    assert not report.ok, f"{spelling}: accepted bytes nobody signed"


def test_export_files_are_readable_by_the_service_only(history, settings, tmp_path):
    """Audit exports (who downloaded what, from where): 0600 files in 0700 folders,
    whatever the umask."""
    root = tmp_path / "export-root"
    shipped = configured.STORAGES["exports"]
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": shipped["BACKEND"],
            "OPTIONS": {**shipped["OPTIONS"], "location": str(root)},
        },
    }
    previous = os.umask(0o022)
    try:
        done = write_export(request_export(actor=f.staff("Compliance"), filters={}).pk)
    finally:
        os.umask(previous)
    written = [root / meta["name"] for meta in done.files.values()]
    assert len(written) == 3 and all(p.is_file() for p in written)
    paths = [root, *root.rglob("*")]
    wrong = {
        str(p): oct(stat.S_IMODE(p.stat().st_mode))
        for p in paths
        if stat.S_IMODE(p.stat().st_mode) != (0o700 if p.is_dir() else 0o600)
    }
    assert not wrong


# What an export holds, and the export as a Celery task runs it.


def test_time_and_exact_action_filters_choose_the_events(history, jwks, tmp_path):
    """The portal's form hands over datetimes; the export keeps them as ISO text."""
    before = AuditEvent.objects.order_by("id").last()
    since = timezone.now()
    actions.revoke_grant(actor=None, grant=history["grants"][1], reason="after the cut")
    until = timezone.now()
    f.partner("later")
    done, files = export(tmp_path, {"since": since, "until": until, "action": "grant.revoked"})
    assert done.filters == {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "action": "grant.revoked",
    }
    events = [r["event"] for r in lines(files["jsonl"]) if r["type"] == "event"]
    revoked = str(history["grants"][1].pk)
    assert [(e["action"], e["target_id"]) for e in events] == [("grant.revoked", revoked)]
    assert events[0]["id"] > before.pk
    assert verify(files["jsonl"], jwks).ok


def test_an_export_matching_nothing_is_ready_and_verifies(history, jwks, tmp_path):
    done, files = export(tmp_path, {"partner": "nobody"})
    assert (done.status, done.events) == ("ready", 0)
    assert [r["type"] for r in lines(files["jsonl"])] == ["header", "end"]
    report = verify(files["jsonl"], jwks)
    assert report.ok and report.events == 0


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"partner": "aurora", "actor": "ana"}, "Unknown filters: actor."),
        ({"since": "yesterday"}, "Bad filter: Invalid isoformat string: 'yesterday'"),
    ],
)
def test_the_export_action_refuses_filters_it_cannot_apply(history, filters, message):
    """Whoever calls it (portal, staff API, a script): nothing is recorded or queued."""
    with pytest.raises(ExportError) as refused:
        request_export(actor=f.staff("Compliance"), filters=filters)
    assert (refused.value.code, refused.value.message) == ("invalid", message)
    assert not AuditExport.objects.exists()


def test_the_export_action_refuses_a_person_without_the_export_permission(history):
    with pytest.raises(ExportError) as refused:
        request_export(actor=f.staff("Release manager"), filters={})
    assert refused.value.code == "forbidden"
    assert not AuditExport.objects.exists()
    assert not AuditEvent.objects.filter(action="audit.export_requested").exists()


def test_a_redelivered_export_task_leaves_the_written_export_alone(history):
    """Tasks are acknowledged late: a worker lost after writing runs the task again."""
    from accessctl.audit.tasks import write_audit_export

    requested = request_export(actor=f.staff("Compliance"), filters={})
    done = write_export(requested.pk)
    assert write_audit_export(requested.pk) == done.events
    assert AuditExport.objects.get(pk=done.pk).files == done.files
    assert AuditEvent.objects.filter(action="audit.exported", target_id=str(done.pk)).count() == 1


def test_a_rewritten_export_replaces_the_files_an_interrupted_attempt_left(history, jwks, tmp_path):
    """A worker that died after storing files but before marking the export ready leaves
    them behind: the retry stores its own under the same names, not beside them."""
    requested = request_export(actor=f.staff("Compliance"), filters={})
    name = f"audit-exports/{requested.pk}/audit-export-{requested.pk}.jsonl"
    storages["exports"].save(name, ContentFile(b"half an export"))
    done = write_export(requested.pk)
    assert done.files["jsonl"]["name"] == name
    copy = tmp_path / "export.jsonl"
    with storages["exports"].open(name, "rb") as handle:
        copy.write_bytes(handle.read())
    assert verify(copy, jwks).ok


def test_a_database_error_leaves_the_export_pending_for_the_retry(history):
    """OperationalError (here: the sealer's lock not granted in time) is the database's,
    retried by Celery; only other failures mark the export failed."""
    import psycopg

    from accessctl.audit.tasks import write_audit_export

    requested = request_export(actor=f.staff("Compliance"), filters={})
    s = connection.settings_dict
    holder = psycopg.connect(
        host=s["HOST"] or "127.0.0.1",
        port=s["PORT"] or 5432,
        user=s["USER"],
        password=s["PASSWORD"],
        dbname=s["NAME"],
        autocommit=True,
    )
    try:
        holder.execute("SELECT pg_advisory_lock(%s)", [sealing.LOCK])  # another sealer
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '50ms'")
        with pytest.raises(OperationalError):
            write_audit_export(requested.pk)
    finally:
        holder.close()
    assert AuditExport.objects.get(pk=requested.pk).status == "pending"


def test_an_export_whose_proof_nodes_are_read_in_batches_verifies(
    history, jwks, tmp_path, monkeypatch
):
    """Memory stays bounded on a large export: proof nodes are read and written a batch
    at a time (``FETCH``, here 3), each node once."""
    from accessctl.audit import exports

    monkeypatch.setattr(exports, "FETCH", 3)
    _, files = export(tmp_path, {"partner": "aurora"})
    keys = [(n[0], n[1]) for r in lines(files["jsonl"]) if r["type"] == "nodes" for n in r["nodes"]]
    assert len(keys) > 3 * 2 and len(set(keys)) == len(keys)
    assert verify(files["jsonl"], jwks).ok


def test_an_export_of_events_far_apart_in_a_large_log_verifies(jwks, tmp_path):
    """Events hundreds of leaves apart need proof nodes far apart on each level: they are
    read as separate index ranges, and only those."""
    first = f.partner("first")
    for _ in range(600):
        record(AuditAction.PARTNER_UPDATED, actor=None)
    actions.suspend_partner(actor=None, partner=first, reason="far apart")
    done, files = export(tmp_path, {"partner": "first"})
    assert done.events == AuditEvent.objects.filter(partner=first).count() >= 2
    leaves = [r["leaf_index"] for r in lines(files["jsonl"]) if r["type"] == "event"]
    assert leaves[-1] - leaves[0] > 600
    nodes = [n for r in lines(files["jsonl"]) if r["type"] == "nodes" for n in r["nodes"]]
    assert len(nodes) < 100  # the proofs' nodes, not the ~1,200 of the whole tree
    report = verify(files["jsonl"], jwks)
    assert report.ok and report.events == done.events


# The verifier: lines and headers that are not the exporter's.


def test_verifier_names_an_event_spliced_in_from_outside_the_export(history, jwks, tmp_path):
    """An event of the log that the filters left out is not made part of the export by
    adding its line: the manifest signs which leaves the export holds."""
    _, everything = export(tmp_path / "all")
    _, files = export(tmp_path / "aurora", {"partner": "aurora"})
    chosen = {r["leaf_index"] for r in lines(files["jsonl"]) if r["type"] == "event"}
    outsider = next(
        r
        for r in lines(everything["jsonl"])
        if r["type"] == "event" and r["leaf_index"] not in chosen
    )

    def splice(rs):
        rs.insert(event_lines(rs)[-1] + 1, outsider)

    tampered(files, splice)
    failures = verify(files["jsonl"], jwks).failures
    assert any(
        f"(leaf {outsider['leaf_index']}, id {outsider['event']['id']}): inserted (not among" in x
        for x in failures
    ), failures


def test_verifier_names_lines_it_cannot_read_by_number(history, jwks, tmp_path):
    _, files = export(tmp_path)
    raw = files["jsonl"].read_bytes().splitlines(keepends=True)
    raw[2:2] = [b"not json at all\n", b'{"type":"comment","text":"hi"}\n']
    files["jsonl"].write_bytes(b"".join(raw))
    failures = verify(files["jsonl"], jwks).failures
    assert "line 3: not JSON (modified or truncated)" in failures
    assert "line 4: unknown line type 'comment'" in failures


def test_verifier_refuses_a_manifest_without_its_signature(history, jwks, tmp_path):
    _, files = export(tmp_path)
    tampered(files, lambda rs: rs[0]["manifest"].pop("signature"))
    assert "manifest: no signature" in verify(files["jsonl"], jwks).failures


def test_verifier_refuses_a_header_that_drops_the_checkpoint_the_manifest_names(
    history, jwks, tmp_path
):
    """The proofs are against the manifest's checkpoint: a header offering only an older
    (also genuine) checkpoint would have them checked against the wrong root."""
    sealing.seal()
    f.partner("later")
    _, files = export(tmp_path)

    def drop_last(rs):
        rs[0]["checkpoints"] = rs[0]["checkpoints"][:1]
        rs[0]["consistency"] = {}

    tampered(files, drop_last)
    failures = verify(files["jsonl"], jwks).failures
    assert failures == ["manifest: names another checkpoint than the header's last one"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_size_another_sealer_signed_meanwhile_is_not_signed_again(monkeypatch):
    """Two sealers (the beat task and an export, say): this one has appended its leaves
    when the other appends one more and signs the new size. This one then finds that size
    signed and signs nothing: one checkpoint per tree size."""
    import threading

    f.partner("sealed-twice")
    real_lock = sealing._lock_sealer
    calls, theirs = [], []

    def the_other_sealer() -> None:
        try:
            record(AuditAction.PARTNER_UPDATED, actor=None)
            theirs.append(sealing.seal())
        finally:
            connection.close()

    def lock() -> None:
        if threading.current_thread() is threading.main_thread():
            calls.append(1)
            if len(calls) == 3:  # appended, found nothing more; about to sign
                other = threading.Thread(target=the_other_sealer)
                other.start()
                other.join()
        real_lock()

    monkeypatch.setattr(sealing, "_lock_sealer", lock)
    assert sealing.seal() is None
    (checkpoint,) = theirs
    assert checkpoint.tree_size == AuditLeaf.objects.count() == AuditEvent.objects.count()
    assert list(AuditCheckpoint.objects.values_list("tree_size", flat=True)) == [
        checkpoint.tree_size
    ]


def test_the_commands_seal_and_verify_an_export(history, jwks, tmp_path, capsys):
    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("seal_audit_log", stdout=out)
    call_command("seal_audit_log", stdout=out)
    assert out.getvalue() == (
        f"Sealed: tree size {AuditEvent.objects.count()}.\nNothing new to seal.\n"
    )
    done, files = export(tmp_path)
    verify_command = ["verify_audit_export", str(files["jsonl"]), "--public-key"]
    capsys.readouterr()
    call_command(*verify_command, str(jwks))
    assert capsys.readouterr().out == (
        f"OK {done.events} events verified against the signed checkpoints\n"
    )
    tampered(files, lambda rs: rs[event_lines(rs)[0]]["event"].update(action="x"))
    with pytest.raises(CommandError, match="the export does not verify"):
        call_command(*verify_command, str(jwks))
    assert capsys.readouterr().out.startswith("FAIL event at line 2 ")
    with pytest.raises(CommandError, match="cannot verify"):
        call_command(*verify_command, str(tmp_path / "no-key.json"))


def _nodes_lines(records):
    return [i for i, r in enumerate(records) if r["type"] == "nodes"]


def _second_end(rs):
    rs.append(dict(rs[-1]))


def _nodes_after_end(rs):
    rs.append(json.loads(json.dumps(rs[_nodes_lines(rs)[0]])))


def _end_before_nodes(rs):  # header, events, end, nodes, end
    rs.insert(_nodes_lines(rs)[0], dict(rs[-1]))


def _event_after_nodes(rs):
    moved = rs.pop(event_lines(rs)[-1])
    rs.insert(len(rs) - 1, moved)  # before the end line


def _second_header(rs):
    rs.insert(1, json.loads(json.dumps(rs[0])))


def _unused_node(rs):
    nodes = rs[_nodes_lines(rs)[0]]["nodes"]
    nodes.append([0, 10**6, nodes[0][2]])


def _duplicated_node(rs):
    nodes = rs[_nodes_lines(rs)[0]]["nodes"]
    nodes.append(list(nodes[0]))


def _a_line_without_a_type(rs):
    rs.insert(len(rs) - 1, {"type": 5})


STRUCTURE_CHANGES = {
    "a second end line": (_second_end, "a line after the end line"),
    "a nodes line after the end": (_nodes_after_end, "a line after the end line"),
    "header, events, end, nodes, end": (_end_before_nodes, "a line after the end line"),
    "an event line after the nodes": (_event_after_nodes, "an event line after the proof"),
    "a second header": (_second_header, "a second header line"),
    "an unused node": (_unused_node, "is no proof node of the exported events"),
    "a node stated twice": (_duplicated_node, "is stated twice"),
    "a line of no known type": (_a_line_without_a_type, "unknown line type 5"),
}


@pytest.mark.parametrize("case", sorted(STRUCTURE_CHANGES))
def test_verifier_accepts_one_structure_only(history, jwks, tmp_path, case):
    """header, event lines, nodes lines (each node needed, once), end: any other line is
    named as a modification, whatever it holds."""
    change, why = STRUCTURE_CHANGES[case]
    _, files = export(tmp_path)
    assert verify(files["jsonl"], jwks).ok
    tampered(files, change)
    failures = verify(files["jsonl"], jwks).failures
    assert failures, "a changed structure verified"
    assert any(re.match(r"line \d+: ", x) and why in x for x in failures), failures
