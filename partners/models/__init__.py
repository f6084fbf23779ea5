from .grants import Grant, GrantApproval, GrantRequest
from .partners import Membership, Partner, PartnerContact
from .releases import Artifact, Checkpoint, Release
from .tokens import AccessToken
from .windows import EmbargoWindow

__all__ = [
    "AccessToken",
    "Artifact",
    "Checkpoint",
    "EmbargoWindow",
    "Grant",
    "GrantApproval",
    "GrantRequest",
    "Membership",
    "Partner",
    "PartnerContact",
    "Release",
]
