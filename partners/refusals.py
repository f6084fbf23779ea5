"""Every refusal leaves evidence: exactly one audit event naming what was refused and why.

An action refuses by raising ``ActionError`` from inside its ``@transaction.atomic``
block, which rolls back everything it wrote, its audit events included. So the evidence
of a refusal cannot be written by the action: ``refusals_recorded`` wraps every public
action (``partners/actions/__init__.py`` wraps them all, and a new action without a
domain there fails at import) and writes one ``<domain>.refused`` event *after* the
rollback, naming the target and the reason code.

When the refusal happens inside a transaction of the caller's (the admin's change form
runs in one), writing the event there would be rolled back with it: the event is then
attached to the exception, and the entry point, once its own block has ended, calls
``settle(exc)`` (the DRF exception handler, the admin helpers, the claim page do). Only the
outermost action call records: an action refused inside another records once, as the
outer one.
"""

import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from django.contrib.auth.models import User
from django.db import models, transaction

from accessctl.audit.events import AuditAction, event
from accessctl.audit.models import AuditEvent, Outcome
from accessctl.middleware import current_user
from partners.errors import ActionError, ActionForbidden

__all__ = ["evidence_of", "refusals_recorded", "settle"]

P = ParamSpec("P")
R = TypeVar("R")

_depth: ContextVar[int] = ContextVar("accessctl_action_depth", default=0)

# The keyword arguments that name what an action is about, most specific first.
_TARGET_ARGUMENTS = (
    "grant",
    "request",
    "window",
    "token",
    "membership",
    "contact",
    "task",
    "checkpoint",
    "release",
    "partner",
)
# What a refused action names when it was given no row (a claim code that matched none).
_TARGET_TYPES = {
    "token": "partners.accesstoken",
    "schedule": "django_celery_beat.periodictask",
    "revocation": "partners.revocation",
}


def _target(kwargs: dict[str, Any]) -> models.Model | None:
    for name in _TARGET_ARGUMENTS:
        value = kwargs.get(name)
        if isinstance(value, models.Model):
            return value
    return None


def _partner_id(kwargs: dict[str, Any], target: models.Model | None) -> int | None:
    partner = kwargs.get("partner")
    if isinstance(partner, models.Model):
        return int(partner.pk) if partner.pk else None
    if target is not None and target._meta.label_lower == "partners.partner":
        return int(target.pk) if target.pk else None
    partner_id = getattr(target, "partner_id", None)
    return int(partner_id) if partner_id else None


def evidence_of(
    refused: AuditAction, name: str, exc: ActionError, kwargs: dict[str, Any]
) -> AuditEvent:
    """The (unsaved) event of ``exc`` refusing action ``name`` called with ``kwargs``."""
    target = _target(kwargs)
    about = {
        key: str(value.pk)
        for key, value in kwargs.items()
        if isinstance(value, models.Model) and value.pk is not None
    }
    changes: dict[str, Any] = {"action": name, "detail": exc.message[:300], **about}
    if isinstance(exc, ActionForbidden):
        changes["operation"] = exc.operation
    actor = kwargs.get("actor") or current_user()
    saved = target is not None and target.pk is not None
    domain = str(refused).split(".")[0]
    return event(
        refused,
        actor=actor if isinstance(actor, User) else None,
        target=target if saved else None,
        target_type="" if saved else _TARGET_TYPES.get(domain, f"partners.{domain}"),
        target_id="",
        partner_id=_partner_id(kwargs, target),
        outcome=Outcome.DENIED,
        reason=exc.code[:64],
        changes=changes,
    )


def _in_callers_transaction() -> bool:
    """True inside a transaction someone else opened (a test's own does not count: it
    stands for the autocommit of production)."""
    blocks = transaction.get_connection().atomic_blocks
    return any(not getattr(block, "_from_testcase", False) for block in blocks)


def settle(exc: BaseException) -> None:
    """Write the refusal evidence ``exc`` carries, if not written yet. Entry points call it
    after their own transaction ended; calling it twice writes once."""
    evidence = getattr(exc, "evidence", None)
    if isinstance(evidence, AuditEvent) and evidence.pk is None:
        evidence.save(force_insert=True)


def refusals_recorded(refused: AuditAction) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Wrap an action so each refusal of it is recorded as ``refused``."""

    def decorate(action: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(action)
        def recorded(*args: P.args, **kwargs: P.kwargs) -> R:
            depth = _depth.get()
            reset = _depth.set(depth + 1)
            try:
                return action(*args, **kwargs)
            except ActionError as exc:
                if depth == 0 and exc.evidence is None:
                    exc.evidence = evidence_of(refused, action.__name__, exc, kwargs)
                    if not _in_callers_transaction():
                        settle(exc)
                raise
            finally:
                _depth.reset(reset)

        recorded.refused_event = refused  # type: ignore[attr-defined]
        return recorded

    return decorate
