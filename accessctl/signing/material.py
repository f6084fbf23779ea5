"""Key material: the key-encryption key and a new, encrypted Ed25519 key (not saved)."""

import os
import secrets

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.utils import timezone

from accessctl_wire import unb64

from .models import SigningKey

__all__ = ["kek", "new_key"]


def kek() -> AESGCM:
    # Operators may paste the key with base64 padding; the wire format never has it.
    return AESGCM(unb64(settings.ACCESSCTL_KEY_ENCRYPTION_KEY.rstrip("=")))


def new_key() -> SigningKey:
    private = Ed25519PrivateKey.generate()
    kid = f"{timezone.now():%Y%m%d}-{secrets.token_hex(4)}"
    nonce = os.urandom(12)
    raw = private.private_bytes_raw()
    return SigningKey(
        kid=kid,
        public_key=private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
        private_key_encrypted=nonce + kek().encrypt(nonce, raw, kid.encode()),
    )
