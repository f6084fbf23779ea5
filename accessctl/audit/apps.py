from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "accessctl.audit"
    label = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from accessctl import celery  # noqa: F401  (the Celery app, current in every process)

        from . import signals  # noqa: F401  (sign-in events)
