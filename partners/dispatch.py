"""Hand work to Celery after the change commits: platform code (``accessctl.dispatch``),
re-exported here for the domain's actions, notifications and tasks."""

from accessctl.dispatch import after_commit, send

__all__ = ["after_commit", "send"]
