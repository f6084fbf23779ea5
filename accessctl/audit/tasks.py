"""Celery tasks of the audit trail: sealing (periodic) and exports (queue ``slow``)."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from accessctl.celery import RETRY

from . import exports, sealing

__all__ = ["seal_audit_log", "write_audit_export"]


@shared_task(**RETRY, soft_time_limit=120, time_limit=180)
def seal_audit_log() -> int | None:
    """Seal new events; the new tree size, or None when nothing was new."""
    checkpoint = sealing.seal()
    return checkpoint.tree_size if checkpoint else None


@shared_task(**RETRY, soft_time_limit=1800, time_limit=2400)
def write_audit_export(export_id: int) -> int:
    """Write one export's files; how many events it holds. A failure other than the
    database's (retried) marks the export failed, with the reason, for the portal."""
    try:
        return exports.write_export(export_id).events
    except (OperationalError, InterfaceError):
        raise
    except Exception as exc:
        exports.mark_export_failed(export_id, f"{type(exc).__name__}: {exc}")
        raise
