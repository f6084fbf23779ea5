"""Every state change, one function each: checks, writes, audits, schedules follow-ups.

Admin, API, commands and tasks call these and nothing else to change domain rows.
"""

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
from .tokens import create_token, revoke_token
from .windows import check_window, set_window

__all__ = [
    "ArtifactSpec",
    "announce_deadlines",
    "approve_grant_request",
    "authorize_download",
    "cascade_revocation",
    "change_schedule",
    "check_grant",
    "check_window",
    "close_windows",
    "create_crontab",
    "create_interval",
    "create_partner",
    "create_release",
    "create_token",
    "expire_grants",
    "expire_ndas",
    "issue_grant",
    "lift_embargoes",
    "open_windows",
    "pull_checkpoint",
    "queue_staff_digest",
    "register_checkpoint",
    "reinstate_partner",
    "reject_grant_request",
    "remind_pending_requests",
    "request_grant",
    "revoke_grant",
    "revoke_token",
    "set_window",
    "suspend_partner",
    "terminate_partner",
    "update_partner",
    "update_release",
    "withdraw_release",
]
