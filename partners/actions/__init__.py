"""Every state change, one function each: checks, writes, audits, schedules follow-ups.

Admin, API, commands and tasks call these and nothing else to change domain rows.
"""

from accessctl.audit.events import AuditAction
from partners.refusals import refusals_recorded

from .accounts import (
    change_account,
    clear_lockout,
    create_account,
    enroll_totp,
    generate_backup_codes,
    remove_second_factor,
    set_password,
)
from .checkpoints import (
    ArtifactSpec,
    create_release,
    pull_checkpoint,
    register_checkpoint,
    update_release,
)
from .detections import fail_detection, request_detection, run_detection
from .downloads import FileAnswer, FileAsk, authorize_download, authorize_downloads
from .fingerprints import write_variants
from .grants import (
    approve_grant_request,
    check_grant,
    issue_grant,
    reject_grant_request,
    request_grant,
    revoke_grant,
)
from .lifecycle import (
    announce_deadlines,
    close_windows,
    expire_grants,
    expire_ndas,
    lift_embargoes,
    open_windows,
    queue_staff_digest,
    remind_pending_requests,
)
from .members import add_contact, add_member, change_contact, remove_contact, remove_member
from .partners import (
    create_partner,
    reinstate_partner,
    suspend_partner,
    terminate_partner,
    update_partner,
)
from .revocations import (
    cascade_revocation,
    withdraw_release,
)
from .schedules import change_schedule, create_crontab, create_interval
from .tokens import (
    claim_token,
    create_staff_token,
    invite_member_token,
    revoke_token,
    rotate_token,
)
from .windows import check_window, set_window

__all__ = [
    "ArtifactSpec",
    "FileAnswer",
    "FileAsk",
    "add_contact",
    "add_member",
    "announce_deadlines",
    "approve_grant_request",
    "authorize_download",
    "authorize_downloads",
    "cascade_revocation",
    "change_account",
    "change_contact",
    "change_schedule",
    "check_grant",
    "check_window",
    "claim_token",
    "clear_lockout",
    "close_windows",
    "create_account",
    "create_crontab",
    "create_interval",
    "create_partner",
    "create_release",
    "create_staff_token",
    "enroll_totp",
    "expire_grants",
    "expire_ndas",
    "fail_detection",
    "generate_backup_codes",
    "invite_member_token",
    "issue_grant",
    "lift_embargoes",
    "open_windows",
    "pull_checkpoint",
    "queue_staff_digest",
    "register_checkpoint",
    "reinstate_partner",
    "reject_grant_request",
    "remind_pending_requests",
    "remove_contact",
    "remove_member",
    "remove_second_factor",
    "request_detection",
    "request_grant",
    "revoke_grant",
    "revoke_token",
    "rotate_token",
    "run_detection",
    "set_password",
    "set_window",
    "suspend_partner",
    "terminate_partner",
    "update_partner",
    "update_release",
    "withdraw_release",
    "write_variants",
]

# Every public action, with the event its refusals are recorded as. Each is wrapped so
# that a refusal is recorded after its transaction rolled back (``partners.refusals``); an
# action missing here fails at import, so no new action can refuse without evidence.
REFUSAL_EVENTS = {
    "set_password": AuditAction.ACCOUNT_REFUSED,
    "remove_second_factor": AuditAction.SECOND_FACTOR_REFUSED,
    "generate_backup_codes": AuditAction.SECOND_FACTOR_REFUSED,
    "enroll_totp": AuditAction.SECOND_FACTOR_REFUSED,
    "create_account": AuditAction.ACCOUNT_REFUSED,
    "clear_lockout": AuditAction.ACCOUNT_REFUSED,
    "change_account": AuditAction.ACCOUNT_REFUSED,
    "add_contact": AuditAction.CONTACT_REFUSED,
    "add_member": AuditAction.MEMBER_REFUSED,
    "announce_deadlines": AuditAction.WINDOW_REFUSED,
    "approve_grant_request": AuditAction.GRANT_REQUEST_REFUSED,
    "authorize_download": AuditAction.DOWNLOAD_DENIED,
    "authorize_downloads": AuditAction.DOWNLOAD_DENIED,
    "cascade_revocation": AuditAction.REVOCATION_REFUSED,
    "change_contact": AuditAction.CONTACT_REFUSED,
    "change_schedule": AuditAction.SCHEDULE_REFUSED,
    "check_grant": AuditAction.GRANT_REFUSED,
    "check_window": AuditAction.WINDOW_REFUSED,
    "claim_token": AuditAction.TOKEN_REFUSED,
    "close_windows": AuditAction.WINDOW_REFUSED,
    "create_crontab": AuditAction.SCHEDULE_REFUSED,
    "create_interval": AuditAction.SCHEDULE_REFUSED,
    "create_partner": AuditAction.PARTNER_REFUSED,
    "create_release": AuditAction.RELEASE_REFUSED,
    "create_staff_token": AuditAction.TOKEN_REFUSED,
    "expire_grants": AuditAction.GRANT_REFUSED,
    "expire_ndas": AuditAction.PARTNER_REFUSED,
    "invite_member_token": AuditAction.TOKEN_REFUSED,
    "issue_grant": AuditAction.GRANT_REFUSED,
    "lift_embargoes": AuditAction.WINDOW_REFUSED,
    "open_windows": AuditAction.WINDOW_REFUSED,
    "pull_checkpoint": AuditAction.CHECKPOINT_REFUSED,
    "queue_staff_digest": AuditAction.GRANT_REQUEST_REFUSED,
    "register_checkpoint": AuditAction.CHECKPOINT_REFUSED,
    "reinstate_partner": AuditAction.PARTNER_REFUSED,
    "reject_grant_request": AuditAction.GRANT_REQUEST_REFUSED,
    "remind_pending_requests": AuditAction.GRANT_REQUEST_REFUSED,
    "remove_contact": AuditAction.CONTACT_REFUSED,
    "remove_member": AuditAction.MEMBER_REFUSED,
    "request_grant": AuditAction.GRANT_REFUSED,
    "revoke_grant": AuditAction.GRANT_REFUSED,
    "revoke_token": AuditAction.TOKEN_REFUSED,
    "rotate_token": AuditAction.TOKEN_REFUSED,
    "set_window": AuditAction.WINDOW_REFUSED,
    "suspend_partner": AuditAction.PARTNER_REFUSED,
    "terminate_partner": AuditAction.PARTNER_REFUSED,
    "update_partner": AuditAction.PARTNER_REFUSED,
    "update_release": AuditAction.RELEASE_REFUSED,
    "withdraw_release": AuditAction.RELEASE_REFUSED,
    "request_detection": AuditAction.DETECTION_REFUSED,
    "run_detection": AuditAction.DETECTION_REFUSED,
    "fail_detection": AuditAction.DETECTION_REFUSED,
    "write_variants": AuditAction.CHECKPOINT_REFUSED,
}


def _wrap_all() -> None:
    namespace = globals()
    for name in __all__:
        if name[0].islower():
            namespace[name] = refusals_recorded(REFUSAL_EVENTS[name])(namespace[name])


_wrap_all()
