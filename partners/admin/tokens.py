"""API tokens in the portal.

* *Add access token* makes a staff token for the signed-in staff member themselves, after
  a fresh second-factor code; the secret is shown once, to them.
* *Add token invitation* asks for a partner member's token: the member gets a one-time
  link by email and the secret is shown to them alone. The staff member never sees it.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from accessctl.actors import acting_user
from accessctl.audit.admin import AuditHistory
from partners import actions, tokens
from partners.actions.tokens import PARTNER_SCOPES
from partners.authority import Operation, may
from partners.errors import ActionError
from partners.models import AccessToken, Partner, TokenInvitation
from partners.refusals import settle

from ._helpers import ActionErrorsAsMessages, AddThenReadOnly, reason_action

__all__ = ["AccessTokenAdmin", "TokenInvitationAdmin"]

NETWORKS_HELP = 'Address ranges it may be used from, e.g. ["203.0.113.0/24"]; empty: any.'


class StaffTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for, e.g. release pipeline.")
    expires_at = forms.DateTimeField(required=False, help_text="Empty: the longest allowed.")
    allowed_networks = forms.JSONField(required=False, initial=list, help_text=NETWORKS_HELP)
    second_factor = forms.CharField(
        label="Authentication code",
        max_length=32,
        help_text="A current code from your authenticator app (or a backup code).",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


@admin.register(AccessToken)
class AccessTokenAdmin(AuditHistory, AddThenReadOnly, admin.ModelAdmin):
    list_display = [
        "prefix",
        "name",
        "user",
        "partner",
        "scopes",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["partner", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "user__username", "partner__slug"]
    list_select_related = ["user", "partner"]
    actions = ["revoke"]
    readonly_fields = [
        "user",
        "partner",
        "name",
        "prefix",
        "scopes",
        "allowed_networks",
        "created_at",
        "created_by",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # For themselves only: the action makes the token for its actor.
        return may(request.user, Operation.TOKEN_CREATE_STAFF)

    def has_module_permission(self, request: HttpRequest) -> bool:
        # Every staff member may make their own token: the page is listed for them even
        # when they hold no permission of this app (Django's module rule would hide it).
        return self.has_add_permission(request) or super().has_module_permission(request)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return may(request.user, Operation.TOKEN_REVOKE)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Not the admin's change form: that runs in one transaction, and a refused code
        must still count against the device's throttle (see ``verify_second_factor``)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = StaffTokenForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            data = form.cleaned_data
            try:
                token, secret = actions.create_staff_token(
                    actor=acting_user(request),
                    name=data["name"],
                    second_factor=data["second_factor"],
                    expires_at=data.get("expires_at"),
                    allowed_networks=data.get("allowed_networks") or [],
                )
            except ActionError as exc:
                settle(exc)
                form.add_error(
                    "second_factor" if "second_factor" in exc.code else None, exc.message
                )
            else:
                return _show_secret(self, request, token, secret)
        response = TemplateResponse(
            request,
            "admin/accessctl/staff_token_form.html",
            {
                **self.admin_site.each_context(request),
                "title": "New staff token for yourself",
                "form": form,
                "opts": self.opts,
                **(extra_context or {}),
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    @reason_action(description="Revoke selected tokens", permission="revoke", submit_label="Revoke")
    def revoke(self, request: HttpRequest, token: AccessToken, reason: str) -> None:
        actions.revoke_token(actor=acting_user(request), token=token, reason=reason)


def _show_secret(
    model_admin: admin.ModelAdmin, request: HttpRequest, token: AccessToken, secret: str
) -> HttpResponse:
    """The secret, in this response only: never stored, not even in the session or a
    message cookie, and not cached."""
    response = TemplateResponse(
        request,
        "admin/accessctl/token_created.html",
        {
            **model_admin.admin_site.each_context(request),
            "token": token,
            "shown": tokens.described(token),
            "secret": secret,
            "opts": model_admin.opts,
            "title": "Token created",
        },
    )
    response["Cache-Control"] = "no-store"
    return response


class InvitationForm(forms.ModelForm):
    user = forms.ModelChoiceField(
        # Members of active partners only: a suspended partner's members get no new
        # token (``invite_member_token`` refuses them too).
        queryset=get_user_model().objects.filter(
            is_active=True,
            is_staff=False,
            partner_membership__partner__status=Partner.Status.ACTIVE,
        ),
        help_text="A member of an active partner; the link goes to their own email address.",
    )
    scopes = forms.MultipleChoiceField(
        choices=[(s, s) for s in sorted(PARTNER_SCOPES)], widget=forms.CheckboxSelectMultiple
    )
    expires_at = forms.DateTimeField(
        required=False, help_text="When the token expires. Empty: the longest allowed."
    )
    allowed_networks = forms.JSONField(required=False, initial=list, help_text=NETWORKS_HELP)

    class Meta:
        model = TokenInvitation
        fields = ["user", "name", "scopes", "expires_at", "allowed_networks"]

    def _post_clean(self) -> None:
        pass  # validated by the action


@admin.register(TokenInvitation)
class TokenInvitationAdmin(AuditHistory, AddThenReadOnly, ActionErrorsAsMessages, admin.ModelAdmin):
    add_form = InvitationForm
    add_fields = ("user", "name", "scopes", "expires_at", "allowed_networks")
    list_display = ["name", "user", "partner", "scopes", "created_by", "claim_by", "state", "token"]
    list_filter = ["partner", ("claimed_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "user__username", "partner__slug"]
    list_select_related = ["user", "partner", "created_by", "token"]
    readonly_fields = [
        "user",
        "partner",
        "name",
        "scopes",
        "allowed_networks",
        "token_expires_at",
        "created_at",
        "created_by",
        "claim_by",
        "claimed_at",
        "token",
        "cancelled_at",
    ]

    @admin.display(description="state")
    def state(self, obj: TokenInvitation) -> str:
        return obj.state_at(timezone.now())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return may(request.user, Operation.TOKEN_INVITE_MEMBER)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: TokenInvitation, form: ModelForm, change: bool
    ) -> None:
        data = form.cleaned_data
        invitation = actions.invite_member_token(
            actor=acting_user(request),
            user=data["user"],
            name=data["name"],
            scopes=data["scopes"],
            expires_at=data.get("expires_at"),
            allowed_networks=data.get("allowed_networks") or [],
        )
        obj.pk, obj.user, obj.partner, obj.name = (
            invitation.pk,
            invitation.user,
            invitation.partner,
            invitation.name,
        )
        self.message_user(
            request,
            f"A one-time link was emailed to {invitation.user} ({invitation.user.email}); "
            "the token is made, and shown to them alone, when they open it.",
            messages.SUCCESS,
        )
