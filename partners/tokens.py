"""API token secrets on the server: scopes and the keyed digest.

The token format (prefix, checksum, generation) is wire format, shared with the CLI:
``accessctl_wire.tokens``, re-exported here for the server's callers. Only
``HMAC-SHA256(pepper, token)`` is stored; the pepper has an id so it can rotate (old
peppers keep verifying their tokens).
"""

import hashlib
import hmac
from enum import StrEnum
from typing import TYPE_CHECKING

from django.conf import settings

from accessctl_wire import formats
from accessctl_wire.tokens import PREFIX, generate, is_well_formed

if TYPE_CHECKING:
    from partners.models import AccessToken

__all__ = ["PREFIX", "Scope", "described", "digest", "digests", "generate", "is_well_formed"]


class Scope(StrEnum):
    READ = "read"
    REQUEST_GRANTS = "grants:request"
    DOWNLOAD = "download"
    STAFF = "staff"


def digest(token: str, pepper_id: str) -> str:
    pepper = settings.ACCESSCTL_TOKEN_PEPPERS[pepper_id].encode()
    return hmac.new(pepper, token.encode(), hashlib.sha256).hexdigest()


def digests(token: str) -> list[str]:
    """The token's digest under every configured pepper: one indexed ``IN`` query finds it
    whichever pepper it was made under."""
    return [digest(token, pepper_id) for pepper_id in settings.ACCESSCTL_TOKEN_PEPPERS]


def described(token: "AccessToken") -> dict[str, str]:
    """What the page that shows a new token once says of it, each value present:
    ``name``, ``owner`` (username), ``partner`` (slug, empty for staff), ``scopes``
    (comma-separated) and ``expires`` (``2027-02-27 16:30:05 UTC``)."""
    return {
        "name": token.name,
        "owner": token.user.get_username(),
        "partner": token.partner.slug if token.partner is not None else "",
        "scopes": ", ".join(token.scopes) or "no scopes",
        "expires": formats.moment(token.expires_at),
    }
