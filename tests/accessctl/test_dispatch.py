"""Tasks are queued by the task object wherever the caller may import it; the callers below
the tasks (an action or a notification enqueuing the task that calls it) name it instead.
Those names, and every other task name the code holds as data (routes, the shipped
schedules), must be registered tasks: a typo would otherwise only show as work that never
runs."""

import ast
from pathlib import Path

from django.conf import settings

import accessctl.audit.tasks
import partners.tasks
from accessctl.celery import app
from partners.queries import SHIPPED_PERIODS

ROOT = Path(__file__).resolve().parents[2]
DISPATCHERS = {"after_commit", "send"}


def _named_in_code() -> set[tuple[str, str]]:
    """``(file, name)`` for every ``after_commit("...")`` or ``send("...")``."""
    found = set()
    for package in ("accessctl", "partners"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                first = node.args[0]
                if called in DISPATCHERS and isinstance(first, ast.Constant):
                    found.add((str(path.relative_to(ROOT)), str(first.value)))
    return found


def test_every_task_named_in_the_code_is_registered():
    registered = set(app.tasks)
    assert partners.tasks.cascade_revocation.name in registered
    assert accessctl.audit.tasks.write_audit_export.name in registered
    named = _named_in_code()
    assert named, "the scan finds the by-name calls"
    assert {(where, name) for where, name in named if name not in registered} == set()


def test_every_routed_or_scheduled_task_is_registered():
    registered = set(app.tasks)
    assert set(settings.CELERY_TASK_ROUTES) - registered == set()
    assert set(SHIPPED_PERIODS) - registered == set()
