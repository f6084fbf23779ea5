"""accessctl: embargoed sharing of pre-release model checkpoints (the server).

The Celery app (``accessctl.celery``) is loaded when Django starts (``AuditConfig.ready``)
and by ``celery -A accessctl``; importing this package loads neither Django nor Celery.
The partner CLI is not here: it is ``accessctl_cli``, in the client distribution
(``client/``), which this one depends on.
"""
