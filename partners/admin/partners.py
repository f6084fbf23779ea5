from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Model, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse

from accessctl.actors import Actor, acting_user
from accessctl.audit.admin import AuditHistory
from partners import actions, queries
from partners.actions.members import CONTACT_FIELDS
from partners.actions.partners import EDITABLE_FIELDS
from partners.authority import Operation, may
from partners.models import EmbargoWindow, Membership, Partner, PartnerContact
from partners.rules import country_name

from . import access_ends, pages
from ._helpers import ActionErrorsAsMessages, KeepStoredTimes, changed_values, reason_action
from .buttons import ObjectButtons

__all__ = ["PartnerAdmin"]


class ContactInline(admin.TabularInline):
    model = PartnerContact
    fields = CONTACT_FIELDS
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may(request.user, Operation.CONTACT_ADD, obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may(request.user, Operation.CONTACT_CHANGE)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may(request.user, Operation.CONTACT_REMOVE)


class MembershipInline(admin.TabularInline):
    """The user is a plain select of ``member_candidates``, not the user autocomplete: that
    asks for ``auth.view_user``, which a Partner manager rightly lacks (it would show every
    account, staff included), and it would offer users ``add_member`` refuses."""

    model = Membership
    extra = 0
    readonly_fields = ["created_at"]

    def get_formset(self, request: HttpRequest, obj: Partner | None = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        field: Any = formset.form.base_fields.get("user")  # a fresh form class per call
        if field is not None:
            field.queryset = queries.member_candidates(obj)
            field.help_text = "A user who is not staff and acts for no other partner."
            # Read once for every row's select, not once per row.
            choices = list(field.choices)
            field.choices = choices
            inner = getattr(field.widget, "widget", None)  # the admin's related-field wrapper
            if inner is not None:
                inner.choices = choices
        return formset

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        # Each row is titled "user @ partner".
        return super().get_queryset(request).select_related("user", "partner")

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may(request.user, Operation.MEMBER_ADD, obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # Changing a row's user is a removal and an addition (see _save_members).
        return may(request.user, Operation.MEMBER_ADD) and may(
            request.user, Operation.MEMBER_REMOVE
        )

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may(request.user, Operation.MEMBER_REMOVE)


def _save_contacts(actor: Actor, partner: Partner, formset: Any) -> None:
    for contact in formset.deleted_objects:
        actions.remove_contact(actor=actor, contact=contact)
    for contact, fields in formset.changed_objects:
        values = {name: getattr(contact, name) for name in fields if name in CONTACT_FIELDS}
        actions.change_contact(actor=actor, contact=contact, **values)
    for contact in formset.new_objects:
        actions.add_contact(
            actor=actor,
            partner=partner,
            **{name: getattr(contact, name) for name in CONTACT_FIELDS},
        )


def _save_members(actor: Actor, partner: Partner, formset: Any) -> None:
    for membership in formset.deleted_objects:
        actions.remove_member(actor=actor, membership=membership, reason="removed in the portal")
    for membership, _ in formset.changed_objects:
        # Another person in an existing row: the one before leaves, the new one joins.
        actions.remove_member(
            actor=actor,
            membership=Membership.objects.get(pk=membership.pk),
            reason="replaced in the portal",
        )
        actions.add_member(actor=actor, partner=partner, user=membership.user)
    for membership in formset.new_objects:
        actions.add_member(actor=actor, partner=partner, user=membership.user)


_INLINE_SAVES = {PartnerContact: _save_contacts, Membership: _save_members}


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

    def get_queryset(self, request: HttpRequest) -> QuerySet[EmbargoWindow]:
        return super().get_queryset(request).select_related("release", "partner")

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class PartnerForm(KeepStoredTimes):
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


class JurisdictionFilter(admin.SimpleListFilter):
    """The countries partners are in, as one select: Django's filter for a country field
    lists every country of the world as a link (a 6,000 px column beside the list)."""

    title = "jurisdiction"
    parameter_name = "jurisdiction"
    template = "admin/partners/select_filter.html"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        used = Partner.objects.order_by().values_list("jurisdiction", flat=True).distinct()
        return sorted(((str(c), f"{country_name(c)} ({c})") for c in used), key=lambda x: x[1])

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(jurisdiction=self.value()) if self.value() else queryset


@admin.register(Partner)
class PartnerAdmin(ObjectButtons, AuditHistory, ActionErrorsAsMessages, admin.ModelAdmin):
    story = staticmethod(pages.partner_story)
    form = PartnerForm
    list_display = ["slug", "legal_name", "kind", "jurisdiction", "status", "nda_expires_at"]
    list_filter = ["status", "kind", JurisdictionFilter]
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
        if change:
            actions.update_partner(
                actor=acting_user(request),
                partner=obj,
                confirm_ended_windows=access_ends.confirmed_windows(request),
                **changed_values(form, EDITABLE_FIELDS),
            )
        else:
            values = {name: form.cleaned_data[name] for name in EDITABLE_FIELDS}
            created = actions.create_partner(
                actor=acting_user(request), slug=form.cleaned_data["slug"], **values
            )
            obj.pk = created.pk
        obj.refresh_from_db()

    def save_formset(
        self, request: HttpRequest, form: ModelForm, formset: Any, change: bool
    ) -> None:
        """Contacts and members change through their actions (each audited; removing a
        member revokes their tokens), never by saving the formset's rows directly."""
        formset.save(commit=False)
        save = _INLINE_SAVES.get(formset.model)
        if save is not None:
            save(acting_user(request), form.instance, formset)

    def has_suspend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("partners.suspend_partner")

    @reason_action(
        description="Suspend selected partners (stops downloads now, then revokes their grants)",
        permission="suspend",
        submit_label="Suspend",
    )
    def suspend(self, request: HttpRequest, partner: Partner, reason: str) -> None:
        actions.suspend_partner(actor=acting_user(request), partner=partner, reason=reason)

    @reason_action(
        description="Reinstate selected partners", permission="suspend", submit_label="Reinstate"
    )
    def reinstate(self, request: HttpRequest, partner: Partner, reason: str) -> None:
        actions.reinstate_partner(actor=acting_user(request), partner=partner, reason=reason)
