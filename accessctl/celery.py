"""The Celery application, configured from Django settings (``CELERY_*``)."""

import os

from celery import Celery

__all__ = ["app"]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "accessctl.settings")

app = Celery("accessctl")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
