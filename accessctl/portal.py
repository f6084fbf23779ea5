"""The staff portal's admin site: two-factor sign-in (django-otp) and the dashboard."""

import types
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured
from django.db.models.base import ModelBase
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite
from django_otp.plugins.otp_static.models import StaticDevice

from accessctl.admin_secrets import SecretFieldGuard

__all__ = ["DOMAIN_APPS", "DomainRowsStay", "PortalLoginForm", "PortalSite"]

TIMELINE_DAYS = 60

# Apps whose rows are the record: they change through audited actions and are never
# deleted in the portal (a partner is terminated, a grant revoked, a checkpoint pulled).
DOMAIN_APPS = frozenset({"partners", "audit", "signing"})


class DomainRowsStay:
    """Mixed by ``PortalSite.register`` in front of every ModelAdmin of ``DOMAIN_APPS``: no
    delete page, delete button or bulk delete, for anyone, superusers included. Django's
    delete would remove the row (and cascade) with no action and no audit event. Inlines
    are not ModelAdmins: a contact or membership row is removed through its action."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PortalLoginForm(OTPAdminAuthenticationForm):
    """Password and authentication code on one form, without a device picker.

    A six-digit code is checked against the user's authenticator app (TOTP); anything
    else against their one-time backup codes.
    """

    otp_error_messages = {
        **OTPAdminAuthenticationForm.otp_error_messages,
        "token_required": "Enter the code from your authenticator app.",
        "invalid_token": "That authentication code is not valid. Try the next one.",
        "device_required": "This account has no two-factor device; a security officer must set one up.",
    }

    def _chosen_device(self, user: Any) -> Any:
        token = (self.cleaned_data.get("otp_token") or "").strip()
        devices = list(devices_for_user(user))
        backup = [d for d in devices if isinstance(d, StaticDevice)]
        apps = [d for d in devices if not isinstance(d, StaticDevice)]
        preferred = apps if token.isdigit() and len(token) in (6, 8) else backup
        return (preferred or apps or backup or [None])[0]

    def _update_form(self, user: Any) -> None:
        # The device picker stays hidden: the device follows from the code entered.
        self.fields["otp_device"].widget = forms.HiddenInput()


class PortalSite(OTPAdminSite):
    site_header = "accessctl"
    site_title = "accessctl staff portal"
    index_title = "Dashboard"
    index_template = "admin/dashboard.html"
    login_form = PortalLoginForm
    login_template = "admin/portal_login.html"

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)

    def register(self, model_or_iterable: Any, admin_class: Any = None, **options: Any) -> None:
        """Every ModelAdmin, ours or an installed app's, gets ``SecretFieldGuard``: secret
        fields can be neither looked up, filtered, searched, ordered by nor listed. Those of
        the domain apps also get ``DomainRowsStay``: nothing of theirs is deleted here. A
        new admin cannot forget either."""
        models: Any = (
            [model_or_iterable] if isinstance(model_or_iterable, ModelBase) else model_or_iterable
        )
        for model in models:
            base = admin_class or admin.ModelAdmin
            guards: list[type] = [SecretFieldGuard]
            if model._meta.app_label in DOMAIN_APPS:
                guards.append(DomainRowsStay)
            mixins = tuple(g for g in guards if not issubclass(base, g))
            if mixins:
                base = _with(mixins, base)
            if DomainRowsStay in guards and (
                base.has_delete_permission is not DomainRowsStay.has_delete_permission
            ):
                raise ImproperlyConfigured(f"{base.__qualname__} may not delete domain rows")
            super().register(model, base, **options)

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        return super().index(request, {**dashboard(request), **(extra_context or {})})


def _with(mixins: tuple[type, ...], base: type) -> type:
    """``base`` with ``mixins`` in front (so theirs is the last word), under its own name."""
    return types.new_class(
        base.__name__,
        (*mixins, base),
        {},
        lambda ns: ns.update({"__module__": base.__module__, "__qualname__": base.__qualname__}),
    )


def dashboard(request: HttpRequest) -> dict[str, Any]:
    from partners import queries, states

    user = request.user
    now = timezone.now()
    start = now - timedelta(days=7)
    span = timedelta(days=TIMELINE_DAYS)
    context: dict[str, Any] = {"now": now, "timeline_days": TIMELINE_DAYS}
    if user.has_perm("partners.view_embargowindow"):
        rows: dict[str, list[dict[str, Any]]] = {}
        for window in queries.timeline_windows(at=start, horizon=span):
            left = max((window.opens_at - start) / span, 0.0)
            right = min((window.closes_at - start) / span, 1.0)
            rows.setdefault(window.release.slug, []).append(
                {
                    "window": window,
                    "state": states.window_state(window, now).value,
                    "left": round(left * 100, 2),
                    "width": round(max(right - left, 0.005) * 100, 2),
                }
            )
        context["timeline"] = rows
        context["timeline_start"], context["timeline_end"] = start, start + span
        context["now_left"] = round((now - start) / span * 100, 2)
    if user.has_perm("partners.view_grant"):
        context["expiring_grants"] = list(
            queries.expiring_grants(at=now, within=timedelta(days=7))[:10]
        )
    if user.has_perm("audit.view_auditevent"):
        context["recent_denials"] = list(queries.recent_denials(limit=10))
    if user.has_perm("partners.view_grantrequest"):
        context["pending_requests"] = list(queries.pending_requests()[:10])
    if user.has_perm("django_celery_beat.view_periodictask"):
        context["disabled_schedules"] = queries.disabled_schedules()
        context["schedule_warnings"] = queries.schedule_warnings(at=now)
    return context
