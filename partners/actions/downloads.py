from typing import Any

from django.db import connection, transaction

from accessctl.actors import Actor
from accessctl.audit.events import AuditAction, event, insert_sql, record
from accessctl.audit.models import AuditEvent, Outcome
from accessctl.metrics import DEBITED, DECISIONS
from partners.decisions import Decision, Reason
from partners.models import Artifact, Grant
from partners.rules import decide, download_facts

from ._common import now

__all__ = ["authorize_download"]

# The debit and its audit event, as one statement (the hot path of every download). One
# statement is atomic: the event exists exactly when the debit happened. The row lock
# and PostgreSQL's re-check of the WHERE clause after it make the debit exact under
# concurrency, and a revocation committed before it is always seen.
_DEBIT = """
    WITH debit AS (
        UPDATE partners_grant SET bytes_used = bytes_used + %s
        WHERE id = %s AND status = 'active' AND bytes_used + %s <= quota_bytes
        RETURNING id
    )
"""


_DEBIT_ONLY = """
    UPDATE partners_grant SET bytes_used = bytes_used + %s
    WHERE id = %s AND status = 'active' AND bytes_used + %s <= quota_bytes
"""


def _debit(grant: Grant, requested_bytes: int, authorized: AuditEvent) -> bool:
    """Debit the quota and write ``authorized`` atomically; False if the debit failed."""
    params = [requested_bytes, grant.pk, requested_bytes]
    if connection.vendor == "postgresql":
        insert, values = insert_sql(authorized, source="debit")
        with connection.cursor() as cursor:  # one statement: no BEGIN/COMMIT round trips
            cursor.execute(_DEBIT + insert, [*params, *values])
            return bool(cursor.rowcount)
    # SQLite (the embedded default) has no data-modifying CTEs: two statements, one
    # transaction (SQLite serializes writers, so the debit is exact there too).
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_DEBIT_ONLY, params)
        if not cursor.rowcount:
            return False
        authorized.save(force_insert=True)
    return True


def authorize_download(
    *,
    actor: Actor,
    grant: Grant,
    artifact: Artifact,
    requested_bytes: int,
    client_address: str | None,
    token_facts: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    fresh: bool = False,
) -> Decision:
    """Decide one download from the committed rows, debit the quota, record the decision.

    ``fresh=True`` says the caller read ``grant`` (with partner, window, checkpoint and
    release) in this request (``queries.download_target``), so it is not read again.

    The debit is one conditional UPDATE: under concurrency PostgreSQL re-checks the
    condition after taking the row lock, so N racing requests never authorize more bytes
    than the quota holds, and a revocation committed before the UPDATE is always seen.
    """
    at = now()
    if not fresh:  # the caller did not just read the grant and its relations
        grant = Grant.objects.select_related("partner", "window", "checkpoint__release").get(
            pk=grant.pk
        )
    partner = grant.partner
    facts = download_facts(
        grant,
        now=at,
        client_address=client_address,
        requested_bytes=requested_bytes,
        **(token_facts or {}),
    )
    decision = decide(facts)
    audit: dict[str, Any] = {
        "actor": actor,
        "target": grant,
        "partner": partner,
        "changes": {"artifact": artifact.path, "bytes": requested_bytes, **(details or {})},
        "at": at,
        "client_address": client_address,
    }
    if decision.allowed:
        if _debit(grant, requested_bytes, event(AuditAction.DOWNLOAD_AUTHORIZED, **audit)):
            DECISIONS.labels("allowed", "").inc()
            DEBITED.inc(requested_bytes)
            return decision
        # The grant changed between reading it and debiting it: say how.
        status = Grant.objects.values_list("status", flat=True).get(pk=grant.pk)
        reason = Reason.GRANT_REVOKED if status == Grant.Status.REVOKED else Reason.QUOTA_EXHAUSTED
        decision = Decision(allowed=False, reason=reason)
    record(
        AuditAction.DOWNLOAD_DENIED,
        outcome=Outcome.DENIED,
        reason=str(decision.reason),
        **audit,
    )
    DECISIONS.labels("denied", str(decision.reason)).inc()
    return decision
