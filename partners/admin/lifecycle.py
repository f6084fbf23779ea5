"""Read-only views of what the lifecycle did: revocations and their fan-out, emails."""

from django.contrib import admin

from accessctl.audit.admin import AuditHistory, ReadOnly
from partners.models import Notification, Revocation

__all__ = ["NotificationAdmin", "RevocationAdmin"]


@admin.register(Revocation)
class RevocationAdmin(AuditHistory, ReadOnly, admin.ModelAdmin):
    list_display = [
        "id",
        "scope",
        "target_label",
        "requested_by",
        "effective_at",
        "status",
        "grants_revoked",
        "requests_rejected",
        "tokens_revoked",
        "completed_at",
    ]
    list_filter = ["status", "scope"]
    search_fields = ["reason", "partner__slug", "release__slug"]
    date_hierarchy = "effective_at"
    list_select_related = ["partner", "checkpoint__release", "release", "grant", "token"]

    @admin.display(description="Target")
    def target_label(self, obj: Revocation) -> str:
        return obj.target_label


@admin.register(Notification)
class NotificationAdmin(AuditHistory, ReadOnly, admin.ModelAdmin):
    list_display = ["created_at", "kind", "email", "partner", "status", "attempts", "sent_at"]
    list_filter = ["status", "kind"]
    search_fields = ["email", "key"]
    date_hierarchy = "created_at"
    list_select_related = ["partner"]
