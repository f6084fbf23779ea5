from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accessctl_wire import verify_export


class Command(BaseCommand):
    help = (
        "Verify an audit export offline against the lab's public key: signatures, "
        "inclusion proofs, checkpoint consistency. Names each event or checkpoint that fails."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", help="the export's .jsonl file")
        parser.add_argument(
            "--public-key", required=True, help="the lab's JWKS (jwks.json) or a PEM key"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        status = verify_export.main([options["file"], "--public-key", options["public_key"]])
        if status:
            raise CommandError("the export does not verify" if status == 1 else "cannot verify")
