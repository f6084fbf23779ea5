"""The lifecycle schedules (django-celery-beat, editable in the portal) and the roles'
new permissions (revocations, notifications, task results, the kill switch)."""

from django.db import migrations

from partners.roles import sync_roles

EVERY_MINUTE = [
    ("Record windows that opened", "partners.tasks.open_windows"),
    ("Record windows that closed", "partners.tasks.close_windows"),
    ("Record embargoes that lifted", "partners.tasks.lift_embargoes"),
    ("Suspend partners whose NDA expired", "partners.tasks.expire_ndas"),
    ("Remind approvers of pending requests", "partners.tasks.remind_pending_requests"),
    ("Warn of closing windows and expiring grants", "partners.tasks.announce_deadlines"),
    ("Resume unfinished revocation fan-outs", "partners.tasks.resume_revocations"),
    ("Send due notifications", "partners.tasks.send_notifications"),
]


def schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=60, period="seconds")
    for name, task in EVERY_MINUTE:
        PeriodicTask.objects.update_or_create(
            name=name, defaults={"task": task, "interval": every_minute}
        )
    morning, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour="7", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.update_or_create(
        name="Daily staff digest",
        defaults={"task": "partners.tasks.send_staff_digest", "crontab": morning},
    )


def unschedule(apps, schema_editor):
    tasks = [task for _, task in EVERY_MINUTE] + ["partners.tasks.send_staff_digest"]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task__in=tasks).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("partners", "0007_lifecycle_and_revocations"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("django_celery_results", "0014_alter_taskresult_status"),
    ]

    operations = [
        migrations.RunPython(schedule, unschedule),
        migrations.RunPython(sync_roles, migrations.RunPython.noop),
    ]
