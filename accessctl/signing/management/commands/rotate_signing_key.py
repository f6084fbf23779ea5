"""Retire the active signing key and make a new one (audited).

Grant tokens and manifests signed by the retired key keep verifying; new ones use the new
key. Partners that pin a key (`--public-key`) need the new public key: it is published at
/.well-known/jwks.json at once.
"""

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from accessctl.audit.events import AuditAction, record
from accessctl.signing.keys import rotate_key
from accessctl.signing.models import SigningKey


class Command(BaseCommand):
    help = "Retire the active Ed25519 signing key and make a new one."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            retired = list(
                SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).values_list(
                    "kid", flat=True
                )
            )
            key = rotate_key()
            record(
                AuditAction.SIGNING_KEY_ROTATED,
                actor=None,
                target=key,
                changes={"kid": key.kid, "retired": retired},
            )
        self.stdout.write(f"new signing key {key.kid}; retired: {', '.join(retired) or 'none'}")
