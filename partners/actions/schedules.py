"""The periodic tasks (django-celery-beat rows) as audited controls.

Sealing the audit log, expiring grants, resuming revocations: each runs because a
``PeriodicTask`` row says so. Switching one off is switching a control off, so every
change to a schedule is an action with its ``schedule.changed`` event (before and after),
and the staff dashboard names each lifecycle schedule that is off, who turned it off and
when (``partners.queries.disabled_schedules``).
"""

import json
from typing import Any

from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from accessctl.actors import Actor
from accessctl.audit.events import AuditAction, record
from partners import queries
from partners.authority import Operation, authorize
from partners.errors import ActionError

from ._common import field_changes, now, snapshot, validate

__all__ = ["EDITABLE_FIELDS", "change_schedule", "create_crontab", "create_interval"]

# What a person may change. Not the task or its name (a schedule would then run other
# code), and not the fields that switch a task off without saying so: one-off, start
# time, expiry, queue and routing (a queue no worker reads).
EDITABLE_FIELDS = ("enabled", "interval", "crontab", "args", "kwargs", "description")


def _check_arguments(values: dict[str, Any]) -> None:
    errors = {}
    for name, kind in (("args", list), ("kwargs", dict)):
        if name not in values:
            continue
        try:
            parsed = json.loads(values[name])
        except (TypeError, ValueError):
            parsed = None
        if not isinstance(parsed, kind):
            errors[name] = [f"Must be a JSON {'list' if kind is list else 'object'}."]
    if errors:
        raise ActionError("invalid", "; ".join(f"{k}: {v[0]}" for k, v in errors.items()), errors)


@transaction.atomic
def change_schedule(*, actor: Actor, task: PeriodicTask, **values: Any) -> PeriodicTask:
    """Change a periodic task's ``EDITABLE_FIELDS``; records ``schedule.changed`` with
    ``{field: [before, after]}`` (nothing when nothing changed)."""
    authorize(actor, Operation.SCHEDULE_CHANGE, task)
    unknown = set(values) - set(EDITABLE_FIELDS)
    if unknown:
        raise ActionError("field_not_editable", f"Not editable: {', '.join(sorted(unknown))}.")
    _check_arguments(values)
    task = PeriodicTask.objects.select_for_update().get(pk=task.pk)
    before = snapshot(task, EDITABLE_FIELDS)
    for name, value in values.items():
        setattr(task, name, value)
    validate(task)  # exactly one kind of schedule, among others
    changes = field_changes(task, before, EDITABLE_FIELDS)
    if task.task in queries.LIFECYCLE_TASKS:
        _check_lifecycle(task, changes)
    if not changes:
        return task
    # save() also clears last_run_at when disabling and tells beat the schedule changed.
    task.save(update_fields=[*changes, "last_run_at"])
    record(AuditAction.SCHEDULE_CHANGED, actor=actor, target=task, changes=changes)
    return task


def _check_lifecycle(task: PeriodicTask, changes: dict[str, Any]) -> None:
    """A lifecycle task runs as shipped, or close to it.

    Its arguments are part of what runs (wrong ones fail every run, silently), so they
    are not editable (``schedule_arguments_fixed``). Its schedule may change, but not to
    run more than ``queries.MAX_SLOWDOWN`` times less often than shipped
    (``schedule_too_slow``): "seal every 100000 days" is switching sealing off without
    the switch. Within that, a changed schedule is a warning on the dashboard.
    """
    fixed = sorted({"args", "kwargs"} & set(changes))
    if fixed:
        raise ActionError(
            "schedule_arguments_fixed",
            f"{task.name}: the {' and '.join(fixed)} of a lifecycle task are part of what "
            "runs and cannot be changed.",
        )
    # Checked whenever the task ends up on: re-enabling a task whose schedule was slowed
    # while it was off is the same change.
    if {"interval", "crontab", "enabled"} & set(changes) and task.enabled:
        shipped = queries.SHIPPED_PERIODS[task.task]
        period = queries.schedule_period(task, at=now())
        if period is None or period > queries.MAX_SLOWDOWN * shipped:
            raise ActionError(
                "schedule_too_slow",
                f"{task.name} runs every {queries.span(shipped)} as shipped; it may run at "
                f"most {queries.MAX_SLOWDOWN} times less often. To stop it, switch it off "
                "(the dashboard then says so).",
            )


@transaction.atomic
def create_interval(*, actor: Actor, every: int, period: str) -> IntervalSchedule:
    """A new interval a periodic task may then be set to (``schedule.created``)."""
    authorize(actor, Operation.SCHEDULE_CREATE_INTERVAL)
    interval = IntervalSchedule(every=every, period=period)
    validate(interval)
    interval.save()
    record(
        AuditAction.SCHEDULE_CREATED,
        actor=actor,
        target=interval,
        changes={"every": [None, every], "period": [None, period]},
    )
    return interval


CRONTAB_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week", "timezone")


@transaction.atomic
def create_crontab(*, actor: Actor, **values: Any) -> CrontabSchedule:
    """A new crontab a periodic task may then be set to (``schedule.created``)."""
    authorize(actor, Operation.SCHEDULE_CREATE_CRONTAB)
    unknown = set(values) - set(CRONTAB_FIELDS)
    if unknown:
        raise ActionError("field_not_editable", f"Not editable: {', '.join(sorted(unknown))}.")
    crontab = CrontabSchedule(**values)
    validate(crontab)
    crontab.save()
    record(
        AuditAction.SCHEDULE_CREATED,
        actor=actor,
        target=crontab,
        changes={name: [None, str(getattr(crontab, name))] for name in CRONTAB_FIELDS},
    )
    return crontab
