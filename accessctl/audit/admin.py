import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q, QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from accessctl.actors import acting_user
from accessctl.formats import reformatted, shown
from accessctl_wire import b64

from .exports import request_export, storage
from .models import AuditCheckpoint, AuditEvent, AuditExport

__all__ = [
    "AuditEventAdmin",
    "AuditExportAdmin",
    "AuditHistory",
    "change_rows",
    "changes_table",
    "events_for",
    "raw_rows",
]


def change_rows(changes: Any) -> list[tuple[str, str, str]]:
    """An event's ``changes`` as (field, before, after) rows, as people read them: a
    ``[before, after]`` pair is a change; any other value is a fact of the event (its
    before is empty). Times (RFC 3339 strings) read ``2026-11-29 16:40:05 UTC`` and byte
    counts (``*_bytes``, ``size``, ``bytes_used``...) ``20.0 MiB``
    (``accessctl_wire.formats``); ``raw_rows`` keeps the values as stored."""
    return [
        (name, _shown(before, name), _shown(after, name)) for name, before, after in _pairs(changes)
    ]


def raw_rows(changes: Any) -> list[tuple[str, str, str]]:
    """``change_rows`` with the values as stored (for auditors: the cells' titles)."""
    return [(name, _raw(before), _raw(after)) for name, before, after in _pairs(changes)]


_NOTHING: Any = object()  # a fact's "before": shown empty


def _pairs(changes: Any) -> list[tuple[str, Any, Any]]:
    if not isinstance(changes, dict):
        return [("", _NOTHING, changes)] if changes not in (None, "", [], {}) else []
    rows: list[tuple[str, Any, Any]] = []
    for name, value in changes.items():
        if isinstance(value, list) and len(value) == 2:
            rows.append((str(name), value[0], value[1]))
        else:
            rows.append((str(name), _NOTHING, value))
    return rows


def _shown(value: Any, name: str = "") -> str:
    return "" if value is _NOTHING else shown(value, name)


def _raw(value: Any) -> str:
    return "" if value is _NOTHING else json.dumps(value, default=str)


def changes_table(changes: Any) -> str:
    """``change_rows`` as an HTML table (escaped), for the event's page and histories; a
    formatted time or size keeps the stored value in its title (for auditors)."""
    pairs = _pairs(changes)
    if not pairs:
        return "-"
    cells = [(name, _cell(before, name), _cell(after, name)) for name, before, after in pairs]
    return format_html(
        '<table class="changes"><thead><tr><th>Field</th><th>Before</th><th>After</th></tr>'
        "</thead><tbody>{}</tbody></table>",
        format_html_join(
            "",
            '<tr><th scope="row">{}</th><td class="before">{}</td><td class="after">{}</td></tr>',
            cells,
        ),
    )


def _cell(value: Any, name: str) -> str:
    text = _shown(value, name)
    if not _formatted(value, name):
        return text
    return format_html('<span title="{}">{}</span>', _raw(value), text)


def _formatted(value: Any, name: str) -> bool:
    return value is not _NOTHING and reformatted(value, name)


class ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


def events_for(obj: Model) -> QuerySet[AuditEvent]:
    """Every event about ``obj``; for a partner also every event in its name; for an
    audit event, every event about the same target (itself included)."""
    if isinstance(obj, AuditEvent):
        about = Q(target_type=obj.target_type, target_id=obj.target_id) | Q(pk=obj.pk)
        return AuditEvent.objects.filter(about).order_by("-occurred_at", "-id")
    about = Q(target_type=obj._meta.label_lower, target_id=str(obj.pk))
    if obj._meta.label_lower == "partners.partner":
        about |= Q(partner_id=obj.pk)
    if obj._meta.label_lower == "partners.revocation":  # and what its cascade ended
        about |= Q(changes__revocation=obj.pk)
    return AuditEvent.objects.filter(about).order_by("-occurred_at", "-id")


class AuditHistory:
    """An admin's *History* page shows the object's audit events (Django's own change
    log is not the record: every change goes through an audited action)."""

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        model_admin: Any = self
        obj = model_admin.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404
        if not model_admin.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        trail = reverse("admin:audit_auditevent_changelist")
        return TemplateResponse(
            request,
            "admin/accessctl/audit_history.html",
            {
                **model_admin.admin_site.each_context(request),
                "title": f"Audit history: {obj}",
                "object": obj,
                "opts": model_admin.model._meta,
                "events": [
                    (e, changes_table(e.changes))
                    for e in events_for(obj).select_related("partner")[:500]
                ],
                "trail_url": f"{trail}?target_type={obj._meta.label_lower}&target_id={obj.pk}",
                **(extra_context or {}),
            },
        )


@admin.register(AuditEvent)
class AuditEventAdmin(AuditHistory, ReadOnly, admin.ModelAdmin):
    """The audit trail: read-only for everyone, superusers included. An event's page
    shows its changes as a before/after table; its History, every event about the same
    target."""

    readonly_fields = fields = (
        "occurred_at",
        "action",
        "outcome",
        "reason",
        "actor",
        "actor_label",
        "target_type",
        "target_id",
        "target_label",
        "partner",
        "client_address",
        "request_id",
        "changes_as_table",
    )

    @admin.display(description="Changes")
    def changes_as_table(self, obj: AuditEvent) -> str:
        return changes_table(obj.changes)

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

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # The per-object history links here with ?target_type=...&target_id=...
        return lookup in {"target_type", "target_id"} or super().lookup_allowed(
            lookup, value, request
        )


class ExportForm(forms.Form):
    since = forms.DateTimeField(required=False, help_text="From (UTC), inclusive.")
    until = forms.DateTimeField(required=False, help_text="Until (UTC), exclusive.")
    partner = forms.SlugField(required=False, help_text="Partner slug.")
    release = forms.SlugField(required=False, help_text="Release slug.")
    action = forms.CharField(
        required=False, help_text="An action (grant.revoked) or a prefix (grant.*)."
    )
    outcome = forms.ChoiceField(
        required=False,
        choices=[("", "any"), ("success", "success"), ("denied", "denied"), ("failure", "failure")],
    )


@admin.register(AuditExport)
class AuditExportAdmin(AuditHistory, ReadOnly, admin.ModelAdmin):
    list_display = [
        "id",
        "requested_at",
        "requested_by",
        "filters",
        "status",
        "events",
        "downloads",
    ]
    list_filter = ["status"]
    readonly_fields = fields = (
        "requested_by",
        "requested_at",
        "filters",
        "status",
        "events",
        "tree_size",
        "downloads",
        "error",
        "completed_at",
    )

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.has_perm("audit.export_auditevent")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("request/", wrap(self.request_view), name="audit_auditexport_request"),
            path(
                "<int:export_id>/download/<str:kind>/",
                wrap(self.download_view),
                name="audit_auditexport_download",
            ),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {"request_url": reverse("admin:audit_auditexport_request"), **(extra_context or {})}
        return super().changelist_view(request, extra)

    @admin.display(description="Files")
    def downloads(self, obj: AuditExport) -> str:
        if obj.status != AuditExport.Status.READY:
            return "-"
        return format_html_join(
            " ",
            '<a href="{}">{}</a>',
            (
                (reverse("admin:audit_auditexport_download", args=[obj.pk, kind]), kind)
                for kind in obj.files
            ),
        )

    def request_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = ExportForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            export = request_export(actor=acting_user(request), filters=form.cleaned_data)
            self.message_user(
                request,
                f"Export #{export.pk} is being written; it appears here when ready.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse("admin:audit_auditexport_changelist"))
        return TemplateResponse(
            request,
            "admin/accessctl/export_form.html",
            {
                **self.admin_site.each_context(request),
                "title": "Export the audit trail",
                "form": form,
                "opts": self.model._meta,
            },
        )

    def download_view(self, request: HttpRequest, export_id: int, kind: str) -> FileResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        export = AuditExport.objects.filter(pk=export_id, status=AuditExport.Status.READY).first()
        if export is None or kind not in export.files:
            raise Http404
        name = export.files[kind]["name"]
        return FileResponse(
            storage().open(name, "rb"), as_attachment=True, filename=name.rsplit("/", 1)[-1]
        )


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(AuditHistory, ReadOnly, admin.ModelAdmin):
    """The signed checkpoints of the trail: readable by whoever reads the trail (the
    Compliance role included), as the README promises."""

    list_display = ["tree_size", "sealed_at", "key_id", "root"]
    date_hierarchy = "sealed_at"

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.has_perm("audit.view_auditevent") or super().has_view_permission(
            request, obj
        )

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    @admin.display(description="Root hash (base64url)")
    def root(self, obj: AuditCheckpoint) -> str:
        return format_html("<code>{}</code>", b64(bytes(obj.root_hash)))
