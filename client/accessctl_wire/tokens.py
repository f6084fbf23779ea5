"""The API token format: ``acx_`` + 30 random base62 characters + a 6-character base62
CRC32 of them.

The fixed prefix and the checksum let secret scanners recognise a leaked token with no
false positives, and let the server (and the CLI, before sending it anywhere) refuse a
mistyped one without a database query. What the server stores is a keyed digest of the
token (``partners.tokens``): a server secret, not part of the wire format.
"""

import hmac
import re
import secrets
import zlib

__all__ = ["PREFIX", "generate", "is_well_formed"]

PREFIX = "acx_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY = 30
_CHECK = 6
_FORMAT = re.compile(rf"^{PREFIX}[0-9A-Za-z]{{{_BODY + _CHECK}}}\Z")


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
