"""Every state change, one function each: checks, writes, audits, schedules follow-ups.

Admin, API, commands and tasks call these and nothing else to change domain rows.
"""

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
from .downloads import authorize_download
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
    "add_contact",
    "add_member",
    "announce_deadlines",
    "approve_grant_request",
    "authorize_download",
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
    "request_grant",
    "revoke_grant",
    "revoke_token",
    "rotate_token",
    "set_password",
    "set_window",
    "suspend_partner",
    "terminate_partner",
    "update_partner",
    "update_release",
    "withdraw_release",
]
