from .fingerprints import ArtifactVariant, Detection, FingerprintKey, FingerprintSecret
from .grants import DownloadLease, Grant, GrantApproval, GrantRequest
from .notifications import Notification
from .partners import Membership, Partner, PartnerContact
from .releases import Artifact, Checkpoint, Release
from .revocations import Revocation
from .tokens import AccessToken, TokenInvitation
from .windows import EmbargoWindow

__all__ = [
    "AccessToken",
    "Artifact",
    "ArtifactVariant",
    "Checkpoint",
    "Detection",
    "DownloadLease",
    "EmbargoWindow",
    "FingerprintKey",
    "FingerprintSecret",
    "Grant",
    "GrantApproval",
    "GrantRequest",
    "Membership",
    "Notification",
    "Partner",
    "PartnerContact",
    "Release",
    "Revocation",
    "TokenInvitation",
]
