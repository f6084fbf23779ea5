"""The authority model: for every operation, who may do it, for whom, on what.

One table (``RULES``), consulted by every entry point through the actions: portal forms
and admin actions, the staff API, the partner API, management commands and Celery tasks
all change state by calling an action, and every action starts with ``authorize``. The
admin's ``has_*_permission`` hooks and the portal's buttons ask ``may`` (the same table),
so a refused operation is not even offered. docs/security.md renders this table; a test
checks that the two agree and that every action consults it.

An operation is allowed when all of these hold:

* the actor is the system (``None``: Celery tasks and migrations act for the lab itself),
  or an active user holding the rule's Django permission (roles are groups:
  ``partners.roles.ROLES``);
* the rule's *subject* condition holds for the target: credentials act only for their
  owner (``SELF``), a partner member acts only for their own partner
  (``STAFF_OR_OWN_PARTNER``);
* any further condition the action itself checks and documents (second factor, four eyes).

Refusals raise ``partners.errors.ActionForbidden`` with the operation and the reason.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Model

from accessctl.actors import Actor
from partners.errors import ActionForbidden

if TYPE_CHECKING:
    from partners.models import Membership

__all__ = ["RULES", "Operation", "Rule", "Subject", "as_markdown", "authorize", "may"]


class Operation(StrEnum):
    """Every state change a person or credential can cause. Values never change."""

    PARTNER_CREATE = "partner.create"
    PARTNER_CHANGE = "partner.change"
    PARTNER_SUSPEND = "partner.suspend"
    PARTNER_REINSTATE = "partner.reinstate"
    PARTNER_TERMINATE = "partner.terminate"
    CONTACT_ADD = "contact.add"
    CONTACT_CHANGE = "contact.change"
    CONTACT_REMOVE = "contact.remove"
    MEMBER_ADD = "member.add"
    MEMBER_REMOVE = "member.remove"
    RELEASE_CREATE = "release.create"
    RELEASE_CHANGE = "release.change"
    RELEASE_WITHDRAW = "release.withdraw"
    CHECKPOINT_REGISTER = "checkpoint.register"
    CHECKPOINT_PULL = "checkpoint.pull"
    WINDOW_CREATE = "window.create"
    WINDOW_CHANGE = "window.change"
    GRANT_ISSUE = "grant.issue"
    GRANT_REQUEST = "grant.request"
    GRANT_REQUEST_DECIDE = "grant_request.decide"
    GRANT_REVOKE = "grant.revoke"
    TOKEN_CREATE_STAFF = "token.create_staff"
    TOKEN_INVITE_MEMBER = "token.invite_member"
    TOKEN_CLAIM = "token.claim"
    TOKEN_ROTATE = "token.rotate"
    TOKEN_REVOKE = "token.revoke"
    SCHEDULE_CHANGE = "schedule.change"
    SCHEDULE_CREATE_INTERVAL = "schedule.create_interval"
    SCHEDULE_CREATE_CRONTAB = "schedule.create_crontab"
    AUDIT_EXPORT = "audit.export"
    ACCOUNT_CREATE = "account.create"
    ACCOUNT_CHANGE = "account.change"
    ACCOUNT_SET_PASSWORD = "account.set_password"
    ACCOUNT_CHANGE_OWN_PASSWORD = "account.change_own_password"
    SECOND_FACTOR_ENROLL = "second_factor.enroll"
    SECOND_FACTOR_REMOVE = "second_factor.remove"
    STAFF_CLEAR_LOCKOUT = "staff.clear_lockout"
    DETECTION_RUN = "detection.run"


class Subject(StrEnum):
    """For whom an operation may be done."""

    ANY = "any"  # any object the permission covers
    SELF = "self"  # only the actor's own credentials (target: a user or a token)
    STAFF_OR_OWN_PARTNER = "staff_or_own_partner"


@dataclass(frozen=True, slots=True)
class Rule:
    """``permission``: the Django permission a person needs (``None``: none beyond being an
    active staff member, or a member for partner subjects). ``note`` is what docs/security.md
    says of the conditions the action checks besides."""

    permission: str | None
    subject: Subject = Subject.ANY
    staff_only: bool = True
    note: str = ""


RULES: dict[Operation, Rule] = {
    Operation.PARTNER_CREATE: Rule("partners.add_partner"),
    Operation.PARTNER_CHANGE: Rule(
        "partners.change_partner",
        note="a jurisdiction change that ends access is shown first and needs confirmation; "
        "it revokes the windows' grants it ends",
    ),
    Operation.PARTNER_SUSPEND: Rule("partners.suspend_partner", note="reason required"),
    Operation.PARTNER_REINSTATE: Rule("partners.suspend_partner", note="reason required"),
    Operation.PARTNER_TERMINATE: Rule("partners.suspend_partner", note="reason required"),
    Operation.CONTACT_ADD: Rule("partners.add_partnercontact"),
    Operation.CONTACT_CHANGE: Rule("partners.change_partnercontact"),
    Operation.CONTACT_REMOVE: Rule("partners.delete_partnercontact"),
    Operation.MEMBER_ADD: Rule(
        "partners.add_membership", note="only a user who is not staff and not another partner's"
    ),
    Operation.MEMBER_REMOVE: Rule(
        "partners.delete_membership", note="revokes the member's partner tokens at once"
    ),
    Operation.RELEASE_CREATE: Rule("partners.add_release"),
    Operation.RELEASE_CHANGE: Rule(
        "partners.change_release",
        note="the public time never moves earlier; it moves later only when no grant would "
        "become early access without its approvals",
    ),
    Operation.RELEASE_WITHDRAW: Rule("partners.withdraw_release", note="reason required"),
    Operation.CHECKPOINT_REGISTER: Rule(
        "partners.add_checkpoint",
        note="storage keys are the checkpoint's own prefix; size (and SHA-256) checked; "
        "bytes of a release with a later public time refused",
    ),
    Operation.CHECKPOINT_PULL: Rule("partners.pull_checkpoint", note="reason required"),
    Operation.WINDOW_CREATE: Rule(
        "partners.add_embargowindow", note="the release's export policy must allow the partner"
    ),
    Operation.WINDOW_CHANGE: Rule(
        "partners.change_embargowindow", note="closing earlier clips the window's grants"
    ),
    Operation.GRANT_ISSUE: Rule(
        "partners.issue_grant", note="only after the release's public time; before: a request"
    ),
    Operation.GRANT_REQUEST: Rule(
        None,
        subject=Subject.STAFF_OR_OWN_PARTNER,
        staff_only=False,
        note="a partner member for their own partner, or staff holding partners.issue_grant; "
        "quota within the release's limit",
    ),
    Operation.GRANT_REQUEST_DECIDE: Rule(
        "partners.approve_grantrequest",
        note="four eyes: not the requester, one approval per person, "
        "ACCESSCTL_EARLY_ACCESS_APPROVALS distinct approvers before the public time",
    ),
    Operation.GRANT_REVOKE: Rule("partners.revoke_grant", note="reason required"),
    Operation.TOKEN_CREATE_STAFF: Rule(
        None,
        subject=Subject.SELF,
        note="for oneself only, after a fresh second-factor code; the secret is shown once",
    ),
    Operation.TOKEN_INVITE_MEMBER: Rule(
        "partners.add_accesstoken",
        note="for a partner member; the secret reaches only the member, through a one-time "
        "link emailed to their address",
    ),
    Operation.TOKEN_CLAIM: Rule(
        None, subject=Subject.SELF, staff_only=False, note="the invited member, once, in time"
    ),
    Operation.TOKEN_ROTATE: Rule(
        None, subject=Subject.SELF, staff_only=False, note="the token's owner, with the token"
    ),
    Operation.TOKEN_REVOKE: Rule(
        "partners.revoke_accesstoken", note="reason required; owners may revoke their own"
    ),
    Operation.SCHEDULE_CHANGE: Rule(
        "django_celery_beat.change_periodictask",
        note="enabled, schedule, arguments and description only (never the task or its "
        "name); before and after in the audit event; no schedule is deleted in the portal",
    ),
    Operation.SCHEDULE_CREATE_INTERVAL: Rule("django_celery_beat.add_intervalschedule"),
    Operation.SCHEDULE_CREATE_CRONTAB: Rule("django_celery_beat.add_crontabschedule"),
    Operation.AUDIT_EXPORT: Rule("audit.export_auditevent"),
    Operation.ACCOUNT_CREATE: Rule(
        "auth.add_user", note="an account without staff flags or roles; those are changes"
    ),
    Operation.ACCOUNT_CHANGE: Rule(
        "auth.change_user",
        note="names, active, staff, superuser and roles only, before and after in the audit "
        "event; only a superuser grants or changes a superuser; a partner member is never "
        "made staff; no account is deleted (deactivate it)",
    ),
    Operation.ACCOUNT_SET_PASSWORD: Rule(
        "auth.change_user",
        note="another person's: their sessions end and their staff tokens are revoked",
    ),
    Operation.ACCOUNT_CHANGE_OWN_PASSWORD: Rule(
        None, subject=Subject.SELF, note="with the old password (the portal's own form)"
    ),
    Operation.SECOND_FACTOR_ENROLL: Rule(
        None,
        subject=Subject.SELF,
        note="for oneself, after a current code; the key or backup codes are shown once, to "
        "their owner; a first device only by the operator's command (`enroll_second_factor`)",
    ),
    Operation.SECOND_FACTOR_REMOVE: Rule(
        "auth.change_user",
        note="nobody reads or sets another person's device; removing one ends that person's "
        "sessions and revokes their staff tokens",
    ),
    Operation.STAFF_CLEAR_LOCKOUT: Rule(
        "axes.delete_accessattempt", note="the sign-in attempts of one username and address"
    ),
    Operation.DETECTION_RUN: Rule(
        "partners.run_detection",
        note="reason required; 1 to 16 safetensors or GGUF files, at most "
        "ACCESSCTL_DETECTION_MAX_BYTES together; the release fingerprints and some partner "
        "holds a key for it",
    ),
}


def _owner_id(target: Model) -> object:
    """The user a credential or user target stands for."""
    user_id: object = getattr(target, "user_id", None)
    return user_id or target.pk


def _member_partner_id(actor: User | AnonymousUser) -> int | None:
    membership: Membership | None = getattr(actor, "partner_membership", None)
    return membership.partner_id if membership is not None else None


def _refusal(
    actor: Actor | AnonymousUser, operation: Operation, target: Model | None
) -> str | None:
    """Why ``actor`` may not do ``operation`` on ``target``, or ``None`` when they may."""
    rule = RULES[operation]
    if actor is None:
        return None  # the system: tasks, migrations
    if not actor.is_active:
        return "inactive user"
    subject = rule.subject
    if subject is Subject.STAFF_OR_OWN_PARTNER:
        own = _member_partner_id(actor)
        if own is not None:
            # The target is the partner itself (``request_grant`` authorizes on it).
            return None if target is None or own == target.pk else "another partner"
        if not (actor.is_staff and actor.has_perm("partners.issue_grant")):
            return "lacks partners.issue_grant"
        return None
    if rule.staff_only and not actor.is_staff:
        return "not staff"
    if rule.permission is not None and not actor.has_perm(rule.permission):
        return f"lacks {rule.permission}"
    if subject is Subject.SELF and target is not None and _owner_id(target) != actor.pk:
        return "credentials act only for their owner"
    return None


def may(actor: Actor | AnonymousUser, operation: Operation, target: Model | None = None) -> bool:
    """Whether ``actor`` may do ``operation`` (on ``target``, when given): for menus and
    buttons, so the signed-out visitor (``AnonymousUser``) is asked too, and refused.
    ``target=None`` asks whether any target could be allowed."""
    return _refusal(actor, operation, target) is None


def authorize(actor: Actor, operation: Operation, target: Model | None = None) -> None:
    """Refuse unless ``actor`` may do ``operation`` on ``target``.

    Raises ``ActionForbidden`` (HTTP 403, code ``forbidden``) naming the operation.
    """
    reason = _refusal(actor, operation, target)
    if reason is not None:
        raise ActionForbidden(str(operation), reason)


def _roles_holding(permission: str | None) -> str:
    from partners.roles import ROLES

    if permission is None:
        return "-"
    app_label, codename = permission.split(".")
    roles = [role for role, perms in ROLES.items() if (app_label, codename) in perms]
    return ", ".join(roles) or "superusers only"


def as_markdown() -> str:
    """The table docs/security.md shows (a test keeps the two identical)."""
    subjects = {
        Subject.ANY: "anyone the permission covers",
        Subject.SELF: "only the actor's own credentials",
        Subject.STAFF_OR_OWN_PARTNER: "a member: their own partner; staff: any partner",
    }
    lines = [
        "| operation | permission | roles holding it | for whom | conditions the action checks |",
        "| --- | --- | --- | --- | --- |",
    ]
    for operation, rule in RULES.items():
        who = _roles_holding(rule.permission)
        if rule.permission is None:
            who = "every staff member" if rule.staff_only else "partner members (and staff)"
        lines.append(
            f"| `{operation}` | {f'`{rule.permission}`' if rule.permission else '-'} | {who} "
            f"| {subjects[rule.subject]} | {rule.note or '-'} |"
        )
    return "\n".join(lines) + "\n"
