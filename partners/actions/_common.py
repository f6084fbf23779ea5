"""Helpers shared by the actions."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from partners import rules
from partners.errors import ActionError
from partners.rules import country_name, early_access_approvals

__all__ = [
    "approvals_given",
    "approvals_needed",
    "country_name",
    "early_access_approvals",
    "field_changes",
    "integrity_as_action_error",
    "now",
    "release_withdrawn",
    "require_not_withdrawn",
    "save_changes",
    "snapshot",
    "unapproved_grants",
    "validate",
]

# The database rules (partners.db_rules and model constraints) name themselves in the
# error text; these are the messages a person sees when one of them refuses a change.
_INTEGRITY_MESSAGES = {
    "window_no_overlap": (
        "window_overlap",
        "This partner already has a window for this release that overlaps these times.",
    ),
    "window_opens_before_closes": ("window_invalid", "The window must open before it closes."),
    "window_embargo_after_open": (
        "window_invalid",
        "The embargo cannot lift before the window opens.",
    ),
    "grant_outlives_window": ("grant_outlives_window", "A grant cannot outlive its window."),
    "grant_window_mismatch": (
        "grant_window_mismatch",
        "The window is for another partner or release.",
    ),
    "grant_one_active_per_checkpoint": (
        "grant_exists",
        "This partner already has an active grant for this checkpoint.",
    ),
    "grant_request_one_pending": (
        "request_exists",
        "This partner already has a pending request for this checkpoint.",
    ),
}


@contextmanager
def integrity_as_action_error() -> Iterator[None]:
    """Turn a database rule's refusal into an ``ActionError`` with its stable code.

    A savepoint keeps the outer transaction usable, so the caller's error handling (and
    nothing else) decides what happens next.
    """
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        text = str(exc)
        for rule, (code, message) in _INTEGRITY_MESSAGES.items():
            if rule in text:
                raise ActionError(code, message) from exc
        raise


def validate(instance: models.Model, **kwargs: Any) -> None:
    """``full_clean``, refusing with ``invalid`` and the message of every bad field."""
    try:
        instance.full_clean(**kwargs)
    except ValidationError as exc:
        fields = exc.message_dict
        text = "; ".join(
            f"{name}: {' '.join(msgs)}" if name != "__all__" else " ".join(msgs)
            for name, msgs in fields.items()
        )
        raise ActionError("invalid", text, fields=fields) from exc


def save_changes(
    model: type[models.Model], pk: Any, values: dict[str, Any], editable: Iterable[str]
) -> tuple[Any, dict[str, Any]]:
    """Lock the row, set ``values`` (only ``editable`` fields), validate, save what changed.

    Returns the row and ``{field: [old, new]}`` for the audit event (empty: nothing saved).
    """
    editable = tuple(editable)
    unknown = set(values) - set(editable)
    if unknown:
        raise ActionError("field_not_editable", f"Not editable: {', '.join(sorted(unknown))}.")
    instance = model._default_manager.select_for_update().get(pk=pk)
    before = snapshot(instance, editable)
    for name, value in values.items():
        setattr(instance, name, value)
    validate(instance)
    changes = field_changes(instance, before, editable)
    if changes:
        instance.save(update_fields=list(changes))
    return instance, changes


def release_withdrawn(release: Any) -> bool:
    """Did the kill switch withdraw ``release``? Reads the committed row (the caller's
    instance may be older)."""
    return bool(type(release)._default_manager.filter(pk=release.pk, status="withdrawn").exists())


def require_not_withdrawn(release: Any) -> None:
    """Refuse (``release_withdrawn``) anything new for a release the kill switch withdrew."""
    if release_withdrawn(release):
        raise ActionError("release_withdrawn", f"Release {release.slug} was withdrawn.")


def now() -> datetime:
    return timezone.now()


def field_changes(
    instance: models.Model, before: dict[str, Any], fields: Iterable[str]
) -> dict[str, Any]:
    """``{field: [old, new]}`` for the fields whose value changed, as JSON-safe text."""
    changes = {}
    for name in fields:
        old, new = before.get(name), getattr(instance, name)
        if old != new:
            changes[name] = [_plain(old), _plain(new)]
    return changes


def snapshot(instance: models.Model, fields: Iterable[str]) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in fields}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def approvals_needed(request: Any) -> int:
    """``rules.approvals_needed`` for a ``GrantRequest`` row."""
    return rules.approvals_needed(request.approvals_required)


def approvals_given(request: Any) -> int:
    """Distinct approvers of ``request``, its requester excluded."""
    return (
        request.approvals.exclude(approver_id=request.requested_by_id)
        .values("approver_id")
        .distinct()
        .count()
    )


def unapproved_grants(grants: QuerySet) -> QuerySet:
    """Those of ``grants`` that would be early access without their approvals: issued
    directly, or on a request holding fewer than ``approvals_needed``."""
    given = Count(
        "request__approvals__approver",
        filter=~Q(request__approvals__approver=F("request__requested_by")),
        distinct=True,
    )
    needed = rules.approvals_needed_sql("request__approvals_required")
    return grants.annotate(given=given).filter(Q(request__isnull=True) | Q(given__lt=needed))
