"""Why a signed token did not verify, as a type (no Django: the access rules import it)."""

from enum import StrEnum

__all__ = ["TokenFailure"]


class TokenFailure(StrEnum):
    """Callers branch on this, never on an exception's message."""

    INVALID = "invalid"  # not ours, tampered with, unknown or revoked key, malformed
    EXPIRED = "expired"  # past its ``exp``
    NOT_YET_VALID = "not_yet_valid"  # before its ``nbf``
