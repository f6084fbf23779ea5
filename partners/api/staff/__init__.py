"""Staff API for automation (release pipelines, incident response).

One view per operation; each parses, calls one action and renders. The action checks
the token user's own permissions, so a token can do no more than its owner. One module
per concept: checkpoints, windows, grants (and grant requests), partners, releases,
revocations, audit exports.
"""

from .audit_exports import AuditExportApi, AuditExportCreateApi, AuditExportFileApi
from .checkpoints import CheckpointPullApi, CheckpointRegisterApi
from .detections import DetectionApi, DetectionCreateApi, DetectionListApi
from .grants import GrantIssueApi, GrantRequestApproveApi, GrantRequestRejectApi, GrantRevokeApi
from .partners import PartnerReinstateApi, PartnerSuspendApi
from .releases import ReleaseWithdrawApi
from .revocations import RevocationApi
from .windows import WindowApi, WindowCreateApi

__all__ = [
    "AuditExportApi",
    "AuditExportCreateApi",
    "AuditExportFileApi",
    "CheckpointPullApi",
    "CheckpointRegisterApi",
    "DetectionApi",
    "DetectionCreateApi",
    "DetectionListApi",
    "GrantIssueApi",
    "GrantRequestApproveApi",
    "GrantRequestRejectApi",
    "GrantRevokeApi",
    "PartnerReinstateApi",
    "PartnerSuspendApi",
    "ReleaseWithdrawApi",
    "RevocationApi",
    "WindowApi",
    "WindowCreateApi",
]
