"""The writes to the signing keys: each one function, in one transaction, with its audit
event where a person causes it. The management command, and anything else, calls these.

A platform action module (tests/test_write_path.py): the platform may not import the
domain, so these live beside the model rather than in ``partners/actions``.
"""

from django.db import IntegrityError, transaction
from django.utils import timezone

from accessctl.actors import Actor
from accessctl.audit.events import AuditAction, record

from .material import new_key
from .models import SigningKey

__all__ = ["ensure_signing_key", "rotate_signing_key"]


def ensure_signing_key() -> SigningKey:
    """The active key, made on first use (a fresh installation signs its first token).

    Not audited: nobody causes it, and every later rotation is. Race-safe: the database
    allows one active key, so a second process that loses the race reads the winner's.
    """
    key = SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).first()
    if key is not None:
        return key
    try:
        with transaction.atomic():
            key = new_key()
            key.save()
            return key
    except IntegrityError:  # another process made it first
        return SigningKey.objects.get(status=SigningKey.Status.ACTIVE)


@transaction.atomic
def rotate_signing_key(*, actor: Actor = None) -> tuple[SigningKey, list[str]]:
    """Retire the active key and make a new one; ``signing_key.rotated`` names both.
    Returns the new key and the key ids retired.

    Retired keys keep verifying: tokens and manifests signed before stay valid, new ones
    use the new key (published in the JWKS at once).
    """
    retired = list(
        SigningKey.objects.select_for_update()
        .filter(status=SigningKey.Status.ACTIVE)
        .values_list("kid", flat=True)
    )
    SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).update(
        status=SigningKey.Status.RETIRED, retired_at=timezone.now()
    )
    key = new_key()
    key.save()
    record(
        AuditAction.SIGNING_KEY_ROTATED,
        actor=actor,
        target=key,
        changes={"kid": key.kid, "retired": retired},
    )
    return key, retired
