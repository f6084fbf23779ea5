"""The staff portal's admin site: two-factor sign-in (django-otp), the dashboard page and
the portal's own pages, whose content the domain supplies (``settings.ACCESSCTL_PORTAL_DASHBOARD``,
``settings.ACCESSCTL_PORTAL_PAGES``)."""

import functools
import types
from collections.abc import Iterable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model
from django.db.models.base import ModelBase
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver
from django.utils.module_loading import import_string
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice

from accessctl.admin_secrets import SecretFieldGuard

__all__ = [
    "DOMAIN_APPS",
    "HOME_HIDDEN_APPS",
    "SYSTEM_WRITTEN_APPS",
    "DomainRowsStay",
    "PortalLoginForm",
    "PortalSite",
    "SystemWritten",
]

_SECOND_FACTOR_REASONS = {
    "token_required": "second_factor_missing",
    "invalid_token": "second_factor_invalid",
    "device_required": "second_factor_device_missing",
}

# Installed apps that are plumbing, not a place to work: the home page does not list them
# (the sidebar of every other page still does, for those who may view them).
HOME_HIDDEN_APPS = frozenset({"axes", "otp_static", "otp_totp", "django_celery_results"})
# Apps whose rows are written by the system only (a Celery task's result): nobody adds one.
SYSTEM_WRITTEN_APPS = frozenset({"django_celery_results"})

# Apps whose rows are the record: they change through audited actions and are never
# deleted in the portal (a partner is terminated, a grant revoked, a checkpoint pulled).
DOMAIN_APPS = frozenset({"partners", "audit", "signing"})


class DomainRowsStay:
    """Mixed by ``PortalSite.register`` in front of every ModelAdmin of ``DOMAIN_APPS``: no
    delete page, delete button or bulk delete, for anyone, superusers included. Django's
    delete would remove the row (and cascade) with no action and no audit event. Inlines
    are not ModelAdmins: a contact or membership row is removed through its action."""

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class SystemWritten:
    """Mixed by ``PortalSite.register`` in front of every ModelAdmin of
    ``SYSTEM_WRITTEN_APPS``: no add page or button, for anyone."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False


class PortalLoginForm(OTPAdminAuthenticationForm):
    """Password and authentication code on one form, without a device picker.

    A six-digit code is checked against the user's authenticator app (TOTP); anything
    else against their one-time backup codes.
    """

    # One answer for every failed combination: a message that differed once the password
    # was right would tell a guesser they had it. The audit event keeps the reason.
    FAILED = (
        "Wrong username, password or authentication code. Enter all three; codes change "
        "every 30 seconds."
    )
    error_messages = {
        **OTPAdminAuthenticationForm.error_messages,
        "invalid_login": FAILED,
    }

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except forms.ValidationError as refused:
            code = str(getattr(refused, "code", "") or "")
            if self.user_cache is not None and code not in {"invalid_login", "inactive"}:
                # The password was right and the second factor was not: a failed sign-in
                # like a wrong password, audited and counted by django-axes' lockout
                # (both listen to this signal).
                user_login_failed.send(
                    sender=type(self),
                    credentials={"username": self.cleaned_data.get("username", "")},
                    request=self.request,
                    reason=_SECOND_FACTOR_REASONS.get(code, "second_factor_invalid"),
                )
            raise forms.ValidationError(self.FAILED, code="invalid_login") from refused

    def _chosen_device(self, user: User) -> Device | None:
        token = (self.cleaned_data.get("otp_token") or "").strip()
        devices = list(devices_for_user(user))
        backup = [d for d in devices if isinstance(d, StaticDevice)]
        apps = [d for d in devices if not isinstance(d, StaticDevice)]
        preferred = apps if token.isdigit() and len(token) in (6, 8) else backup
        return (preferred or apps or backup or [None])[0]

    def _update_form(self, user: User) -> None:
        # The device picker stays hidden: the device follows from the code entered.
        self.fields["otp_device"].widget = forms.HiddenInput()


class PortalSite(OTPAdminSite):
    site_header = "accessctl"
    site_title = "accessctl staff portal"
    index_title = "Dashboard"
    index_template = "admin/dashboard.html"
    login_form = PortalLoginForm
    login_template = "admin/portal_login.html"
    # No app list beside every page: at 1280 px it took a quarter of the width from the
    # lists and object pages (the dashboard and the breadcrumbs lead everywhere).
    enable_nav_sidebar = False

    def __init__(self, name: str = "admin") -> None:
        # Not a no-op: OTPAdminSite's default name is "otpadmin", and the site Django makes
        # from ``default_site`` (no arguments) must be "admin", the URL namespace
        # (``admin:index``) every template, redirect and test reverses.
        super().__init__(name)

    def register(
        self,
        model_or_iterable: type[Model] | Iterable[type[Model]],
        admin_class: type[admin.ModelAdmin] | None = None,
        **options: Any,
    ) -> None:
        """Every ModelAdmin, ours or an installed app's, gets ``SecretFieldGuard``: secret
        fields can be neither looked up, filtered, searched, ordered by nor listed. Those of
        the domain apps also get ``DomainRowsStay``: nothing of theirs is deleted here. A
        new admin cannot forget either."""
        models: Iterable[type[Model]] = (
            [model_or_iterable] if isinstance(model_or_iterable, ModelBase) else model_or_iterable
        )
        for model in models:
            base = admin_class or admin.ModelAdmin
            guards: list[type] = [SecretFieldGuard]
            if model._meta.app_label in DOMAIN_APPS:
                guards.append(DomainRowsStay)
            if model._meta.app_label in SYSTEM_WRITTEN_APPS:
                guards.append(SystemWritten)
            mixins = tuple(g for g in guards if not issubclass(base, g))
            if mixins:
                base = _with(mixins, base)
            if DomainRowsStay in guards and (
                base.has_delete_permission is not DomainRowsStay.has_delete_permission
            ):
                raise ImproperlyConfigured(f"{base.__qualname__} may not delete domain rows")
            super().register(model, base, **options)

    def password_change(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponseBase:
        """Django's page, with a form that saves through the audited ``set_password``."""
        from django.contrib.auth.views import PasswordChangeView
        from django.urls import reverse

        # The form saves through a domain action: named in settings, not imported.
        form_class = import_string(settings.ACCESSCTL_PORTAL_PASSWORD_FORM)
        request.current_app = self.name
        return PasswordChangeView.as_view(
            form_class=form_class,
            success_url=reverse("admin:password_change_done", current_app=self.name),
            extra_context={**self.each_context(request), **(extra_context or {})},
        )(request)

    def get_urls(self) -> list[URLPattern | URLResolver]:
        from django.urls import path

        two_factor_view = import_string(settings.ACCESSCTL_PORTAL_TWO_FACTOR_VIEW)

        def two_factor(request: HttpRequest) -> HttpResponse:
            return two_factor_view(request, self)

        # The domain's own pages (settings.ACCESSCTL_PORTAL_PAGES), behind the same sign-in.
        pages = [
            path(route, self.admin_view(functools.partial(view, site=self)), name=name)
            for route, view, name in import_string(settings.ACCESSCTL_PORTAL_PAGES)()
        ]
        return [
            path("two-factor/", self.admin_view(two_factor), name="two_factor"),
            *pages,
            *super().get_urls(),
        ]

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        # The domain fills the dashboard (settings.ACCESSCTL_PORTAL_DASHBOARD): the portal
        # is platform code and imports no domain module.
        dashboard = import_string(settings.ACCESSCTL_PORTAL_DASHBOARD)
        response = super().index(request, {**dashboard(request), **(extra_context or {})})
        if response.context_data is not None:  # the home's navigation: no plumbing apps
            response.context_data["app_list"] = [
                app
                for app in response.context_data.get("app_list", [])
                if app["app_label"] not in HOME_HIDDEN_APPS
            ]
        return response


def _with(mixins: tuple[type, ...], base: type) -> type:
    """``base`` with ``mixins`` in front (so theirs is the last word), under its own name."""
    return types.new_class(
        base.__name__,
        (*mixins, base),
        {},
        lambda ns: ns.update({"__module__": base.__module__, "__qualname__": base.__qualname__}),
    )
