"""API token secrets: format, checksum and keyed digest.

A token reads ``acx_`` + 30 random base62 characters + a 6-character base62 CRC32 of
them. The fixed prefix and the checksum let secret scanners recognise a leaked token
with no false positives, and let the server refuse a mistyped one without a database
query. Only ``HMAC-SHA256(pepper, token)`` is stored; the pepper has an id so it can
rotate (old peppers keep verifying their tokens).
"""

import hashlib
import hmac
import re
import secrets
import zlib
from enum import StrEnum

from django.conf import settings

__all__ = ["PREFIX", "Scope", "digests", "generate", "is_well_formed"]

PREFIX = "acx_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY = 30
_CHECK = 6
_FORMAT = re.compile(rf"^{PREFIX}[0-9A-Za-z]{{{_BODY + _CHECK}}}\Z")


class Scope(StrEnum):
    READ = "read"
    REQUEST_GRANTS = "grants:request"
    DOWNLOAD = "download"
    STAFF = "staff"


def _base62(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK)


def generate() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_BODY))
    return f"{PREFIX}{body}{_checksum(body)}"


def is_well_formed(token: str) -> bool:
    if not _FORMAT.match(token):
        return False
    body, check = token[len(PREFIX) : -_CHECK], token[-_CHECK:]
    return hmac.compare_digest(_checksum(body), check)


def digest(token: str, pepper_id: str) -> str:
    pepper = settings.ACCESSCTL_TOKEN_PEPPERS[pepper_id].encode()
    return hmac.new(pepper, token.encode(), hashlib.sha256).hexdigest()


def digests(token: str) -> list[str]:
    """The token's digest under every configured pepper: one indexed ``IN`` query finds it
    whichever pepper it was made under."""
    return [digest(token, pepper_id) for pepper_id in settings.ACCESSCTL_TOKEN_PEPPERS]
