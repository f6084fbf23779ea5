from typing import Any

from django.core.management.base import BaseCommand

from accessctl.audit.sealing import seal


class Command(BaseCommand):
    help = "Seal new audit events now and sign a checkpoint (the beat task does it every 5 s)."

    def handle(self, *args: Any, **options: Any) -> None:
        checkpoint = seal()
        if checkpoint is None:
            self.stdout.write("Nothing new to seal.")
        else:
            self.stdout.write(f"Sealed: tree size {checkpoint.tree_size}.")
