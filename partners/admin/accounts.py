"""Accounts, roles and second factors in the portal: audited, and no one else's secrets.

* *Users*: every save is ``change_account`` (names, flags, roles; before and after in the
  audit trail) or ``create_account``; *set password* is ``set_password`` (someone else's:
  their sessions end and their staff tokens are revoked). No direct permissions (rights
  come from roles) and no deletion (deactivate instead).
* *Groups* are the roles, kept equal to ``partners.roles.ROLES`` by migrations: read-only.
* *TOTP devices* and *static devices*: who has which device, never its key or codes; no
  add, no edit, no QR or configuration page. Removing one is ``remove_second_factor``.
  People set up their own under *My two-factor* (``partners/my_account.py``).
"""

from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import AdminForm
from django.contrib.admin.utils import unquote
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, UsernameField
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.forms import ModelForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import ngettext
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accessctl.actors import acting_user
from accessctl.audit.admin import AuditHistory
from partners import actions
from partners.actions.accounts import ACCOUNT_FIELDS
from partners.authority import Operation, may

from ._helpers import ActionErrorsAsMessages

__all__ = ["AccountAdmin", "RoleAdmin", "SecondFactorDeviceAdmin"]


class AccountChangeForm(forms.ModelForm):
    """The fields ``change_account`` changes, and nothing else (no password hash, no
    direct permissions)."""

    class Meta:
        model = User
        fields = [*ACCOUNT_FIELDS, "groups"]
        field_classes = {"username": UsernameField}


class AccountAdmin(AuditHistory, ActionErrorsAsMessages, DjangoUserAdmin):
    form = AccountChangeForm
    fieldsets = (
        (None, {"fields": ("username", "password_state")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Second factor", {"fields": ("second_factor",)}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    readonly_fields = ("password_state", "second_factor", "last_login", "date_joined")
    filter_horizontal = ("groups",)

    @admin.display(description="password")
    def password_state(self, user: User) -> str:
        state = "set" if user.has_usable_password() else "none (cannot sign in with one)"
        url = reverse("admin:auth_user_password_change", args=[user.pk])
        return format_html('{} &middot; <a href="{}">set a new password</a>', state, url)

    @admin.display(description="devices")
    def second_factor(self, user: User) -> str:
        """Which devices the person has: never a key or a code."""
        apps = TOTPDevice.objects.filter(user=user, confirmed=True).count()
        codes = sum(d.token_set.count() for d in StaticDevice.objects.filter(user=user))
        return (
            f"{apps} authenticator {ngettext('app', 'apps', apps)}, "
            f"{codes} unused backup {ngettext('code', 'codes', codes)}"
        )

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # An account is the actor of its audit events: deactivate it, never delete it.
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return may(request.user, Operation.ACCOUNT_CREATE)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may(request.user, Operation.ACCOUNT_CHANGE, obj)

    def save_model(self, request: HttpRequest, obj: User, form: ModelForm, change: bool) -> None:
        data = form.cleaned_data
        if not change:
            usable = data.get("set_usable_password", True)
            created = actions.create_account(
                actor=acting_user(request),
                username=data["username"],
                password=data.get("password1") if usable else None,
            )
            obj.pk, obj.password = created.pk, created.password
            obj._state.adding = False
            return
        values = {name: data[name] for name in form.changed_data if name in ACCOUNT_FIELDS}
        groups = data["groups"] if "groups" in form.changed_data else None
        actions.change_account(actor=acting_user(request), user=obj, groups=groups, **values)

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool
    ) -> None:
        pass  # the roles were set by ``change_account``, with their audit event

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        """Django's page, saving through ``set_password`` (Django's saves the form itself,
        with no audit event and with the other person's sessions and tokens intact)."""
        user = self.get_object(request, unquote(id))
        if user is None:
            raise Http404
        if not may(request.user, Operation.ACCOUNT_SET_PASSWORD, user):
            raise PermissionDenied
        form = AdminPasswordChangeForm(user, request.POST if request.method == "POST" else None)
        if form.is_valid():
            usable = form.cleaned_data["set_usable_password"]
            password = form.cleaned_data["password1"] if usable else None
            actions.set_password(actor=acting_user(request), user=user, password=password)
            user.refresh_from_db()
            if user.pk == request.user.pk:
                update_session_auth_hash(request, user)
            else:
                messages.warning(
                    request,
                    f"{user}'s sessions were ended and their staff tokens revoked; "
                    "the change is in the audit trail.",
                )
            messages.success(request, "Password changed.")
            return HttpResponseRedirect(reverse("admin:auth_user_change", args=[user.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Set password: {user.get_username()}",
            "adminForm": AdminForm(
                form,  # type: ignore[arg-type]  # Django's own page passes this form too
                [(None, {"fields": list(form.base_fields)})],
                {},
            ),
            "form_url": form_url,
            "form": form,
            "is_popup": False,
            "add": True,
            "change": False,
            "has_delete_permission": False,
            "has_change_permission": True,
            "has_absolute_url": False,
            "opts": self.opts,
            "original": user,
            "save_as": False,
            "show_save": True,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            self.change_user_password_template or "admin/auth/user/change_password.html",
            context,
        )


class RoleAdmin(DjangoGroupAdmin):
    """The roles, as migrations keep them (``partners.roles``): every change of rights is
    a reviewed diff, so the portal only shows them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class SecondFactorDeviceAdmin(AuditHistory, admin.ModelAdmin):
    """Who has which second factor: never its key or codes (no add, no edit, no QR or
    configuration page). The delete page removes the device through
    ``remove_second_factor``."""

    list_display = ["user", "name", "confirmed", "created_at", "last_used_at"]
    list_filter = ["confirmed"]
    search_fields = ["user__username", "name"]
    list_select_related = ["user"]
    fields = ("user", "name", "confirmed", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may(request.user, Operation.SECOND_FACTOR_REMOVE, obj)

    def get_deleted_objects(
        self, objs: Sequence[Model] | QuerySet[Model], request: HttpRequest
    ) -> tuple[list[str], dict[str, int], set[str], list[str]]:
        # The device only: its codes go with it, and are never listed (not even counted
        # per row, which Django's summary would show next to their ids).
        names = [f"{self.opts.verbose_name}: {obj}" for obj in objs]
        return names, {str(self.opts.verbose_name_plural): len(names)}, set(), []

    def delete_model(self, request: HttpRequest, obj: TOTPDevice | StaticDevice) -> None:
        actions.remove_second_factor(actor=acting_user(request), device=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for device in queryset:
            actions.remove_second_factor(actor=acting_user(request), device=device)


for _model, _admin in (
    (User, AccountAdmin),
    (Group, RoleAdmin),
    (TOTPDevice, SecondFactorDeviceAdmin),
    (StaticDevice, SecondFactorDeviceAdmin),
):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin)
