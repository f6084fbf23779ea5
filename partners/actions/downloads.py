import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from accessctl.actors import Actor
from accessctl.audit.events import AuditAction, event, insert_sql, record
from accessctl.audit.models import AuditEvent, Outcome
from accessctl.db import hot_cursor
from accessctl.metrics import DEBITED, DECISIONS
from partners.decisions import Decision, Reason
from partners.models import Artifact, DownloadLease, Grant
from partners.rules import decide, download_facts
from partners.rules.leases import LeaseRead, LeaseState, lease_charge

from ._common import now

__all__ = ["FileAnswer", "FileAsk", "authorize_download", "authorize_downloads"]

# The debit, its audit event and the lease, as one statement (the hot path of every
# download). One statement is atomic: the event and the lease change exist exactly when
# the debit happened. The row lock and PostgreSQL's re-check of the WHERE clause after it
# make the debit exact under concurrency, and a revocation committed before it is always
# seen. The lease row is locked (SELECT ... FOR UPDATE) before its charge is computed, so
# two requests for the same file never both take the same bytes as free.
_DEBIT = """
    WITH debit AS (
        UPDATE partners_grant SET bytes_used = bytes_used + %s
        WHERE id = %s AND status = 'active' AND bytes_used + %s <= quota_bytes
        RETURNING id
    )
"""

_LEASE = """
    , lease AS (
        UPDATE partners_downloadlease
        SET opened_at = %s, expires_at = %s, covered = %s, reauthorizations = %s
        WHERE id = %s AND EXISTS (SELECT 1 FROM debit)
    )
"""

_DEBIT_ONLY = """
    UPDATE partners_grant SET bytes_used = bytes_used + %s
    WHERE id = %s AND status = 'active' AND bytes_used + %s <= quota_bytes
"""


def _debit(
    grant: Grant,
    charge: int,
    authorized: AuditEvent,
    lease: tuple[DownloadLease, LeaseState] | None = None,
) -> bool:
    """Debit ``charge`` bytes, write ``authorized`` and store ``lease`` (the row and its
    new state) atomically; False if the debit failed (then nothing is written)."""
    params = [charge, grant.pk, charge]
    if connection.vendor == "postgresql":
        sql, lease_params = _DEBIT, []
        if lease is not None:
            row, state = lease
            covered = json.dumps([list(i) for i in state.covered])
            sql += _LEASE
            lease_params = [
                state.opened_at,
                state.expires_at,
                covered,
                state.reauthorizations,
                row.pk,
            ]
        insert, values = insert_sql(authorized, source="debit")
        with hot_cursor() as cursor:  # one statement: no extra round trips
            cursor.execute(sql + insert, [*params, *lease_params, *values])
            return bool(cursor.rowcount)
    # SQLite (the embedded default) has no data-modifying CTEs: the same writes, one
    # transaction (SQLite serializes writers, so the debit is exact there too).
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_DEBIT_ONLY, params)
        if not cursor.rowcount:
            return False
        authorized.save(force_insert=True)
        if lease is not None:
            row, state = lease
            row.opened_at = state.opened_at or row.opened_at  # always set once charged
            row.expires_at = state.expires_at or row.expires_at
            row.covered = [list(i) for i in state.covered]
            row.reauthorizations = state.reauthorizations
            row.save(update_fields=["opened_at", "expires_at", "covered", "reauthorizations"])
    return True


def _locked_lease(grant: Grant, artifact: Artifact, at: datetime) -> DownloadLease:
    """The (grant, file) lease row, locked until the transaction ends; a new file's row
    starts expired, so its first request opens the lease."""
    lease, _ = DownloadLease.objects.select_for_update().get_or_create(
        grant=grant, artifact=artifact, defaults={"opened_at": at, "expires_at": at}
    )
    return lease


def authorize_download(
    *,
    actor: Actor,
    grant: Grant,
    artifact: Artifact,
    requested_bytes: int,
    client_address: str | None,
    offset: int | None = None,
    token_facts: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    fresh: bool = False,
) -> Decision:
    """Decide one download from the committed rows, debit the quota, record the decision.

    ``requested_bytes`` (bytes) starting at byte ``offset`` of ``artifact``: with an
    ``offset`` (every HTTP download: 0 for the whole file), the charge is what the
    file's lease does not cover yet (``partners.rules.leases``: a retry, a resume or a
    refreshed presigned URL does not pay twice); without one, the full length.
    ``fresh=True`` says the caller read ``grant`` (with partner, window, checkpoint and
    release) in this request (``queries.download_target``), so it is not read again; the
    file's lease read with it (``artifact.lease_read``) then saves a round trip on
    PostgreSQL (``_charge_read``).

    The debit is one conditional UPDATE: under concurrency PostgreSQL re-checks the
    condition after taking the row lock, so N racing requests never authorize more bytes
    than the quota holds, and a revocation committed before the UPDATE is always seen.
    The audit event (``download.authorized`` or ``download.denied``) carries the bytes
    requested and the bytes ``charged``.
    """
    at = now()
    if not fresh:  # the caller did not just read the grant and its relations
        grant = Grant.objects.select_related("partner", "window", "checkpoint__release").get(
            pk=grant.pk
        )
    partner = grant.partner
    token = token_facts or {}

    def facts(charge: int) -> Any:
        return download_facts(
            grant, now=at, client_address=client_address, requested_bytes=charge, **token
        )

    audit: dict[str, Any] = {
        "actor": actor,
        "target": grant,
        "partner": partner,
        "changes": {"artifact": artifact.path, "bytes": requested_bytes, **(details or {})},
        "at": at,
        "client_address": client_address,
    }
    decision = decide(facts(0))  # everything but the quota, before any lease is touched
    if decision.allowed:
        if offset is None or not requested_bytes:  # no lease: the full length, one statement
            debited = _debit(
                grant, requested_bytes, event(AuditAction.DOWNLOAD_AUTHORIZED, **audit)
            )
            decision, charged = _quota(grant, facts(requested_bytes), debited, requested_bytes)
        elif connection.vendor == "postgresql" and not connection.in_atomic_block:
            read, artifact.lease_read = artifact.lease_read, None  # used once, if at all
            charged_read = None
            if read is not None:
                charged_read = _charge_read(
                    grant, artifact, offset, requested_bytes, at, facts, audit, read
                )
            if charged_read is not None:
                decision, charged = charged_read
            else:
                decision, charged = _charge_pipelined(
                    grant, artifact, offset, requested_bytes, at, facts, audit
                )
        else:
            decision, charged = _charge_locked(
                grant, artifact, offset, requested_bytes, at, facts, audit
            )
        if decision.allowed:
            DECISIONS.labels("allowed", "").inc()
            DEBITED.inc(charged)
            # What the quota rule reads next, when the caller asks again with this grant
            # (``authorize_downloads``); the debit itself was exact in the database.
            grant.bytes_used += charged
            return decision
    record(
        AuditAction.DOWNLOAD_DENIED,
        outcome=Outcome.DENIED,
        reason=str(decision.reason),
        **audit,
    )
    DECISIONS.labels("denied", str(decision.reason)).inc()
    return decision


def _lease_charge(state: LeaseState, offset: int, requested_bytes: int, at: datetime) -> Any:
    return lease_charge(
        state,
        start=offset,
        end=offset + requested_bytes,
        now=at,
        seconds=settings.ACCESSCTL_DOWNLOAD_LEASE_SECONDS,
        max_reauthorizations=settings.ACCESSCTL_DOWNLOAD_LEASE_REAUTHORIZATIONS,
    )


def _quota(grant: Grant, facts: Any, debited: bool | None, charge: int) -> tuple[Decision, int]:
    """The decision after a debit attempt (``None``: the rules refused before it)."""
    if debited:
        return decide(facts), charge
    if debited is None:
        return decide(facts), 0
    # The grant changed between reading it and debiting it: say how.
    status = Grant.objects.values_list("status", flat=True).get(pk=grant.pk)
    reason = Reason.GRANT_REVOKED if status == Grant.Status.REVOKED else Reason.QUOTA_EXHAUSTED
    return Decision(allowed=False, reason=reason), 0


def _charge_locked(
    grant: Grant,
    artifact: Artifact,
    offset: int,
    requested_bytes: int,
    at: datetime,
    facts: Any,
    audit: dict[str, Any],
) -> tuple[Decision, int]:
    """The lease's charge, decided and debited in a transaction holding the lease row's
    lock (SQLite, and PostgreSQL inside a caller's transaction)."""
    with transaction.atomic():
        row = _locked_lease(grant, artifact, at)
        state = LeaseState(
            opened_at=row.opened_at,
            expires_at=row.expires_at,
            covered=[(a, b) for a, b in row.covered],
            reauthorizations=row.reauthorizations,
        )
        result = _lease_charge(state, offset, requested_bytes, at)
        audit["changes"] = {
            **audit["changes"],
            "charged": result.charge,
            "lease_renewed": result.renewed,
        }
        if not decide(facts(result.charge)).allowed:
            return _quota(grant, facts(result.charge), None, 0)
        authorized = event(AuditAction.DOWNLOAD_AUTHORIZED, **audit)
        debited = _debit(grant, result.charge, authorized, (row, result.lease))
    return _quota(grant, facts(result.charge), debited, result.charge)


# The same on PostgreSQL in autocommit (every request): two round trips instead of four.
# BEGIN travels with the statement that takes the lease row's lock (an upsert: a new
# file's row is made, an existing one locked, either way returned), and COMMIT with the
# debit statement, so the transaction costs no round trips of its own.
_BEGIN_AND_LOCK_LEASE = """
    BEGIN;
    INSERT INTO partners_downloadlease
        (grant_id, artifact_id, opened_at, expires_at, covered, reauthorizations)
    VALUES (%s, %s, %s, %s, '[]', 0)
    ON CONFLICT (grant_id, artifact_id) DO UPDATE SET grant_id = EXCLUDED.grant_id
    RETURNING id, opened_at, expires_at, covered, reauthorizations
"""


def _charge_pipelined(
    grant: Grant,
    artifact: Artifact,
    offset: int,
    requested_bytes: int,
    at: datetime,
    facts: Any,
    audit: dict[str, Any],
) -> tuple[Decision, int]:
    """``_charge_locked``, with the transaction's BEGIN and COMMIT sent along with its
    two statements (Django's connection is in autocommit here, so it is not in one of
    Django's transactions; any error rolls back before it propagates)."""
    with connection.cursor() as cursor:
        try:
            cursor.execute(_BEGIN_AND_LOCK_LEASE, [grant.pk, artifact.pk, at, at])
            cursor.nextset()
            lease_id, opened_at, expires_at, covered, reauthorizations = cursor.fetchone()
            state = LeaseState(
                opened_at=opened_at,
                expires_at=expires_at,
                # Django reads jsonb as text (its JSONField decodes it), so this does too.
                covered=[(a, b) for a, b in json.loads(covered)],
                reauthorizations=reauthorizations,
            )
            result = _lease_charge(state, offset, requested_bytes, at)
            audit["changes"] = {
                **audit["changes"],
                "charged": result.charge,
                "lease_renewed": result.renewed,
            }
            if not decide(facts(result.charge)).allowed:
                cursor.execute("ROLLBACK")
                return _quota(grant, facts(result.charge), None, 0)
            new = result.lease
            insert, values = insert_sql(
                event(AuditAction.DOWNLOAD_AUTHORIZED, **audit), source="debit"
            )
            cursor.execute(
                _DEBIT + _LEASE + insert + ";\n    COMMIT",
                [
                    result.charge,
                    grant.pk,
                    result.charge,
                    new.opened_at,
                    new.expires_at,
                    json.dumps([list(i) for i in new.covered]),
                    new.reauthorizations,
                    lease_id,
                    *values,
                ],
            )
            debited = bool(cursor.rowcount)
        except BaseException:
            if connection.connection is not None and not connection.connection.closed:
                connection.connection.rollback()
            raise
    return _quota(grant, facts(result.charge), debited, result.charge)


# One statement for the lease, its debit and its audit event, when the lease was read with
# the grant (``queries.download_target``): the charge is computed from that read, and the
# statement writes only if the lease row still holds what was read. ``held`` locks the row
# with its state as the condition: a concurrent change (committed, or waited for under the
# lock) makes PostgreSQL re-check the condition on the new version, which then fails, so
# nothing is written and the caller decides again under the lock (``_charge_pipelined``).
# The debit is conditional on ``held``, the lease's change on the debit, the event on it.
_HELD_DEBIT = """
    WITH held AS (
        SELECT id FROM partners_downloadlease
        WHERE id = %s AND opened_at = %s AND expires_at = %s AND covered = %s::jsonb
            AND reauthorizations = %s
        FOR UPDATE
    ), debit AS (
        UPDATE partners_grant SET bytes_used = bytes_used + %s
        WHERE id = %s AND status = 'active' AND bytes_used + %s <= quota_bytes
            AND EXISTS (SELECT 1 FROM held)
        RETURNING id
    )
"""


def _charge_read(
    grant: Grant,
    artifact: Artifact,
    offset: int,
    requested_bytes: int,
    at: datetime,
    facts: Any,
    audit: dict[str, Any],
    read: LeaseRead,
) -> tuple[Decision, int] | None:
    """The lease's charge from ``read``, debited with the lease's change and the audit
    event in one statement (PostgreSQL, autocommit); ``None`` when that statement wrote
    nothing (the lease changed since it was read, or the debit failed), or the file has
    no lease row yet: the caller then decides again under the lease row's lock, which
    also words a refusal. A refusal by the rules on the read is decided again the same
    way, so a stale read never refuses.

    A file's first request keeps the two-statement path: its row must be made, and a
    statement that debits the grant and then inserts the row would take the two locks in
    the other order than ``_charge_pipelined`` (lease row, then grant row), which
    deadlocks under concurrency (measured: the 64-way race of new ranges).
    """
    if read.id is None:
        return None
    result = _lease_charge(read.state, offset, requested_bytes, at)
    if not decide(facts(result.charge)).allowed:
        return None
    changes = {**audit["changes"], "charged": result.charge, "lease_renewed": result.renewed}
    insert, values = insert_sql(
        event(AuditAction.DOWNLOAD_AUTHORIZED, **{**audit, "changes": changes}), source="debit"
    )
    new = result.lease
    covered = json.dumps([list(i) for i in new.covered])
    debit = [result.charge, grant.pk, result.charge]
    old = read.state
    sql = _HELD_DEBIT + _LEASE + insert
    params: list[Any] = [read.id, old.opened_at, old.expires_at]
    params += [json.dumps([list(i) for i in old.covered]), old.reauthorizations, *debit]
    params += [new.opened_at, new.expires_at, covered, new.reauthorizations, read.id]
    params += values
    with hot_cursor() as cursor:
        cursor.execute(sql, params)
        if not cursor.rowcount:
            return None
    audit["changes"] = changes
    return decide(facts(result.charge)), result.charge


@dataclass(frozen=True, slots=True)
class FileAsk:
    """One file of a batch authorization: its ``path``, the ``artifact`` that path names
    (``None``: the checkpoint has no such file), and the bytes ``start``..``end``
    (inclusive, as in HTTP's Range; ``None``: from the first byte, to the last)."""

    path: str
    artifact: Artifact | None
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True, slots=True)
class FileAnswer:
    """The decision for one ``FileAsk``: ``code`` is ``""`` when authorized (bytes
    ``start``..``end``, inclusive; ``end < start`` for a 0-byte file), else the refusal's
    stable code, with ``status`` and ``detail`` as the single-file GET answers it."""

    ask: FileAsk
    code: str = ""
    status: int = 200
    detail: str = ""
    start: int = 0
    end: int = -1

    @property
    def allowed(self) -> bool:
        return not self.code


def authorize_downloads(
    *,
    actor: Actor,
    grant: Grant,
    asks: Sequence[FileAsk],
    client_address: str | None,
    token_facts: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> list[FileAnswer]:
    """Decide each file of ``asks`` as its own single-file download would be decided:
    each is ``authorize_download`` (its decision, its debit under the file's lease, its
    ``download.authorized`` or ``download.denied``), one after another, each committed on
    its own; a file the checkpoint lacks (404 ``file_not_found``), a partner's copy of a
    fingerprinted file not written yet (503 ``variant_not_ready``) or a range starting past
    a file's end (416 ``range_not_satisfiable``) is refused with its ``download.denied``.

    ``grant`` was read in this request with its partner, window, checkpoint and release
    (``queries.download_target``), and its grant-level refusals were answered already;
    every file's decision reads it from that state. On PostgreSQL (``_authorize_bulk``)
    the files are decided in one transaction holding the grant's row, read there (a
    revocation or an exhausted quota committed before refuses them all, one committed
    after waits); otherwise each file's debit re-checks the committed row, so one
    committed meanwhile refuses the files after it. Answers in the order of ``asks``.
    """
    from accessctl.codes import status_of  # the registry's status, as the GET answers

    if connection.vendor == "postgresql":
        bulk = _authorize_bulk(
            actor=actor,
            grant=grant,
            asks=asks,
            client_address=client_address,
            token_facts=token_facts or {},
            details=details or {},
        )
        if bulk is not None:
            return bulk
    answers: list[FileAnswer] = []
    for ask in asks:
        refusal = _ask_refusal(ask)
        if refusal is not None:
            code, detail = refusal
            record(
                AuditAction.DOWNLOAD_DENIED,
                actor=actor,
                target=grant,
                partner=grant.partner,
                outcome=Outcome.DENIED,
                reason=code,
                changes={"artifact": ask.path, "bytes": 0, "range": _range(ask), **(details or {})},
                at=now(),
                client_address=client_address,
            )
            answers.append(FileAnswer(ask, code, status_of(code), detail))
            continue
        artifact = ask.artifact
        assert artifact is not None  # noqa: S101 (``_ask_refusal`` refused a missing file)
        start = ask.start or 0
        end = artifact.size - 1 if ask.end is None else min(ask.end, artifact.size - 1)
        decision = authorize_download(
            actor=actor,
            grant=grant,
            artifact=artifact,
            requested_bytes=end - start + 1,
            offset=start,
            client_address=client_address,
            token_facts=token_facts,
            fresh=True,
            details={"range": _range(ask, end), **(details or {})},
        )
        if decision:
            answers.append(FileAnswer(ask, start=start, end=end))
        else:
            reason = str(decision.reason)
            answers.append(FileAnswer(ask, reason, status_of(reason), decision.detail))
    return answers


# The batch's leases, made or locked in one statement. PostgreSQL takes the rows' locks in
# the order of VALUES, which the caller sorts by artifact id: two batches lock their
# common files in the same order, and a single-file request locks one lease, so lease
# locks never wait in a cycle; every request takes the grant row's lock after its leases.
_LOCK_LEASES = """
    INSERT INTO partners_downloadlease
        (grant_id, artifact_id, opened_at, expires_at, covered, reauthorizations)
    VALUES {rows}
    ON CONFLICT (grant_id, artifact_id) DO UPDATE SET grant_id = EXCLUDED.grant_id
    RETURNING id, artifact_id, opened_at, expires_at, covered, reauthorizations,
        xmax = 0
"""

# The lock an UPDATE takes (a single request's debit, a revocation): it waits for them and
# they for it, while the key-share locks of rows referencing the grant (a new lease's
# foreign key, checked at commit or at once) neither block it nor are blocked by it.
_LOCK_GRANT = """
    SELECT status, bytes_used, quota_bytes FROM partners_grant WHERE id = %s
    FOR NO KEY UPDATE
"""

_STORE_LEASES = """
    UPDATE partners_downloadlease AS l
    SET opened_at = v.opened_at, expires_at = v.expires_at, covered = v.covered,
        reauthorizations = v.reauthorizations
    FROM (VALUES {rows}) AS v (id, opened_at, expires_at, covered, reauthorizations)
    WHERE l.id = v.id
"""


def _authorize_bulk(
    *,
    actor: Actor,
    grant: Grant,
    asks: Sequence[FileAsk],
    client_address: str | None,
    token_facts: dict[str, Any],
    details: dict[str, Any],
) -> list[FileAnswer] | None:
    """``authorize_downloads`` on PostgreSQL in a handful of statements, whatever the
    number of files: the same answers, charges, lease changes and audit events as
    deciding the files one after another with nothing else running meanwhile.

    In one transaction: the files' lease rows are made or locked (sorted by artifact id,
    one statement), then the grant row is locked and read (status, quota, bytes used), so
    nothing else debits the grant or touches these leases until the commit. Each file is
    then decided in the order of ``asks`` from that state, charged with
    ``lease_charge``, and refused once the quota cannot hold its charge (a later, cheaper
    file may still fit, as it would one request later); the grant is debited by the total
    (one UPDATE), the leases stored (one UPDATE) and every file's event written (one
    INSERT). ``None`` when the grant's rules refuse before any quota (then the files are
    decided one by one, each with its refusal, as before).
    """
    from accessctl.codes import status_of

    at = now()

    def facts(charge: int) -> Any:
        return download_facts(
            grant, now=at, client_address=client_address, requested_bytes=charge, **token_facts
        )

    if not decide(facts(0)).allowed:
        return None
    spans: dict[int, tuple[int, int]] = {}  # ask index -> (start, end), for files decided
    for index, ask in enumerate(asks):
        if _ask_refusal(ask) is None:
            artifact = ask.artifact
            assert artifact is not None  # noqa: S101 (``_ask_refusal`` refused a missing file)
            start = ask.start or 0
            end = artifact.size - 1 if ask.end is None else min(ask.end, artifact.size - 1)
            spans[index] = (start, end)
    leased = sorted(
        {asks[i].artifact.pk for i, (start, end) in spans.items() if end >= start}  # type: ignore[union-attr]
    )
    if len(leased) != sum(1 for start, end in spans.values() if end >= start):
        return None  # a file named twice (never from the API): one by one
    answers: list[FileAnswer] = []
    built: list[AuditEvent] = []
    stored: list[tuple[int, LeaseState]] = []
    debited = 0
    with transaction.atomic(), connection.cursor() as cursor:
        leases: dict[int, tuple[int, LeaseState]] = {}
        made: set[int] = set()  # lease rows made by this statement (xmax = 0: inserted)
        if leased:
            rows = ", ".join(["(%s, %s, %s, %s, '[]'::jsonb, 0)"] * len(leased))
            params: list[Any] = []
            for artifact_id in leased:
                params += [grant.pk, artifact_id, at, at]
            cursor.execute(_LOCK_LEASES.format(rows=rows), params)
            for (
                lease_id,
                artifact_id,
                opened,
                expires,
                covered,
                reauths,
                new_row,
            ) in cursor.fetchall():
                if new_row:
                    made.add(lease_id)
                intervals = json.loads(covered) if isinstance(covered, str) else covered
                leases[artifact_id] = (
                    lease_id,
                    LeaseState(
                        opened_at=opened,
                        expires_at=expires,
                        covered=[(a, b) for a, b in intervals],
                        reauthorizations=reauths,
                    ),
                )
        cursor.execute(_LOCK_GRANT, [grant.pk])
        grant.status, grant.bytes_used, grant.quota_bytes = cursor.fetchone()
        for index, ask in enumerate(asks):
            audit: dict[str, Any] = {
                "actor": actor,
                "target": grant,
                "partner": grant.partner,
                "at": at,
                "client_address": client_address,
            }
            if index not in spans:
                code, detail = _ask_refusal(ask) or ("", "")
                audit["changes"] = {"artifact": ask.path, "bytes": 0, "range": _range(ask)}
                audit["changes"].update(details)
                built.append(
                    event(AuditAction.DOWNLOAD_DENIED, outcome=Outcome.DENIED, reason=code, **audit)
                )
                answers.append(FileAnswer(ask, code, status_of(code), detail))
                continue
            artifact = ask.artifact
            assert artifact is not None  # noqa: S101
            start, end = spans[index]
            requested = end - start + 1
            changes: dict[str, Any] = {
                "artifact": artifact.path,
                "bytes": requested,
                "range": _range(ask, end),
                **details,
            }
            charge, new = 0, None
            if requested:  # an empty file has no lease: it is charged its 0 bytes
                lease_id, state = leases[artifact.pk]
                result = _lease_charge(state, start, requested, at)
                charge, new = result.charge, (lease_id, result.lease)
                changes = {**changes, "charged": charge, "lease_renewed": result.renewed}
            audit["changes"] = changes
            decision = decide(facts(charge))
            if decision.allowed:
                built.append(event(AuditAction.DOWNLOAD_AUTHORIZED, **audit))
                grant.bytes_used += charge
                debited += charge
                if new is not None:
                    stored.append(new)
                    made.discard(new[0])
                answers.append(FileAnswer(ask, start=start, end=end))
                continue
            reason = str(decision.reason)
            built.append(
                event(AuditAction.DOWNLOAD_DENIED, outcome=Outcome.DENIED, reason=reason, **audit)
            )
            answers.append(FileAnswer(ask, reason, status_of(reason), decision.detail))
        if debited:
            cursor.execute(
                "UPDATE partners_grant SET bytes_used = bytes_used + %s WHERE id = %s",
                [debited, grant.pk],
            )
        if stored:
            rows = ", ".join(
                ["(%s::bigint, %s::timestamptz, %s::timestamptz, %s::jsonb, %s::integer)"]
                * len(stored)
            )
            params = []
            for lease_id, state in stored:
                covered = json.dumps([list(i) for i in state.covered])
                params += [lease_id, state.opened_at, state.expires_at, covered]
                params.append(state.reauthorizations)
            cursor.execute(_STORE_LEASES.format(rows=rows), params)
        if made:  # a refused new file leaves no lease, as its own request would not
            cursor.execute("DELETE FROM partners_downloadlease WHERE id = ANY(%s)", [list(made)])
        AuditEvent.objects.bulk_create(built)
    for index, answer in enumerate(answers):  # once committed, as one by one counts them
        if index in spans:
            DECISIONS.labels(
                *(("allowed", "") if answer.allowed else ("denied", answer.code))
            ).inc()
    DEBITED.inc(debited)
    return answers


def _range(ask: FileAsk, end: int | None = None) -> str:
    if ask.start is None and ask.end is None:
        return ""
    last = ask.end if end is None else end
    return f"{ask.start or 0}-{'' if last is None else last}"


def _ask_refusal(ask: FileAsk) -> tuple[str, str] | None:
    """``(code, detail)`` refusing ``ask`` before any decision, as the GET refuses it."""
    if ask.artifact is None:
        return "file_not_found", f"The checkpoint has no file {ask.path!r}."
    if ask.artifact.variant_status not in (None, "ready"):
        return "variant_not_ready", (
            f"Your copy of {ask.path} is still being written (it is marked for your "
            "organisation); ask for it again later."
        )
    size = ask.artifact.size
    if (ask.start is not None or ask.end is not None) and (ask.start or 0) >= size:
        return "range_not_satisfiable", f"The file has {size} bytes."
    return None
