from django.contrib import admin
from django.http import HttpRequest

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit trail: read-only for everyone, superusers included."""

    list_display = [
        "occurred_at",
        "action",
        "outcome",
        "reason",
        "actor_label",
        "target_label",
        "partner",
        "client_address",
    ]
    list_filter = ["outcome", "action", "partner", "target_type"]
    search_fields = ["actor_label", "target_label", "target_id", "request_id", "reason"]
    date_hierarchy = "occurred_at"
    list_select_related = ["partner"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False
