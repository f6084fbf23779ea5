"""A signed-in staff member's own credentials: *My two-factor* and *Change password*.

Both go through the account actions, so they are in the audit trail like any other
change of an account (``account.password_set`` with ``by_owner``; ``second_factor.*``).

*My two-factor* replaces one's own second factor.

Nobody else can: the portal never shows a device's key or codes (``partners/admin/
accounts.py``), and the actions refuse to enroll a device for someone else. Here, after a
current code from their existing device (or a backup code):

* **a new authenticator app**: a key is made and shown once, as a QR code and as text, in
  that response only (not cached); it waits in the person's own server-side session until
  they type the new app's current code, and only then replaces their old app
  (``enroll_totp``). Reloading the page does not show it again: start over instead.
* **new backup codes**: ten one-time codes, shown once in that response; the old ones
  stop working (``generate_backup_codes``).

A person's first device comes from the operator (``manage.py enroll_second_factor``).
"""

import base64
import io
from datetime import timedelta
from typing import Any

import qrcode
import qrcode.image.svg
from django import forms
from django.contrib import messages
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminPasswordChangeForm
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accessctl.actors import acting_user
from partners import actions
from partners.actions.accounts import new_totp_key
from partners.actions.tokens import verify_second_factor
from partners.errors import ActionError

__all__ = ["OwnPasswordChangeForm", "two_factor_view"]

PENDING = "accessctl.pending_totp"
PENDING_FOR = timedelta(minutes=10)

_CODE_WIDGET = forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"})


class CurrentCodeForm(forms.Form):
    current_code = forms.CharField(
        label="Current code",
        max_length=32,
        help_text="From your authenticator app now (or one of your backup codes).",
        widget=_CODE_WIDGET,
    )


class ConfirmForm(forms.Form):
    code = forms.CharField(
        label="Code from the new app", max_length=6, min_length=6, widget=_CODE_WIDGET
    )


class OwnPasswordChangeForm(AdminPasswordChangeForm):
    """The site's *Change password* form (old password, new one twice), saving through
    ``set_password`` so the change is audited."""

    def save(self, commit: bool = True) -> User:
        self.user = actions.set_password(
            actor=self.user, user=self.user, password=self.cleaned_data["new_password1"]
        )
        return self.user


def _qr_data_uri(text: str) -> str:
    out = io.BytesIO()
    qrcode.make(text, image_factory=qrcode.image.svg.SvgImage).save(out)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode()


def _pending_key(request: HttpRequest) -> str | None:
    pending = request.session.get(PENDING)
    if not pending:
        return None
    started = parse_datetime(pending.get("at", ""))
    if started is None or timezone.now() - started > PENDING_FOR:
        request.session.pop(PENDING, None)
        return None
    return str(pending["key"])


def _render(request: HttpRequest, site: AdminSite, **context: Any) -> HttpResponse:
    user = request.user
    response = TemplateResponse(
        request,
        "admin/accessctl/two_factor.html",
        {
            **site.each_context(request),
            "title": "My two-factor",
            "apps": TOTPDevice.objects.filter(user=user, confirmed=True),
            "backup_left": sum(d.token_set.count() for d in StaticDevice.objects.filter(user=user)),
            "start_form": context.pop("start_form", None) or CurrentCodeForm(prefix="start"),
            "backup_form": context.pop("backup_form", None) or CurrentCodeForm(prefix="backup"),
            "confirm_form": context.pop("confirm_form", None)
            or (ConfirmForm() if _pending_key(request) else None),
            **context,
        },
    )
    # Keys and codes appear in these responses only: never cached, never stored.
    response["Cache-Control"] = "no-store"
    return response


def two_factor_view(request: HttpRequest, site: AdminSite) -> HttpResponse:
    user = acting_user(request)
    if request.method != "POST":
        return _render(request, site)
    if "start" in request.POST:
        start_form = CurrentCodeForm(request.POST, prefix="start")
        if start_form.is_valid():
            try:
                # Outside any transaction: a wrong code counts against the device.
                verify_second_factor(user, start_form.cleaned_data["current_code"])
            except ActionError as exc:
                start_form.add_error("current_code", exc.message)
            else:
                key = new_totp_key()
                request.session[PENDING] = {"key": key, "at": timezone.now().isoformat()}
                config_url = TOTPDevice(user=user, key=key).config_url
                return _render(
                    request,
                    site,
                    new_key=base64.b32encode(bytes.fromhex(key)).decode(),
                    qr=_qr_data_uri(config_url),
                    confirm_form=ConfirmForm(),
                )
        return _render(request, site, start_form=start_form)
    if "confirm" in request.POST:
        confirm_form = ConfirmForm(request.POST)
        pending = _pending_key(request)
        if pending is None:
            messages.error(request, "Start again: the new key was not confirmed in time.")
            return HttpResponseRedirect(reverse("admin:two_factor"))
        if confirm_form.is_valid():
            try:
                device = actions.enroll_totp(
                    actor=user, user=user, key=pending, code=confirm_form.cleaned_data["code"]
                )
            except ActionError as exc:
                confirm_form.add_error("code", exc.message)
            else:
                request.session.pop(PENDING, None)
                otp_login(request, device)  # this session now stands on the new app
                messages.success(request, "Your new authenticator app is set up.")
                return HttpResponseRedirect(reverse("admin:two_factor"))
        return _render(request, site, confirm_form=confirm_form)
    if "backup" in request.POST:
        backup_form = CurrentCodeForm(request.POST, prefix="backup")
        if backup_form.is_valid():
            signed_in_with_backup = isinstance(getattr(user, "otp_device", None), StaticDevice)
            try:
                codes = actions.generate_backup_codes(
                    actor=user, user=user, current_code=backup_form.cleaned_data["current_code"]
                )
            except ActionError as exc:
                backup_form.add_error("current_code", exc.message)
            else:
                if signed_in_with_backup:
                    otp_login(request, StaticDevice.objects.get(user=user))
                return _render(request, site, backup_codes=codes)
        return _render(request, site, backup_form=backup_form)
    return HttpResponseRedirect(reverse("admin:two_factor"))
