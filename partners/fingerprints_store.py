"""The lab's fingerprint secret and the per-(release, partner) keys derived from it
(docs/fingerprints.md, *Keys and commitments*; docs/security.md).

The secret is 32 random bytes, stored only encrypted, as the signing keys are: AES-256-GCM
under the key-encryption key (``accessctl.signing.material.kek``), a fresh 12-byte nonce
before the ciphertext, ``fingerprint-secret:<id>`` as associated data (so a blob copied to
another row does not decrypt). A key is derived when needed (``derive_key``: HKDF-SHA256
over the secret, naming the release and the partner) and never stored; what is stored,
audited and sealed is its commitment (``FingerprintKey``).

Nothing here logs, audits or returns a secret or key anywhere but to its caller.
"""

import os

from django.db import connection, transaction

from accessctl.signing.material import kek
from partners import fingerprints as fp
from partners.models import FingerprintKey, FingerprintSecret, Partner, Release

__all__ = ["current_secret", "key_for", "secret_of"]

SECRET_BYTES = 32
_LOCK = 0x66707273  # pg_advisory_xact_lock key of the first secret's creation ("fprs")


def _associated(secret_id: int) -> bytes:
    return f"fingerprint-secret:{secret_id}".encode()


def secret_of(row: FingerprintSecret) -> bytes:
    """The 32 bytes of ``row``, decrypted (``cryptography``'s ``InvalidTag`` when the row
    or the key-encryption key is not the one it was written with)."""
    blob = bytes(row.secret_encrypted)
    return kek().decrypt(blob[:12], blob[12:], _associated(row.pk))


@transaction.atomic
def current_secret() -> tuple[FingerprintSecret, bytes]:
    """The current secret (the newest row) and its bytes, made on first use.

    Two first uses racing make one row: the creation holds an advisory lock (PostgreSQL;
    SQLite serializes writers), and the second finds the first's row."""
    row = FingerprintSecret.objects.order_by("-created_at", "-pk").first()
    if row is None and connection.vendor == "postgresql":
        # Only the first use locks (until its transaction ends), then looks again.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
        row = FingerprintSecret.objects.order_by("-created_at", "-pk").first()
    if row is None:
        # The associated data names the row's id, so the row exists before its ciphertext.
        row = FingerprintSecret.objects.create(secret_encrypted=b"")
        raw, nonce = os.urandom(SECRET_BYTES), os.urandom(12)
        row.secret_encrypted = nonce + kek().encrypt(nonce, raw, _associated(row.pk))
        row.save(update_fields=["secret_encrypted"])
        return row, raw
    return row, secret_of(row)


def key_for(release: Release, partner: Partner) -> bytes:
    """The 32-byte key of ``partner``'s copy of ``release``: derived from the secret its
    commitment (``FingerprintKey``) was made with, else from the current secret (before
    any commitment exists). Keep it in memory only."""
    committed = (
        FingerprintKey.objects.select_related("secret")
        .filter(release=release, partner=partner)
        .first()
    )
    raw = secret_of(committed.secret) if committed is not None else current_secret()[1]
    return fp.derive_key(raw, release.slug, partner.slug)
