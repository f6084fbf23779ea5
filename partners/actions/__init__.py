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
from .lifecycle import expire_grants
from .partners import (
    create_partner,
    reinstate_partner,
    suspend_partner,
    terminate_partner,
    update_partner,
)
from .tokens import create_token, revoke_token
from .windows import check_window, set_window

__all__ = [
    "ArtifactSpec",
    "approve_grant_request",
    "authorize_download",
    "check_grant",
    "check_window",
    "create_partner",
    "create_release",
    "create_token",
    "expire_grants",
    "issue_grant",
    "pull_checkpoint",
    "register_checkpoint",
    "reinstate_partner",
    "reject_grant_request",
    "request_grant",
    "revoke_grant",
    "revoke_token",
    "set_window",
    "suspend_partner",
    "terminate_partner",
    "update_partner",
    "update_release",
]
