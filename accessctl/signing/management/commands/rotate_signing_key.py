"""Retire the active signing key and make a new one (audited).

Grant tokens and manifests signed by the retired key keep verifying; new ones use the new
key. Partners that pin a key (`--public-key`) need the new public key: it is published at
/.well-known/jwks.json at once.
"""

from typing import Any

from django.core.management.base import BaseCommand

from accessctl.signing.actions import rotate_signing_key


class Command(BaseCommand):
    help = "Retire the active Ed25519 signing key and make a new one."

    def handle(self, *args: Any, **options: Any) -> None:
        key, retired = rotate_signing_key(actor=None)
        self.stdout.write(f"new signing key {key.kid}; retired: {', '.join(retired) or 'none'}")
