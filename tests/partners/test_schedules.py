"""Schedules (django-celery-beat periodic tasks) are audited controls."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from accessctl.audit.models import AuditEvent
from partners import actions, queries
from partners.errors import ActionError, ActionForbidden
from tests import factories as f
from tests.accessctl.test_portal import portal_client

pytestmark = pytest.mark.django_db

SEAL = "accessctl.audit.tasks.seal_audit_log"
RESUME = "partners.tasks.resume_revocations"


def task(path: str = SEAL) -> PeriodicTask:
    return PeriodicTask.objects.get(task=path)


def state() -> list[tuple]:
    return list(
        PeriodicTask.objects.order_by("pk").values_list(
            "pk", "enabled", "interval_id", "crontab_id", "args", "kwargs", "description"
        )
    )


def schedule_events():
    return AuditEvent.objects.filter(action__startswith="schedule.")


REFUSED = {
    "Release manager": lambda: f.staff("Release manager"),
    "Partner manager": lambda: f.staff("Partner manager"),
    "Compliance": lambda: f.staff("Compliance"),
    "staff without a role": lambda: f.staff(),
    "partner member": lambda: f.partner_user(f.partner()),
    "inactive security officer": lambda: f.staff("Security officer", is_active=False),
}


def test_every_migrated_schedule_is_a_lifecycle_control():
    installed = set(PeriodicTask.objects.values_list("task", flat=True))
    assert installed == queries.LIFECYCLE_TASKS


@pytest.mark.parametrize("who", sorted(REFUSED))
def test_roles_without_the_permission_cannot_change_a_schedule(who):
    actor = REFUSED[who]()
    before = state()
    with pytest.raises(ActionForbidden):
        actions.change_schedule(actor=actor, task=task(), enabled=False)
    with pytest.raises(ActionForbidden):
        actions.create_interval(actor=actor, every=5, period="minutes")
    with pytest.raises(ActionForbidden):
        actions.create_crontab(actor=actor, minute="0", hour="3")
    assert state() == before
    # Nothing changed; each refusal is evidence.
    refused = schedule_events().values_list("action", "reason")
    assert list(refused) == [("schedule.refused", "forbidden")] * 3


@pytest.mark.parametrize("who", ["Release manager", "Partner manager", "Compliance"])
def test_roles_without_the_permission_cannot_change_a_schedule_in_the_portal(client, who):
    c = portal_client(client, REFUSED[who]())
    seal = task()
    before = state()
    change = reverse("admin:django_celery_beat_periodictask_change", args=[seal.pk])
    assert c.get(change).status_code == 200  # they may look
    assert c.post(change, {"enabled": "", "args": "[]", "kwargs": "{}"}).status_code == 403
    changelist = reverse("admin:django_celery_beat_periodictask_changelist")
    c.post(changelist, {"action": "disable", "_selected_action": [seal.pk]})
    assert c.get(reverse("admin:django_celery_beat_intervalschedule_add")).status_code == 403
    assert state() == before
    assert not schedule_events().exclude(action="schedule.refused").exists()


def test_security_officer_disables_sealing_in_the_portal_with_evidence(client):
    officer = f.staff("Security officer")
    c = portal_client(client, officer)
    seal = task()
    change = reverse("admin:django_celery_beat_periodictask_change", args=[seal.pk])
    page = c.get(change).content.decode()
    assert 'name="task"' not in page and 'name="name"' not in page  # not editable
    crontab = CrontabSchedule.objects.get(hour="7")
    response = c.post(
        change,
        {
            "enabled": "",
            "interval": "",
            "crontab": crontab.pk,
            "args": "[]",
            "kwargs": "{}",
            "description": "paused for maintenance",
            "task": "partners.tasks.something_else",  # ignored: not a field of the form
        },
    )
    assert response.status_code == 302
    seal.refresh_from_db()
    assert (seal.enabled, seal.crontab, seal.interval, seal.task) == (False, crontab, None, SEAL)
    event = schedule_events().get()
    assert event.action == "schedule.changed" and event.actor == officer
    assert (event.target_type, event.target_id) == ("django_celery_beat.periodictask", str(seal.pk))
    assert event.changes["enabled"] == [True, False]
    assert event.changes["interval"] == ["every 5 seconds", None]
    assert event.changes["crontab"] == [None, str(crontab)]
    assert event.changes["description"] == ["", "paused for maintenance"]
    assert "task" not in event.changes


def test_list_actions_disable_and_enable_with_an_event_each(client):
    officer = f.staff("Security officer")
    c = portal_client(client, officer)
    changelist = reverse("admin:django_celery_beat_periodictask_changelist")
    picked = [task(SEAL).pk, task(RESUME).pk]
    assert c.post(changelist, {"action": "disable", "_selected_action": picked}).status_code == 302
    assert not PeriodicTask.objects.filter(pk__in=picked, enabled=True).exists()
    c.post(changelist, {"action": "enable", "_selected_action": picked[:1]})
    assert task(SEAL).enabled and not task(RESUME).enabled
    changes = list(schedule_events().order_by("id").values_list("target_id", "changes"))
    assert sorted(changes[:2]) == sorted((str(pk), {"enabled": [True, False]}) for pk in picked)
    assert changes[2:] == [(str(picked[0]), {"enabled": [False, True]})]


def test_no_change_writes_no_event():
    officer = f.staff("Security officer")
    actions.change_schedule(actor=officer, task=task(), enabled=True)
    assert not schedule_events().exists()


@pytest.mark.parametrize(
    ("values", "code"),
    [
        # (the task itself cannot even be named: ``task`` is the schedule being changed)
        ({"start_time": "2000-01-01T00:00:00Z"}, "field_not_editable"),
        ({"name": "renamed"}, "field_not_editable"),
        ({"one_off": True}, "field_not_editable"),
        ({"queue": "nobody-listens"}, "field_not_editable"),
        ({"args": "not json"}, "invalid"),
        ({"kwargs": "[]"}, "invalid"),
        ({"interval": None}, "invalid"),  # no schedule at all
    ],
)
def test_task_name_and_silent_off_switches_are_not_editable(values, code):
    before = state()
    with pytest.raises(ActionError) as refused:
        actions.change_schedule(actor=f.staff("Security officer"), task=task(), **values)
    assert refused.value.code == code
    assert state() == before
    assert list(schedule_events().values_list("action", "reason")) == [("schedule.refused", code)]


def test_no_one_adds_or_deletes_a_schedule_in_the_portal(client):
    c = portal_client(client, f.superuser())
    seal = task()
    assert c.get(reverse("admin:django_celery_beat_periodictask_add")).status_code == 403
    delete = reverse("admin:django_celery_beat_periodictask_delete", args=[seal.pk])
    assert c.post(delete, {"post": "yes"}).status_code == 403
    interval = seal.interval
    delete = reverse("admin:django_celery_beat_intervalschedule_delete", args=[interval.pk])
    assert c.post(delete, {"post": "yes"}).status_code == 403
    assert PeriodicTask.objects.filter(pk=seal.pk, interval=interval).exists()


def test_security_officer_creates_an_interval_and_a_crontab_with_evidence(client):
    officer = f.staff("Security officer")
    c = portal_client(client, officer)
    response = c.post(
        reverse("admin:django_celery_beat_intervalschedule_add"),
        {"every": "10", "period": "minutes"},
    )
    assert response.status_code == 302
    interval = IntervalSchedule.objects.get(every=10, period="minutes")
    response = c.post(
        reverse("admin:django_celery_beat_crontabschedule_add"),
        {
            "minute": "30",
            "hour": "2",
            "day_of_month": "*",
            "month_of_year": "*",
            "day_of_week": "*",
            "timezone": "UTC",
        },
    )
    assert response.status_code == 302
    crontab = CrontabSchedule.objects.get(minute="30", hour="2")
    events = {e.target_type: e for e in schedule_events()}
    assert events["django_celery_beat.intervalschedule"].target_id == str(interval.pk)
    assert events["django_celery_beat.intervalschedule"].changes["every"] == [None, 10]
    assert events["django_celery_beat.crontabschedule"].target_id == str(crontab.pk)
    assert {e.actor for e in events.values()} == {officer}
    # Made, a schedule is read-only: changing it would reschedule every task using it.
    change = reverse("admin:django_celery_beat_intervalschedule_change", args=[interval.pk])
    assert c.post(change, {"every": "1", "period": "days"}).status_code == 403


def test_dashboard_warns_of_disabled_lifecycle_schedules(client):
    officer = f.staff("Security officer", username="sofia")
    actions.change_schedule(actor=officer, task=task(SEAL), enabled=False)
    actions.change_schedule(actor=officer, task=task(RESUME), enabled=False)
    event = schedule_events().order_by("id").first()
    PeriodicTask.objects.filter(task="partners.tasks.expire_grants").update(enabled=False)
    viewer = portal_client(client, f.staff("Compliance"))
    page = viewer.get(reverse("admin:index")).content.decode()
    warning = page.split('id="disabled-schedules"')[1].split("</section>")[0]
    assert task(SEAL).name in warning and task(RESUME).name in warning
    assert SEAL in warning and "sofia" in warning
    assert event.occurred_at.strftime("%Y-%m-%d %H:%M") in warning
    # Switched off behind the portal's back: still shown, without a name.
    assert "Expire grants past their expiry" in warning
    assert "disabled outside the portal (no audit event)" in warning
    assert "Daily staff digest" not in warning  # still on


def test_dashboard_has_no_warning_while_every_schedule_runs(client):
    viewer = portal_client(client, f.staff("Compliance"))
    assert 'id="disabled-schedules"' not in viewer.get(reverse("admin:index")).content.decode()


# Switched off without the switch: a far-off schedule, arguments that fail every run, a
# task that stopped running or keeps failing. Each is refused or shown on the dashboard.


@pytest.fixture(autouse=True)
def _beat_has_just_run():
    """Every schedule ran a moment ago, as beat keeps them: the warnings about a task that
    is not running depend on the clock, not on how long ago the test database was made.
    Tests about a stalled task set their own ``last_run_at``."""
    PeriodicTask.objects.update(last_run_at=timezone.now())


def warnings_section(client) -> str:
    viewer = portal_client(client, f.staff("Compliance"))
    page = viewer.get(reverse("admin:index")).content.decode()
    if 'id="schedule-warnings"' not in page:
        return ""
    return page.split('id="schedule-warnings"')[1].split("</section>")[0]


@pytest.mark.parametrize("path", sorted(queries.LIFECYCLE_TASKS))
@pytest.mark.parametrize("values", [{"args": "[1, 2, 3]"}, {"kwargs": '{"bogus": 1}'}])
def test_a_lifecycle_tasks_arguments_are_not_editable(path, values):
    before = state()
    with pytest.raises(ActionError) as refused:
        actions.change_schedule(actor=f.staff("Security officer"), task=task(path), **values)
    assert refused.value.code == "schedule_arguments_fixed"
    assert state() == before
    assert [(e.action, e.reason) for e in schedule_events()] == [
        ("schedule.refused", "schedule_arguments_fixed")
    ]


@pytest.mark.parametrize("path", sorted(queries.LIFECYCLE_TASKS))
def test_a_lifecycle_task_cannot_be_slowed_past_the_bound(path):
    officer = f.staff("Security officer")
    shipped = queries.SHIPPED_PERIODS[path]
    slow = actions.create_interval(
        actor=officer,
        every=int(shipped.total_seconds()) * queries.MAX_SLOWDOWN + 1,
        period="seconds",
    )
    far = actions.create_interval(actor=officer, every=100000, period="days")
    before = state()
    for interval in (slow, far):
        with pytest.raises(ActionError) as refused:
            actions.change_schedule(actor=officer, task=task(path), interval=interval, crontab=None)
        assert refused.value.code == "schedule_too_slow"
    yearly = actions.create_crontab(
        actor=officer, minute="0", hour="0", day_of_month="1", month_of_year="1"
    )
    with pytest.raises(ActionError) as refused:
        actions.change_schedule(actor=officer, task=task(path), interval=None, crontab=yearly)
    assert refused.value.code == "schedule_too_slow"
    assert state() == before


def test_a_slower_schedule_within_the_bound_is_a_dashboard_warning(client):
    officer = f.staff("Security officer", username="sofia")
    ten = actions.create_interval(actor=officer, every=50, period="seconds")
    actions.change_schedule(actor=officer, task=task(SEAL), interval=ten)
    event = schedule_events().filter(action="schedule.changed").get()
    warning = warnings_section(client)
    assert task(SEAL).name in warning and "schedule changed" in warning
    assert "every 50 seconds" in warning and "shipped: every 5 seconds" in warning
    assert "sofia" in warning and event.occurred_at.strftime("%Y-%m-%d %H:%M") in warning
    assert task(RESUME).name not in warning
    # Back as shipped: no warning.
    actions.change_schedule(
        actor=officer,
        task=task(SEAL),
        interval=IntervalSchedule.objects.get(every=5, period="seconds"),
    )
    assert task(SEAL).name not in warnings_section(client)


def test_a_schedule_changed_behind_the_portals_back_is_a_warning(client):
    hourly = IntervalSchedule.objects.create(every=2, period="minutes")
    PeriodicTask.objects.filter(task=RESUME).update(interval=hourly)
    warning = warnings_section(client)
    assert task(RESUME).name in warning and "changed outside the portal" in warning


def test_a_task_that_stopped_running_is_a_warning(client):
    from django.utils import timezone

    long_ago = (
        timezone.now() - queries.STALE_FACTOR * timedelta(minutes=1) - queries.BEAT_SYNC_SLACK
    )
    PeriodicTask.objects.filter(task=RESUME).update(last_run_at=long_ago - timedelta(minutes=1))
    PeriodicTask.objects.filter(task=SEAL).update(last_run_at=timezone.now())
    warning = warnings_section(client)
    assert task(RESUME).name in warning and "is not running" in warning
    assert task(SEAL).name not in warning
    # Never ran since it was set, long ago: also not running.
    PeriodicTask.objects.filter(task=SEAL).update(last_run_at=None, date_changed=long_ago)
    assert task(SEAL).name in warnings_section(client)


def test_a_task_whose_last_run_failed_is_a_warning(client):
    from django.utils import timezone
    from django_celery_results.models import TaskResult

    stored = {"content_type": "application/json", "content_encoding": "utf-8"}
    at = timezone.now()
    TaskResult.objects.create(
        task_id="t1",
        task_name=RESUME,
        status="SUCCESS",
        date_done=at - timedelta(minutes=2),
        **stored,
    )
    TaskResult.objects.create(
        task_id="t2",
        task_name=RESUME,
        status="FAILURE",
        date_done=at - timedelta(minutes=1),
        result='{"exc_type": "TypeError"}',
        **stored,
    )
    TaskResult.objects.create(
        task_id="t3",
        task_name=SEAL,
        status="FAILURE",
        date_done=at - timedelta(minutes=2),
        **stored,
    )
    TaskResult.objects.create(
        task_id="t4",
        task_name=SEAL,
        status="SUCCESS",
        date_done=at - timedelta(minutes=1),
        **stored,
    )
    warning = warnings_section(client)
    assert task(RESUME).name in warning and "is failing" in warning
    assert task(SEAL).name not in warning  # it failed, then ran fine


def test_no_schedule_warning_while_every_schedule_runs_as_shipped(client):
    assert warnings_section(client) == ""


def test_slowing_a_task_while_off_then_switching_it_on_is_refused():
    officer = f.staff("Security officer")
    far = actions.create_interval(actor=officer, every=100000, period="days")
    actions.change_schedule(actor=officer, task=task(SEAL), enabled=False, interval=far)
    with pytest.raises(ActionError) as refused:
        actions.change_schedule(actor=officer, task=task(SEAL), enabled=True)
    assert refused.value.code == "schedule_too_slow"
    assert not task(SEAL).enabled  # and the dashboard still says it is off
    assert [d["task"].task for d in queries.disabled_schedules()] == [SEAL]
