"""Hand work to Celery after the change commits, without ever failing the change.

Enforcement does not wait for a worker: the change is committed before this runs. If the
broker is down, the task is not sent and a warning is logged; the periodic sweepers
(``resume_revocations``, ``send_notifications``) find the work in the database and
send it when the broker is back. No retry here, so a request never waits on a broker.
"""

import logging
from typing import Any

from celery import Task, current_app
from django.db import transaction

__all__ = ["after_commit", "send"]

log = logging.getLogger(__name__)


def send(task: Task[..., Any] | str, *args: Any) -> bool:
    """Queue ``task`` with ``args`` now; ``False`` (and a warning) when the broker is down.

    ``task`` is the task itself wherever the caller may import it. Its name is for the
    callers below the tasks (an action or a notification enqueuing the task that calls
    it: importing it would be a cycle); ``tests/accessctl/test_dispatch.py`` checks that
    every such name is a registered task.
    """
    name = task if isinstance(task, str) else task.name
    try:
        if isinstance(task, str):
            current_app.send_task(task, args=args, retry=False)
        else:
            task.apply_async(args=args, retry=False)
    except Exception as exc:  # the broker is unreachable: the sweeper picks it up
        log.warning("could not queue %s%r (%s); a periodic sweep will run it", name, args, exc)
        return False
    return True


def after_commit(task: Task[..., Any] | str, *args: Any) -> None:
    """Queue ``task`` (as ``send``) once the current transaction commits (never if it rolls
    back)."""
    transaction.on_commit(lambda: send(task, *args))
