"""Audit actions and the one function that records them."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from django.db import connection, models
from django.utils import timezone

from accessctl.actors import Actor
from accessctl.middleware import current_context

from .models import AuditEvent, Outcome

__all__ = ["AuditAction", "event", "insert_sql", "record"]


class AuditAction(StrEnum):
    PARTNER_CREATED = "partner.created"
    PARTNER_UPDATED = "partner.updated"
    PARTNER_SUSPENDED = "partner.suspended"
    PARTNER_REINSTATED = "partner.reinstated"
    PARTNER_TERMINATED = "partner.terminated"
    RELEASE_CREATED = "release.created"
    RELEASE_UPDATED = "release.updated"
    RELEASE_WITHDRAWN = "release.withdrawn"
    CHECKPOINT_REGISTERED = "checkpoint.registered"
    CHECKPOINT_PULLED = "checkpoint.pulled"
    WINDOW_SET = "window.set"
    WINDOW_OPENED = "window.opened"
    WINDOW_CLOSED = "window.closed"
    WINDOW_ENDED = "window.ended"
    EMBARGO_LIFTED = "window.embargo_lifted"
    GRANT_REQUESTED = "grant.requested"
    GRANT_REQUEST_APPROVED = "grant_request.approved"
    GRANT_REQUEST_REJECTED = "grant_request.rejected"
    GRANT_REQUEST_REMINDED = "grant_request.reminded"
    GRANT_ISSUED = "grant.issued"
    GRANT_REVOKED = "grant.revoked"
    GRANT_EXPIRED = "grant.expired"
    REVOCATION_COMPLETED = "revocation.completed"
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"
    TOKEN_REJECTED = "token.rejected"
    TOKEN_USED = "token.used"
    TOKEN_INVITED = "token.invited"
    TOKEN_CLAIMED = "token.claimed"
    TOKEN_ROTATED = "token.rotated"
    MEMBER_ADDED = "member.added"
    MEMBER_REMOVED = "member.removed"
    CONTACT_ADDED = "contact.added"
    CONTACT_CHANGED = "contact.changed"
    CONTACT_REMOVED = "contact.removed"
    API_DENIED = "api.denied"
    SIGNING_KEY_ROTATED = "signing_key.rotated"
    SCHEDULE_CHANGED = "schedule.changed"
    SCHEDULE_CREATED = "schedule.created"
    DOWNLOAD_AUTHORIZED = "download.authorized"
    DOWNLOAD_DENIED = "download.denied"
    AUDIT_EXPORT_REQUESTED = "audit.export_requested"
    AUDIT_EXPORTED = "audit.exported"
    AUDIT_RETENTION_APPLIED = "audit.retention_applied"
    STAFF_SIGNED_IN = "staff.signed_in"
    STAFF_SIGN_IN_FAILED = "staff.sign_in_failed"
    # A refused action, recorded after its rollback (``partners.refusals``), per domain.
    CHECKPOINT_REFUSED = "checkpoint.refused"
    CONTACT_REFUSED = "contact.refused"
    GRANT_REFUSED = "grant.refused"
    GRANT_REQUEST_REFUSED = "grant_request.refused"
    MEMBER_REFUSED = "member.refused"
    PARTNER_REFUSED = "partner.refused"
    RELEASE_REFUSED = "release.refused"
    REVOCATION_REFUSED = "revocation.refused"
    SCHEDULE_REFUSED = "schedule.refused"
    TOKEN_REFUSED = "token.refused"
    WINDOW_REFUSED = "window.refused"
    ACCOUNT_REFUSED = "account.refused"
    SECOND_FACTOR_REFUSED = "second_factor.refused"
    AUDIT_REFUSED = "audit.refused"
    STAFF_LOCKOUT_CLEARED = "staff.lockout_cleared"
    ACCOUNT_CREATED = "account.created"
    ACCOUNT_CHANGED = "account.changed"
    ACCOUNT_PASSWORD_SET = "account.password_set"
    SECOND_FACTOR_ENROLLED = "second_factor.enrolled"
    SECOND_FACTOR_REMOVED = "second_factor.removed"
    DETECTION_REQUESTED = "detection.requested"
    DETECTION_FINISHED = "detection.finished"
    DETECTION_FAILED = "detection.failed"
    DETECTION_REFUSED = "detection.refused"
    # Leak attribution (docs/fingerprints.md): a partner's key commitment (never the key),
    # and its marked copy of a file written, or failed.
    FINGERPRINT_COMMITTED = "fingerprint.committed"
    VARIANT_READY = "variant.ready"
    VARIANT_FAILED = "variant.failed"


def _actor_label(actor: Actor) -> str:
    if actor is None:
        return "system"
    return str(actor.get_username())


def event(
    action: AuditAction,
    *,
    actor: Actor,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str = "",
    target_label: str = "",
    partner: models.Model | None = None,
    partner_id: int | None = None,
    outcome: Outcome = Outcome.SUCCESS,
    reason: str = "",
    changes: dict[str, Any] | None = None,
    at: datetime | None = None,
    client_address: str | None = None,
) -> AuditEvent:
    """One event, not yet saved: ``record`` saves it; a hot path may write it in the same
    statement as its change. ``changes`` must never hold a secret (token, key, password):
    callers pass field values of domain rows only."""
    context = current_context()
    if target is not None:
        target_type = target._meta.label_lower
        target_id = str(target.pk)
    return AuditEvent(
        occurred_at=at or timezone.now(),
        actor=actor if actor is not None and actor.pk else None,
        actor_label=_actor_label(actor),
        action=str(action),
        outcome=outcome,
        reason=reason,
        target_type=target_type,
        target_id=target_id,
        target_label=str(target)[:300] if target is not None else target_label[:300],
        partner_id=partner.pk if partner is not None else partner_id,
        client_address=client_address or context.client_address,
        request_id=context.request_id,
        # The client's own id, if it sent one: evidence of what it claimed, apart from the
        # server's request id.
        changes=(
            {**(changes or {}), "client_request_id": context.client_request_id}
            if context.client_request_id
            else changes or {}
        ),
    )


def record(action: AuditAction, **kwargs: Any) -> AuditEvent:
    """Write one event. Call inside the transaction of the change it describes."""
    built = event(action, **kwargs)
    built.save(force_insert=True)
    return built


def insert_sql(built: AuditEvent, *, source: str) -> tuple[str, list[Any]]:
    """``INSERT INTO <audit table> (...) SELECT <values> FROM <source>``: the event is
    written once per row of ``source`` (a CTE of the change), in the change's statement."""
    fields = [f for f in AuditEvent._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)
    values = [f.get_db_prep_save(getattr(built, f.attname), connection) for f in fields]
    placeholders = ", ".join(["%s"] * len(fields))
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    return f"INSERT INTO {table} ({columns}) SELECT {placeholders} FROM {source}", values  # noqa: S608
