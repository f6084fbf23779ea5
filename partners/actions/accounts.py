"""Staff accounts and their second factors: every change audited, no secret for anyone else.

A staff account is authority: whoever holds its password and second factor acts as that
person, approvals included. So:

* nobody, superusers included, reads or sets another person's second factor: an
  authenticator key is made for its owner, who proves it with a code from the new app
  (``enroll_totp``), and backup codes are returned once, to their owner
  (``generate_backup_codes``); a person's first device is made by the operator's
  ``enroll_second_factor`` command (``actor=None``), printed on the operator's terminal;
* every change of an account (names, active, staff and superuser flags, roles, password,
  devices) is an action with its audit event, before and after;
* setting another person's password or removing their device ends that person's sessions
  and revokes their staff tokens in the same transaction: a takeover cannot stay quiet,
  and credentials made before it stop working.
"""

import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, User
from django.db import transaction
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accessctl.actors import Actor
from accessctl.audit.events import AuditAction, record
from accessctl.sessions.models import UserSession
from partners.authority import Operation, authorize
from partners.errors import ActionError, ActionForbidden
from partners.models import AccessToken, Membership

from ._common import field_changes, now, snapshot, validate
from .tokens import revoke_tokens, verify_second_factor

__all__ = [
    "ACCOUNT_FIELDS",
    "BACKUP_CODES",
    "change_account",
    "clear_lockout",
    "create_account",
    "enroll_totp",
    "generate_backup_codes",
    "new_totp_key",
    "remove_second_factor",
    "set_password",
    "totp_code_matches",
]

ACCOUNT_FIELDS = (
    "username",
    "first_name",
    "last_name",
    "email",
    "is_active",
    "is_staff",
    "is_superuser",
)
BACKUP_CODES = 10


def new_totp_key() -> str:
    """A fresh authenticator key (hex, 160 bits, as django-otp stores it)."""
    return secrets.token_hex(20)


def totp_code_matches(key: str, code: str) -> bool:
    """Whether ``code`` is the current (or the previous or next) code of ``key``."""
    code = (code or "").strip()
    if not (code.isdigit() and len(code) == 6):
        return False
    return bool(TOTP(bytes.fromhex(key), step=30, t0=0, digits=6).verify(int(code), tolerance=1))


def _end_sessions_and_staff_tokens(
    *, actor: Actor, user: User, reason: str, at: datetime
) -> dict[str, Any]:
    """End every portal session of ``user`` and revoke their staff tokens (one
    ``token.revoked`` event each), inside the caller's transaction. The portal keeps
    sessions in the database with the user's id (``accessctl.sessions``): one query."""
    ended, _ = UserSession.objects.filter(user_id=user.pk, expire_date__gt=at).delete()
    revoked = revoke_tokens(
        AccessToken.objects.filter(user=user, partner__isnull=True),
        actor=actor,
        reason=reason,
        at=at,
    )
    return {"sessions_ended": ended, "tokens_revoked": [t.prefix for t in revoked]}


def _someone_else(actor: Actor, user: User) -> bool:
    return actor is None or actor.pk != user.pk


@transaction.atomic
def create_account(
    *,
    actor: Actor,
    username: str,
    password: str | None,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
) -> User:
    """A new account, neither staff nor holding a role (those are changes, audited as
    such). ``password=None`` makes one that cannot sign in with a password."""
    authorize(actor, Operation.ACCOUNT_CREATE)
    User = get_user_model()
    user = User(username=username, email=email, first_name=first_name, last_name=last_name)
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    validate(user)
    user.save()
    record(
        AuditAction.ACCOUNT_CREATED,
        actor=actor,
        target=user,
        changes={
            **{name: [None, getattr(user, name)] for name in ACCOUNT_FIELDS},
            "password": "set" if password is not None else "unusable",
        },
    )
    return user


@transaction.atomic
def change_account(
    *, actor: Actor, user: User, groups: Iterable[Group] | None = None, **values: Any
) -> User:
    """Change an account's names, flags and roles (``groups``: the full new set). Before
    and after of each in one ``account.changed`` event. Only a superuser grants, removes
    or changes a superuser; a partner member is never made staff (one person, one side:
    remove them from the partner first). Deactivating or removing staff from someone also
    ends their sessions and staff tokens."""
    authorize(actor, Operation.ACCOUNT_CHANGE, user)
    unknown = set(values) - set(ACCOUNT_FIELDS)
    if unknown:
        raise ActionError("field_not_editable", f"Not editable: {', '.join(sorted(unknown))}.")
    User = get_user_model()
    account = User.objects.select_for_update().get(pk=user.pk)
    if (account.is_superuser or values.get("is_superuser")) and not (
        actor is None or actor.is_superuser
    ):
        raise ActionForbidden(str(Operation.ACCOUNT_CHANGE), "only a superuser changes superusers")
    before = snapshot(account, ACCOUNT_FIELDS)
    for name, value in values.items():
        setattr(account, name, value)
    if (account.is_staff or account.is_superuser) and Membership.objects.filter(
        user=account
    ).exists():
        raise ActionError(
            "account_is_member",
            f"{account} acts for a partner: remove them from the partner before making them staff.",
        )
    validate(account, exclude=["password"])
    changes = field_changes(account, before, ACCOUNT_FIELDS)
    if changes:
        account.save(update_fields=list(changes))
    if groups is not None:
        old = set(account.groups.values_list("name", flat=True))
        new_groups = list(groups)
        new = {g.name for g in new_groups}
        if old != new:
            account.groups.set(new_groups)
            changes["groups"] = [sorted(old), sorted(new)]
    if not changes:
        return account
    at = now()
    ended: dict[str, Any] = {}
    lost_access = ("is_active" in changes and not account.is_active) or (
        "is_staff" in changes and not account.is_staff
    )
    if lost_access and _someone_else(actor, account):
        ended = _end_sessions_and_staff_tokens(
            actor=actor, user=account, reason="account changed", at=at
        )
    record(
        AuditAction.ACCOUNT_CHANGED,
        actor=actor,
        target=account,
        changes={**changes, **ended},
        at=at,
    )
    return account


@transaction.atomic
def set_password(*, actor: Actor, user: User, password: str | None) -> User:
    """Set ``user``'s password (``None``: password sign-in disabled). Set by someone else,
    it also ends that person's sessions and revokes their staff tokens: whatever was
    signed in or made with the old credentials stops now, and the event says who did it.
    The password itself is never recorded."""
    by_owner = not _someone_else(actor, user)
    authorize(
        actor,
        Operation.ACCOUNT_CHANGE_OWN_PASSWORD if by_owner else Operation.ACCOUNT_SET_PASSWORD,
        user,
    )
    User = get_user_model()
    account = User.objects.select_for_update().get(pk=user.pk)
    if password is None:
        account.set_unusable_password()
    else:
        account.set_password(password)
    account.save(update_fields=["password"])
    at = now()
    ended = (
        {}
        if by_owner
        else _end_sessions_and_staff_tokens(
            actor=actor, user=account, reason="password set by someone else", at=at
        )
    )
    record(
        AuditAction.ACCOUNT_PASSWORD_SET,
        actor=actor,
        target=account,
        changes={
            "by_owner": by_owner,
            "usable": password is not None,
            **ended,
        },
        at=at,
    )
    return account


def enroll_totp(
    *, actor: Actor, user: User, key: str, code: str | None = None, name: str = "authenticator app"
) -> TOTPDevice:
    """Make ``user``'s authenticator device with ``key``, replacing any they had.

    A person enrolls only themselves, proving they hold the key with a current ``code``
    from the new app; the operator's command (``actor=None``) enrolls a first device
    without one. The key is never recorded, returned or shown by anything but the page or
    command that made it, once."""
    authorize(actor, Operation.SECOND_FACTOR_ENROLL, user)
    if actor is not None and not totp_code_matches(key, code or ""):
        raise ActionError(
            "second_factor_invalid", "That code is not the new app's current code; try again."
        )
    return _enroll_totp(actor=actor, user=user, key=key, name=name)


@transaction.atomic
def _enroll_totp(*, actor: Actor, user: User, key: str, name: str) -> TOTPDevice:
    replaced = list(TOTPDevice.objects.filter(user=user).values_list("name", flat=True))
    TOTPDevice.objects.filter(user=user).delete()
    device = TOTPDevice(user=user, name=name, key=key, confirmed=True)
    validate(device)
    device.save()
    record(
        AuditAction.SECOND_FACTOR_ENROLLED,
        actor=actor,
        target=user,
        changes={"kind": "totp", "device": name, "replaced": replaced},
    )
    return device


def generate_backup_codes(
    *, actor: Actor, user: User, current_code: str | None = None
) -> list[str]:
    """New one-time backup codes for ``user`` (the old ones stop working); returned once.

    A person makes only their own, after a current code (checked before the transaction,
    so a wrong one still counts against the device's throttle; see
    ``verify_second_factor``); the operator's command (``actor=None``) makes a first set."""
    authorize(actor, Operation.SECOND_FACTOR_ENROLL, user)
    if actor is not None:
        verify_second_factor(user, current_code or "")
    return _generate_backup_codes(actor=actor, user=user)


@transaction.atomic
def _generate_backup_codes(*, actor: Actor, user: User) -> list[str]:
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name="backup codes", confirmed=True)
    codes = [StaticToken.random_token() for _ in range(BACKUP_CODES)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
    record(
        AuditAction.SECOND_FACTOR_ENROLLED,
        actor=actor,
        target=user,
        changes={"kind": "backup_codes", "count": len(codes)},
    )
    return codes


@transaction.atomic
def remove_second_factor(*, actor: Actor, device: TOTPDevice | StaticDevice) -> None:
    """Remove one of a person's devices (a lost phone). Nobody learns a secret by it; if
    it is someone else's, their sessions end and their staff tokens are revoked, and they
    get a new device from the operator (``enroll_second_factor``)."""
    authorize(actor, Operation.SECOND_FACTOR_REMOVE, device)
    device = type(device).objects.select_for_update().select_related("user").get(pk=device.pk)
    user = device.user
    at = now()
    ended = (
        _end_sessions_and_staff_tokens(
            actor=actor, user=user, reason="second factor removed by someone else", at=at
        )
        if _someone_else(actor, user)
        else {}
    )
    record(
        AuditAction.SECOND_FACTOR_REMOVED,
        actor=actor,
        target=user,
        changes={
            "kind": "totp" if isinstance(device, TOTPDevice) else "backup_codes",
            "device": device.name,
            **ended,
        },
        at=at,
    )
    device.delete()


@transaction.atomic
def clear_lockout(*, actor: Actor, attempt: AccessAttempt) -> None:
    """Let a locked-out username sign in again from that address: django-axes' attempt
    row goes, with an audit event saying whose lock was cleared and by whom."""
    authorize(actor, Operation.STAFF_CLEAR_LOCKOUT, attempt)
    attempt = type(attempt).objects.select_for_update().get(pk=attempt.pk)
    record(
        AuditAction.STAFF_LOCKOUT_CLEARED,
        actor=actor,
        target=attempt,
        changes={
            "username": attempt.username,
            "ip_address": attempt.ip_address,
            "failures": attempt.failures_since_start,
        },
    )
    attempt.delete()
