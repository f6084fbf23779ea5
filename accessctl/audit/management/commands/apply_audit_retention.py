from argparse import ArgumentParser
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accessctl.audit.retention import RetentionError, apply_retention


class Command(BaseCommand):
    help = (
        "The audited retention procedure: delete sealed audit events older than DAYS days "
        "(at least ACCESSCTL_AUDIT_RETENTION_MIN_DAYS, enforced by apply_retention). Leaves, tree and checkpoints stay."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--older-than-days", type=int, required=True)
        parser.add_argument("--operator", required=True, help="who runs it (kept in the audit)")
        parser.add_argument("--yes", action="store_true", help="really delete")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["older_than_days"]
        if not options["yes"]:
            raise CommandError("This deletes audit events for good; add --yes to proceed.")
        try:
            retention = apply_retention(
                older_than=timedelta(days=days), operator=options["operator"]
            )
        except RetentionError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Deleted {retention.events_deleted} events below leaf {retention.purged_below}."
        )
