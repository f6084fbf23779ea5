"""accessctl: embargoed sharing of pre-release model checkpoints.

The Celery app (``accessctl.celery``) is loaded when Django starts (``AuditConfig.ready``)
and by ``celery -A accessctl``; importing this package loads neither Django nor Celery,
so the partner CLI (``accessctl.cli``) stays light.
"""
