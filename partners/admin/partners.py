from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Model
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse

from accessctl.audit.admin import AuditHistory
from accessctl.audit.events import AuditAction, record
from partners import actions
from partners.actions.partners import EDITABLE_FIELDS
from partners.models import EmbargoWindow, Membership, Partner, PartnerContact

from . import access_ends
from ._helpers import ActionErrorsAsMessages, reason_action

__all__ = ["PartnerAdmin"]


class ContactInline(admin.TabularInline):
    model = PartnerContact
    extra = 0


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at"]


class WindowInline(admin.TabularInline):
    model = EmbargoWindow
    extra = 0
    readonly_fields = fields = (
        "release",
        "tier",
        "opens_at",
        "closes_at",
        "embargo_lifts_at",
    )
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class PartnerForm(forms.ModelForm):
    allowed_networks = forms.JSONField(
        required=False,
        initial=list,
        help_text='Address ranges downloads may come from, as a JSON list, e.g. ["203.0.113.0/24"]. Empty allows any.',
    )

    class Meta:
        model = Partner
        fields = ["slug", *EDITABLE_FIELDS]

    def clean_allowed_networks(self) -> list[str]:
        return self.cleaned_data["allowed_networks"] or []


@admin.register(Partner)
class PartnerAdmin(AuditHistory, ActionErrorsAsMessages, admin.ModelAdmin):
    form = PartnerForm
    list_display = ["slug", "legal_name", "kind", "jurisdiction", "status", "nda_expires_at"]
    list_filter = ["status", "kind", "jurisdiction"]
    search_fields = ["slug", "legal_name", "nda_reference", "contacts__email"]
    readonly_fields = ["status", "status_reason", "created_at"]
    inlines = [ContactInline, MembershipInline, WindowInline]
    actions = ["suspend", "reinstate"]

    def get_readonly_fields(self, request: HttpRequest, obj: Partner | None = None) -> list[str]:
        return [*self.readonly_fields, "slug"] if obj else list(self.readonly_fields)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # Export control: a jurisdiction change that ends access is shown first.
        if object_id and (page := access_ends.confirmation_page(self, request, object_id)):
            return page
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Partner, form: ModelForm, change: bool) -> None:
        values = {name: form.cleaned_data[name] for name in EDITABLE_FIELDS}
        if change:
            actions.update_partner(
                actor=request.user,
                partner=obj,
                confirm_ended_windows=access_ends.confirmed_windows(request),
                **values,
            )
        else:
            created = actions.create_partner(
                actor=request.user, slug=form.cleaned_data["slug"], **values
            )
            obj.pk = created.pk
        obj.refresh_from_db()

    def save_formset(
        self, request: HttpRequest, form: ModelForm, formset: Any, change: bool
    ) -> None:
        # Contacts and memberships are plain rows; who may act for a partner is evidence,
        # so every change to them is recorded on the partner.
        formset.save()
        changes = {
            "added": [str(o) for o in formset.new_objects],
            "changed": [str(o) for o, _ in formset.changed_objects],
            "removed": [str(o) for o in formset.deleted_objects],
        }
        if any(changes.values()):
            record(
                AuditAction.PARTNER_UPDATED,
                actor=request.user,
                target=form.instance,
                partner=form.instance,
                changes={formset.model._meta.verbose_name_plural: changes},
            )

    def has_suspend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("partners.suspend_partner")

    @reason_action(
        description="Suspend selected partners (stops downloads now, then revokes their grants)",
        permission="suspend",
        submit_label="Suspend",
    )
    def suspend(self, request: HttpRequest, partner: Partner, reason: str) -> None:
        actions.suspend_partner(actor=request.user, partner=partner, reason=reason)

    @reason_action(
        description="Reinstate selected partners", permission="suspend", submit_label="Reinstate"
    )
    def reinstate(self, request: HttpRequest, partner: Partner, reason: str) -> None:
        actions.reinstate_partner(actor=request.user, partner=partner, reason=reason)
