"""Helpers shared by the actions."""

import functools
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from accessctl.codes import Code
from partners import rules
from partners.errors import ActionError
from partners.models import GrantRequest, Release
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

# The database rules (partners.db_rules and the models' constraints) that a person's
# input can run into, and what they are told. Keys are rule names: a constraint's or
# trigger's name, or ``table.column`` for a field declared ``unique=True``. Every action
# also checks these first where it can; this is what a race past that check gets.
# Rules that only the code's own writes can break (a revoked grant has a time, a
# revocation names its target, ...) are not here: breaking one is a bug, and its
# ``IntegrityError`` stays an error (tests/partners/test_db_refusals.py lists them).
DATABASE_RULES = {
    "window_no_overlap": (
        Code.WINDOW_OVERLAP,
        "This partner already has a window for this release that overlaps these times.",
    ),
    "window_opens_before_closes": (Code.WINDOW_INVALID, "The window must open before it closes."),
    "window_embargo_after_open": (
        Code.WINDOW_INVALID,
        "The embargo cannot lift before the window opens.",
    ),
    "grant_outlives_window": (Code.GRANT_OUTLIVES_WINDOW, "A grant cannot outlive its window."),
    "grant_window_mismatch": (
        Code.GRANT_WINDOW_MISMATCH,
        "The window is for another partner or release.",
    ),
    "grant_one_active_per_checkpoint": (
        Code.GRANT_EXISTS,
        "This partner already has an active grant for this checkpoint.",
    ),
    "grant_request_one_pending": (
        Code.REQUEST_EXISTS,
        "This partner already has a pending request for this checkpoint.",
    ),
    "grant_approval_distinct_approvers": (
        "already_approved",
        "This person already approved this request; it needs another approver.",
    ),
    "grant_expires_after_issue": ("grant_invalid", "A grant must expire after it is issued."),
    "grant_within_quota": ("quota_exhausted", "The grant's byte quota is used up."),
    "contact_unique_email": (
        "contact_exists",
        "The partner already has a contact at that address.",
    ),
    "partners_membership.user_id": (
        "member_exists",
        "This person already acts for a partner; remove them there first.",
    ),
    "partners_partner.slug": ("partner_exists", "A partner with this slug already exists."),
    "partners_release.slug": ("release_exists", "A release with this slug already exists."),
    "release_policy_valid": ("invalid", "The export policy must be allow or deny."),
    "release_quota_factor_range": ("invalid", "The quota factor must be between 1 and 1000."),
    "token_expires_after_creation": (
        "token_invalid_expiry",
        "A token must expire after it is made.",
    ),
}

# PostgreSQL names the violated constraint (or our trigger names its rule) in the
# message, as does SQLite for CHECK constraints and triggers. SQLite's unique refusals
# name only columns: "UNIQUE constraint failed: partners_grantrequest.partner_id,
# partners_grantrequest.checkpoint_id"; PostgreSQL's for a ``unique=True`` field name
# an index Django generated ("partners_partner_slug_key"), with "Key (slug)=(...)".
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (?P<columns>[\w.]+(?:, [\w.]+)*)")
_POSTGRESQL_KEY = re.compile(r"Key \((?P<columns>[\w, ]+)\)=")


@functools.cache
def _unique_rules() -> dict[tuple[str, ...], str]:
    """``("table.column", ...)`` -> the name of the unique rule over those columns."""
    rules: dict[tuple[str, ...], str] = {}
    for model in apps.get_app_config("partners").get_models():
        meta = model._meta
        for constraint in meta.constraints:
            if isinstance(constraint, models.UniqueConstraint) and constraint.fields:
                columns = tuple(
                    f"{meta.db_table}.{meta.get_field(name).column}"  # type: ignore[union-attr]
                    for name in constraint.fields
                )
                rules[columns] = constraint.name or ""
        for field in meta.concrete_fields:
            if field.unique and not field.primary_key:
                rules[(f"{meta.db_table}.{field.column}",)] = f"{meta.db_table}.{field.column}"
    return rules


def refused_rule(exc: IntegrityError) -> str | None:
    """The name of the database rule that refused a write, on SQLite and PostgreSQL
    (``None``: not one of ``DATABASE_RULES``)."""
    text = str(exc)
    for rule in DATABASE_RULES:
        if "." not in rule and re.search(rf"\b{rule}\b", text):
            return rule
    columns: tuple[str, ...] = ()
    if found := _SQLITE_UNIQUE.search(text):
        columns = tuple(found["columns"].split(", "))
    elif (found := _POSTGRESQL_KEY.search(text)) and (
        table := getattr(getattr(exc.__cause__, "diag", None), "table_name", None)
    ):
        columns = tuple(f"{table}.{c.strip()}" for c in found["columns"].split(","))
    unique = _unique_rules().get(columns)
    return unique if unique in DATABASE_RULES else None


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
        rule = refused_rule(exc)
        if rule is None:
            raise
        code, message = DATABASE_RULES[rule]
        raise ActionError(code, message) from exc


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


def release_withdrawn(release: Release) -> bool:
    """Did the kill switch withdraw ``release``? Reads the committed row (the caller's
    instance may be older)."""
    return bool(type(release)._default_manager.filter(pk=release.pk, status="withdrawn").exists())


def require_not_withdrawn(release: Release) -> None:
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


def _plain(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def approvals_needed(request: GrantRequest) -> int:
    """``rules.approvals_needed`` for a ``GrantRequest`` row."""
    return rules.approvals_needed(request.approvals_required)


def approvals_given(request: GrantRequest) -> int:
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
