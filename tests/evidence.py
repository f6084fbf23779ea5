"""Assertions about the evidence a refusal leaves: exactly one event, naming its target
and the reason."""

from accessctl.audit.models import AuditEvent

REFUSAL_SUFFIXES = (".refused", ".denied", ".rejected", ".sign_in_failed")


def last_event_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def the_refusal_since(before: int, code: str, action: str | None = None) -> AuditEvent:
    """The one event written since ``before``: a refusal recorded with ``code``, naming a
    target; fails if there is none, or more than one."""
    written = list(AuditEvent.objects.filter(id__gt=before).order_by("id"))
    refusals = [e for e in written if e.outcome != "success"]
    assert len(refusals) == 1, [(e.action, e.reason) for e in written]
    refusal = refusals[0]
    assert refusal.action.endswith(REFUSAL_SUFFIXES), refusal.action
    assert refusal.reason == code, (refusal.action, refusal.reason)
    assert refusal.target_type, refusal.action
    if action is not None:
        assert refusal.action == action, refusal.action
    return refusal
