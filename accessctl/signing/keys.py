"""Signing and verifying with the lab's keys.

Grants are presented as compact JWS (``alg`` EdDSA, ``kid`` in the header, via PyJWT);
manifests and audit checkpoints carry a detached Ed25519 signature over their canonical
form (``accessctl_wire.canonical_json``, ``checkpoint_text``). Private keys are
decrypted once per process and kept in memory only.
"""

import re
import time
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from accessctl_wire import b64, unb64

from .actions import ensure_signing_key, rotate_signing_key
from .failures import TokenFailure
from .material import kek
from .models import SigningKey

__all__ = [
    "BadSignature",
    "TokenFailure",
    "current_key",
    "jwks",
    "rotate_key",
    "sign_detached",
    "sign_token",
    "verify_detached",
    "verify_token",
]

ISSUER = "accessctl"
_KID = re.compile(r"^[A-Za-z0-9._-]{1,64}\Z")


class BadSignature(Exception):
    """Not signed by a key we trust, tampered with, or expired: ``failure`` says which."""

    def __init__(self, message: str, failure: TokenFailure = TokenFailure.INVALID) -> None:
        super().__init__(message)
        self.failure = failure


@cache
def _private(kid: str) -> Ed25519PrivateKey:
    row = SigningKey.objects.get(kid=kid, status=SigningKey.Status.ACTIVE)
    blob = bytes(row.private_key_encrypted)
    raw = kek().decrypt(blob[:12], blob[12:], kid.encode())
    return Ed25519PrivateKey.from_private_bytes(raw)


def _public(kid: str) -> Ed25519PublicKey:
    """The public key of a key that may still verify (active or retired).

    Cached per process for ``ACCESSCTL_KEY_CACHE_SECONDS``: revoking a signing key takes
    effect within that time. (A grant token alone never authorizes anything: the grant's
    row, the partner's API token and the decision are checked on every request.)
    """
    now = time.monotonic()
    cached = _PUBLIC_CACHE.get(kid)
    if cached is not None and cached[0] > now:
        return cached[1]
    row = (
        SigningKey.objects.filter(kid=kid)
        .exclude(status=SigningKey.Status.REVOKED)
        .only("public_key")
        .first()
    )
    if row is None:
        _PUBLIC_CACHE.pop(kid, None)
        raise BadSignature(f"unknown or revoked key {kid!r}")
    key = Ed25519PublicKey.from_public_bytes(bytes(row.public_key))
    _PUBLIC_CACHE[kid] = (now + settings.ACCESSCTL_KEY_CACHE_SECONDS, key)
    return key


_PUBLIC_CACHE: dict[str, tuple[float, Ed25519PublicKey]] = {}


def current_key() -> SigningKey:
    """The active key, made on first use (``actions.ensure_signing_key``)."""
    return ensure_signing_key()


def rotate_key() -> SigningKey:
    """Retire the active key and make a new one, audited: ``actions.rotate_signing_key``."""
    return rotate_signing_key()[0]


def sign_token(claims: dict[str, Any]) -> str:
    """A JWS (RFC 7515, EdDSA) of ``claims`` plus our ``iss``, signed by the active key."""
    return sign_tokens([claims])[0]


def sign_tokens(claims: list[dict[str, Any]]) -> list[str]:
    """``sign_token`` for each of ``claims``, in order, reading the active key once."""
    key = current_key()
    private = _private(key.kid)
    return [
        jwt.encode({"iss": ISSUER, **c}, private, algorithm="EdDSA", headers={"kid": key.kid})
        for c in claims
    ]


def verify_token(token: str, *, leeway: int = 0) -> dict[str, Any]:
    """Claims of a valid, unexpired token signed by one of our keys; else ``BadSignature``."""
    try:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        # A key id is looked up in the database: only the shape ours have (no NUL, no
        # surrogate, no megabyte), anything else is a token of no key of ours.
        if not isinstance(kid, str) or not _KID.match(kid) or header.get("alg") != "EdDSA":
            raise BadSignature("not an accessctl token")
        return jwt.decode(
            token,
            _public(kid),
            algorithms=["EdDSA"],
            issuer=ISSUER,
            leeway=leeway,
            options={"require": ["exp", "nbf", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise BadSignature(str(exc), TokenFailure.EXPIRED) from exc
    except jwt.ImmatureSignatureError as exc:
        raise BadSignature(str(exc), TokenFailure.NOT_YET_VALID) from exc
    except jwt.PyJWTError as exc:
        raise BadSignature(str(exc)) from exc


def sign_detached(payload: bytes) -> dict[str, str]:
    key = current_key()
    return {"alg": "EdDSA", "kid": key.kid, "signature": b64(_private(key.kid).sign(payload))}


def verify_detached(payload: bytes, signature: dict[str, str]) -> None:
    from cryptography.exceptions import InvalidSignature

    try:
        _public(signature["kid"]).verify(unb64(signature["signature"]), payload)
    except (InvalidSignature, KeyError, ValueError) as exc:
        raise BadSignature("signature does not verify") from exc


def jwks() -> dict[str, Any]:
    """Public keys that verify: the active one and those retired but not revoked."""
    keys = SigningKey.objects.exclude(status=SigningKey.Status.REVOKED).order_by("-created_at")
    return {
        "keys": [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "alg": "EdDSA",
                "use": "sig",
                "kid": key.kid,
                "x": b64(bytes(key.public_key)),
                "status": key.status,
            }
            for key in keys
        ]
    }
