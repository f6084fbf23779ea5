import re
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Model, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils import timezone

from accessctl.actors import acting_user
from accessctl.audit.admin import AuditHistory
from accessctl.formats import size
from accessctl_wire.formats import SIZE_UNITS
from partners import actions, rules
from partners.errors import ActionError
from partners.models import Grant, GrantApproval, GrantRequest
from partners.refusals import settle

from . import pages
from ._helpers import (
    ActionErrorsAsMessages,
    AddThenReadOnly,
    action_error_to_validation,
    reason_action,
)
from .buttons import ObjectButtons

__all__ = ["GrantAdmin", "GrantRequestAdmin"]


_UNITS = {unit.lower(): 1024**power for power, unit in enumerate(SIZE_UNITS)}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*")
QUOTA_HELP = "Bytes, or a size in binary units (512 MiB, 8 GiB, 1.5 TiB): at least 1, below 2**63."


def parse_size(text: str) -> int | None:
    """Bytes from what staff type: ``"8589934592"``, ``"8 GiB"``, ``"1.5 tib"`` (binary
    units, IEC 80000-13, any case); ``None`` for anything else, a decimal unit (``GB``,
    ambiguous) or a fraction of a byte included."""
    match = _SIZE.fullmatch(text)
    if match is None:
        return None
    number, unit = match.groups()
    multiplier = _UNITS.get(unit.lower() or "b")
    if multiplier is None:
        return None
    value = Decimal(number) * multiplier
    return int(value) if value == value.to_integral_value() else None


class ByteSizeInput(forms.TextInput):
    """A size input with its value, formatted for people, beside it (``accessctl.formats
    .size``); portal.js keeps it current as staff type."""

    template_name = "partners/widgets/byte_size.html"

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        parsed = parse_size(str(value)) if value not in (None, "") else None
        context["widget"]["size"] = size(parsed) if parsed else ""
        return context


class QuotaFormField(forms.CharField):
    """A byte quota as typed (bytes, or a size in binary units: ``parse_size``): its range
    is the action's to check (``quota_invalid``, with its ``grant.refused`` event, as on
    the API); text that is no size reaches it as 0, refused alike."""

    widget = ByteSizeInput

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", QUOTA_HELP)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> int | None:  # type: ignore[override]
        text = super().to_python(value)
        if not text:
            return None
        parsed = parse_size(text)
        return 0 if parsed is None else parsed


class GrantIssueForm(forms.ModelForm):
    """Issuing a grant directly (after the public release): checked by the action's rules."""

    quota_bytes = QuotaFormField()

    expires_at = forms.DateTimeField(
        required=False, help_text="Empty: the default grant length, clipped to the window."
    )

    class Meta:
        model = Grant
        fields = ["partner", "checkpoint", "quota_bytes", "expires_at"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if all(data.get(k) is not None for k in ("partner", "checkpoint", "quota_bytes")):
            checkpoint = data["checkpoint"]
            try:
                actions.check_grant(
                    partner=data["partner"],
                    checkpoint=checkpoint,
                    quota_bytes=data["quota_bytes"],
                    expires_at=data.get("expires_at"),
                    at=timezone.now(),
                    direct=True,
                )
            except ActionError as exc:
                raise action_error_to_validation(exc) from exc
        return data

    def _post_clean(self) -> None:
        pass  # the window is chosen by the action; the rules above already ran


@admin.register(Grant)
class GrantAdmin(
    ObjectButtons, AuditHistory, AddThenReadOnly, ActionErrorsAsMessages, admin.ModelAdmin
):
    story = staticmethod(pages.grant_story)
    # A grant changes only by being revoked (or by the clock).
    add_form = GrantIssueForm
    add_fields = ("partner", "checkpoint", "quota_bytes", "expires_at")
    list_display = [
        "__str__",
        "partner",
        "checkpoint",
        "status",
        "usage",
        "issued_at",
        "expires_at",
        "issued_by",
    ]
    list_filter = ["status", "partner", "checkpoint__release"]
    search_fields = ["partner__slug", "checkpoint__tag", "checkpoint__release__slug"]
    list_select_related = ["partner", "checkpoint__release", "issued_by"]
    autocomplete_fields = ["partner"]
    date_hierarchy = "issued_at"
    actions = ["revoke"]
    readonly_fields = [
        "partner",
        "checkpoint",
        "window",
        "request",
        "status",
        "issued_at",
        "issued_by",
        "expires_at",
        "quota_bytes",
        "bytes_used",
        "revoked_at",
        "revoked_by",
        "revoke_reason",
    ]

    @admin.display(description="Used")
    def usage(self, grant: Grant) -> str:
        return f"{size(grant.bytes_used)} of {size(grant.quota_bytes)}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("partners.issue_grant")

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("partners.revoke_grant")

    def save_model(self, request: HttpRequest, obj: Grant, form: ModelForm, change: bool) -> None:
        data = form.cleaned_data
        grant = actions.issue_grant(
            actor=acting_user(request),
            partner=data["partner"],
            checkpoint=data["checkpoint"],
            quota_bytes=data["quota_bytes"],
            expires_at=data.get("expires_at"),
        )
        obj.pk = grant.pk

    @reason_action(description="Revoke selected grants", permission="revoke", submit_label="Revoke")
    def revoke(self, request: HttpRequest, grant: Grant, reason: str) -> None:
        actions.revoke_grant(actor=acting_user(request), grant=grant, reason=reason)


class ApprovalInline(admin.TabularInline):
    model = GrantApproval
    extra = 0
    readonly_fields = fields = (
        "approver",
        "approved_at",
    )
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class GrantRequestForm(forms.ModelForm):
    quota_bytes = QuotaFormField()

    def _get_validation_exclusions(self) -> set[str]:
        # The quota's range is the action's (``quota_invalid``, recorded), not the column's.
        return {*super()._get_validation_exclusions(), "quota_bytes"}  # type: ignore[misc]

    class Meta:
        model = GrantRequest
        fields = ["partner", "checkpoint", "quota_bytes", "note"]


@admin.register(GrantRequest)
class GrantRequestAdmin(
    ObjectButtons, AuditHistory, AddThenReadOnly, ActionErrorsAsMessages, admin.ModelAdmin
):
    add_form = GrantRequestForm
    add_fields = ("partner", "checkpoint", "quota_bytes", "note")
    list_display = [
        "__str__",
        "partner",
        "checkpoint",
        "status",
        "approvals_given",
        "requested_by",
        "requested_at",
    ]
    list_filter = ["status", "partner", "checkpoint__release"]
    search_fields = ["partner__slug", "checkpoint__tag", "note"]
    list_select_related = ["partner", "checkpoint__release", "requested_by"]
    autocomplete_fields = ["partner"]
    inlines = [ApprovalInline]
    actions = ["approve", "reject"]
    readonly_fields = [
        "partner",
        "checkpoint",
        "quota_bytes",
        "note",
        "status",
        "approvals_required",
        "requested_by",
        "requested_at",
        "decided_at",
        "rejected_by",
        "rejection_reason",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[GrantRequest]:
        return super().get_queryset(request).annotate(approval_count=Count("approvals"))

    @admin.display(description="Approvals", ordering="approval_count")
    def approvals_given(self, obj: Any) -> str:  # a request annotated by get_queryset
        # A pending request needs the current setting if it was raised since filing.
        needed = (
            rules.approvals_needed(obj.approvals_required)
            if obj.status == GrantRequest.Status.PENDING
            else obj.approvals_required
        )
        return f"{obj.approval_count} of {needed}"

    def get_inlines(self, request: HttpRequest, obj: GrantRequest | None) -> list[Any]:
        return self.inlines if obj else []

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("partners.issue_grant")

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("partners.approve_grantrequest")

    def save_model(
        self, request: HttpRequest, obj: GrantRequest, form: ModelForm, change: bool
    ) -> None:
        data = form.cleaned_data
        created = actions.request_grant(
            actor=acting_user(request),
            partner=data["partner"],
            checkpoint=data["checkpoint"],
            quota_bytes=data["quota_bytes"],
            note=data.get("note", ""),
        )
        obj.pk = created.pk

    @admin.action(description="Approve selected requests", permissions=["approve"])
    def approve(self, request: HttpRequest, queryset: QuerySet[GrantRequest]) -> None:
        for grant_request in queryset:
            try:
                self.approve_one(request, grant_request)
            except ActionError as exc:
                settle(exc)
                self.message_user(request, f"{grant_request}: {exc.message}", messages.ERROR)

    def approve_one(
        self, request: HttpRequest, grant_request: GrantRequest, note: str = ""
    ) -> None:
        """One approval, from the list's bulk action or the request's own page; says what
        it did. Raises the action's ``ActionError`` (four eyes, decided already)."""
        done = actions.approve_grant_request(
            actor=acting_user(request), request=grant_request, note=note
        )
        if done.status == GrantRequest.Status.APPROVED:
            self.message_user(request, f"{done}: approved, grant issued.", messages.SUCCESS)
        else:
            left = rules.approvals_needed(done.approvals_required) - done.approvals.count()
            self.message_user(
                request,
                f"{done}: your approval is recorded; {left} more "
                f"approval{'s' if left != 1 else ''} needed.",
                messages.INFO,
            )

    @reason_action(
        description="Reject selected requests", permission="approve", submit_label="Reject"
    )
    def reject(self, request: HttpRequest, grant_request: GrantRequest, reason: str) -> None:
        actions.reject_grant_request(
            actor=acting_user(request), request=grant_request, reason=reason
        )
