"""The revocation sweeper runs every 10 seconds (it was every minute): an interrupted
fan-out is finished within 30 s of a worker being available. The sweep is one indexed
query when nothing is pending."""

from django.db import migrations

TASK = "partners.tasks.resume_revocations"


def every(seconds):
    def change(apps, schema_editor):
        IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
        PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
        interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.filter(task=TASK).update(interval=interval)

    return change


class Migration(migrations.Migration):
    dependencies = [("partners", "0010_release_quota_factor")]

    operations = [migrations.RunPython(every(10), every(60))]
