"""The one shape of a refusal for lack of permission, on every path.

A person or credential refused because they may not do something (the portal's add,
change and delete pages, its lists and actions; the staff API's operations; any
``ActionForbidden`` an entry point raises before an action is called) leaves one
``<domain>.refused`` event, reason ``forbidden``, with the ``operation``
(``partners.authority.Operation``) when the refused thing is one, and the target: the
object when one was named, else the model. An action's own refusal builds the same event
(``partners.refusals``); this covers the refusals that happen before any action runs.
"""

from typing import Any

from django.contrib.auth.models import User

from accessctl.audit.events import AuditAction, event
from accessctl.audit.models import AuditEvent, Outcome
from accessctl.codes import Code
from partners.authority import Operation

__all__ = ["DOMAINS", "PORTAL_OPERATIONS", "domain_of", "forbidden_event"]

# The domain of each model a refusal can name (portal admins, API collections).
DOMAINS: dict[str, AuditAction] = {
    "partners.partner": AuditAction.PARTNER_REFUSED,
    "partners.contact": AuditAction.CONTACT_REFUSED,
    "partners.membership": AuditAction.MEMBER_REFUSED,
    "partners.notification": AuditAction.PARTNER_REFUSED,
    "partners.release": AuditAction.RELEASE_REFUSED,
    "partners.checkpoint": AuditAction.CHECKPOINT_REFUSED,
    "partners.artifact": AuditAction.CHECKPOINT_REFUSED,
    "partners.embargowindow": AuditAction.WINDOW_REFUSED,
    "partners.grant": AuditAction.GRANT_REFUSED,
    "partners.grantrequest": AuditAction.GRANT_REQUEST_REFUSED,
    "partners.accesstoken": AuditAction.TOKEN_REFUSED,
    "partners.tokeninvitation": AuditAction.TOKEN_REFUSED,
    "partners.revocation": AuditAction.REVOCATION_REFUSED,
    "partners.detection": AuditAction.DETECTION_REFUSED,
    "audit.auditevent": AuditAction.AUDIT_REFUSED,
    "audit.auditcheckpoint": AuditAction.AUDIT_REFUSED,
    "audit.auditexport": AuditAction.AUDIT_REFUSED,
    "auth.user": AuditAction.ACCOUNT_REFUSED,
    "auth.group": AuditAction.ACCOUNT_REFUSED,
    "axes.accessattempt": AuditAction.ACCOUNT_REFUSED,
    "axes.accesslog": AuditAction.ACCOUNT_REFUSED,
    "axes.accessfailurelog": AuditAction.ACCOUNT_REFUSED,
    "otp_totp.totpdevice": AuditAction.SECOND_FACTOR_REFUSED,
    "otp_static.staticdevice": AuditAction.SECOND_FACTOR_REFUSED,
    "django_celery_beat.periodictask": AuditAction.SCHEDULE_REFUSED,
    "django_celery_beat.intervalschedule": AuditAction.SCHEDULE_REFUSED,
    "django_celery_beat.crontabschedule": AuditAction.SCHEDULE_REFUSED,
    "django_celery_results.taskresult": AuditAction.SCHEDULE_REFUSED,
    "django_celery_results.groupresult": AuditAction.SCHEDULE_REFUSED,
}
# An operation's domain is the part before the dot; these two have none of their own.
_OPERATION_DOMAINS = {"audit": AuditAction.AUDIT_REFUSED, "staff": AuditAction.ACCOUNT_REFUSED}

# The portal's pages and actions that are one operation of the authority table: (model,
# "add" | "change" | "delete" | "action:<name>" | "url:<name>") -> operation. Reading a
# list or a page is no operation; nor is deleting a domain row (never offered).
PORTAL_OPERATIONS: dict[tuple[str, str], Operation] = {
    ("partners.partner", "add"): Operation.PARTNER_CREATE,
    ("partners.partner", "change"): Operation.PARTNER_CHANGE,
    ("partners.partner", "action:suspend"): Operation.PARTNER_SUSPEND,
    ("partners.partner", "action:reinstate"): Operation.PARTNER_REINSTATE,
    ("partners.release", "add"): Operation.RELEASE_CREATE,
    ("partners.release", "change"): Operation.RELEASE_CHANGE,
    ("partners.release", "action:withdraw"): Operation.RELEASE_WITHDRAW,
    ("partners.checkpoint", "action:pull"): Operation.CHECKPOINT_PULL,
    ("partners.embargowindow", "add"): Operation.WINDOW_CREATE,
    ("partners.embargowindow", "change"): Operation.WINDOW_CHANGE,
    ("partners.grant", "add"): Operation.GRANT_ISSUE,
    ("partners.grant", "action:revoke"): Operation.GRANT_REVOKE,
    ("partners.grantrequest", "add"): Operation.GRANT_REQUEST,
    ("partners.grantrequest", "action:approve"): Operation.GRANT_REQUEST_DECIDE,
    ("partners.grantrequest", "action:reject"): Operation.GRANT_REQUEST_DECIDE,
    # The buttons on an object's own page (partners/admin/buttons.py): their confirmation
    # pages, GET and POST.
    ("partners.partner", "url:partners_partner_suspend"): Operation.PARTNER_SUSPEND,
    ("partners.partner", "url:partners_partner_reinstate"): Operation.PARTNER_REINSTATE,
    ("partners.grant", "url:partners_grant_revoke"): Operation.GRANT_REVOKE,
    ("partners.checkpoint", "url:partners_checkpoint_pull"): Operation.CHECKPOINT_PULL,
    ("partners.release", "url:partners_release_withdraw"): Operation.RELEASE_WITHDRAW,
    ("partners.grantrequest", "url:partners_grantrequest_approve"): (
        Operation.GRANT_REQUEST_DECIDE
    ),
    ("partners.grantrequest", "url:partners_grantrequest_reject"): Operation.GRANT_REQUEST_DECIDE,
    ("partners.accesstoken", "add"): Operation.TOKEN_CREATE_STAFF,
    ("partners.accesstoken", "action:revoke"): Operation.TOKEN_REVOKE,
    ("partners.tokeninvitation", "add"): Operation.TOKEN_INVITE_MEMBER,
    ("django_celery_beat.periodictask", "change"): Operation.SCHEDULE_CHANGE,
    ("django_celery_beat.periodictask", "action:enable"): Operation.SCHEDULE_CHANGE,
    ("django_celery_beat.periodictask", "action:disable"): Operation.SCHEDULE_CHANGE,
    ("django_celery_beat.intervalschedule", "add"): Operation.SCHEDULE_CREATE_INTERVAL,
    ("django_celery_beat.crontabschedule", "add"): Operation.SCHEDULE_CREATE_CRONTAB,
    ("audit.auditexport", "add"): Operation.AUDIT_EXPORT,
    ("partners.detection", "add"): Operation.DETECTION_RUN,
    ("auth.user", "add"): Operation.ACCOUNT_CREATE,
    ("auth.user", "change"): Operation.ACCOUNT_CHANGE,
    ("auth.user", "url:auth_user_password_change"): Operation.ACCOUNT_SET_PASSWORD,
    ("otp_totp.totpdevice", "delete"): Operation.SECOND_FACTOR_REMOVE,
    ("otp_static.staticdevice", "delete"): Operation.SECOND_FACTOR_REMOVE,
    ("axes.accessattempt", "delete"): Operation.STAFF_CLEAR_LOCKOUT,
}


def domain_of(operation: str | None, target_type: str) -> AuditAction | None:
    """The ``<domain>.refused`` event of a refusal: the operation's domain, else the
    target model's; ``None`` when neither names one (a route of no model)."""
    if operation:
        domain = operation.split(".", 1)[0]
        if domain in _OPERATION_DOMAINS:
            return _OPERATION_DOMAINS[domain]
        return AuditAction(f"{domain}.refused")
    return DOMAINS.get(target_type)


def forbidden_event(
    refused: AuditAction,
    *,
    actor: Any,
    operation: str | None,
    target_type: str,
    target_id: str,
    target_label: str,
    partner_id: int | None = None,
    changes: dict[str, Any] | None = None,
) -> AuditEvent:
    """The unsaved event of one refusal for lack of permission (see the module)."""
    extra = {"operation": str(operation)} if operation else {}
    return event(
        refused,
        actor=actor if isinstance(actor, User) and actor.pk else None,
        target_type=target_type,
        target_id=target_id[:64],
        target_label=target_label[:300],
        partner_id=partner_id,
        outcome=Outcome.DENIED,
        reason=str(Code.FORBIDDEN),
        changes={**(changes or {}), **extra},
    )
