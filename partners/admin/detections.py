"""Leak attribution in the portal: submit a suspect file set, read the verdict and the
signed report (docs/fingerprints.md)."""

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.forms import ModelForm
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from accessctl.actors import acting_user
from accessctl.audit.admin import AuditHistory
from partners import actions
from partners.actions.detections import MAX_FILES
from partners.authority import Operation, may
from partners.models import Detection, Release

from . import pages
from ._helpers import ActionErrorsAsMessages, AddThenReadOnly
from .buttons import ObjectButtons

__all__ = ["DetectionAdmin"]


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class SuspectFilesField(forms.FileField):
    """One or more files from one ``<input type=file multiple>``; empty files pass here
    (the action refuses them, with its evidence)."""

    widget = MultipleFileInput

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_empty_file=True, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(d, initial) for d in data if d] or [single(None, initial)]
        return [single(data, initial)]


class DetectionForm(forms.ModelForm):
    suspects = SuspectFilesField(
        label="Suspect files",
        help_text=f"The suspect files as found (1 to {MAX_FILES}): safetensors or GGUF, "
        "quantized or not.",
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=300,
        help_text="Why: where the files were found. Kept in the audit trail.",
    )

    class Meta:
        model = Detection
        fields = ["release", "suspects", "reason"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if field := self.fields.get("release"):  # offered: the releases that fingerprint
            field.queryset = Release.objects.filter(fingerprint=True)  # type: ignore[attr-defined]

    def _post_clean(self) -> None:
        pass  # the action decides (fingerprinting on, keys, files), with its evidence


@admin.register(Detection)
class DetectionAdmin(
    ObjectButtons, AuditHistory, AddThenReadOnly, ActionErrorsAsMessages, admin.ModelAdmin
):
    story = staticmethod(pages.detection_story)
    add_form = DetectionForm
    add_fields = ("release", "suspects", "reason")
    list_display = ["__str__", "created_at", "release", "requested_by", "status", "verdict_shown"]
    list_filter = ["status", "verdict", "release"]
    list_select_related = ["release", "requested_by"]
    search_fields = ["release__slug", "reason"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "release",
        "requested_by",
        "reason",
        "status",
        "verdict",
        "named",
        "error",
        "created_at",
        "finished_at",
    ]

    @admin.display(description="Verdict", ordering="verdict")
    def verdict_shown(self, obj: Detection) -> str:
        if not obj.verdict:
            return "-"
        named = f": {', '.join(obj.named)}" if obj.named else ""
        return format_html(
            '<span class="state state-verdict-{}">{}{}</span>',
            obj.verdict,
            obj.get_verdict_display(),
            named,
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return may(request.user, Operation.DETECTION_RUN)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: Detection, form: ModelForm, change: bool
    ) -> None:
        data = form.cleaned_data
        detection = actions.request_detection(
            actor=acting_user(request),
            release=data["release"],
            files=data["suspects"],
            reason=data["reason"],
        )
        obj.pk = detection.pk

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:detection_id>/report.json",
                self.admin_site.admin_view(self.report_view),
                name="partners_detection_report",
            ),
            *super().get_urls(),
        ]

    def report_view(self, request: HttpRequest, detection_id: int) -> HttpResponse:
        """The signed report as a file: ``{"report": ..., "signature": ...}``, what
        ``accessctl verify-report`` checks offline."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        detection = Detection.objects.filter(pk=detection_id, status=Detection.Status.DONE).first()
        if detection is None or detection.report is None:
            raise Http404
        # Indented for a reader: the signature covers the report's canonical JSON, which
        # the verifier recomputes, not these bytes.
        body = json.dumps({"report": detection.report, "signature": detection.signature}, indent=2)
        response = HttpResponse(body, content_type="application/json")
        response["Content-Disposition"] = (
            f'attachment; filename="detection-{detection.pk}-report.json"'
        )
        return response

    def report_url(self, detection: Detection) -> str:
        return reverse("admin:partners_detection_report", args=[detection.pk])
