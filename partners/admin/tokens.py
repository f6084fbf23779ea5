from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from accessctl.audit.admin import AuditHistory
from partners import actions
from partners.models import AccessToken
from partners.tokens import Scope

from ._helpers import ActionErrorsAsMessages, AddThenReadOnly, reason_action

__all__ = ["AccessTokenAdmin"]


class TokenCreateForm(forms.ModelForm):
    user = forms.ModelChoiceField(queryset=get_user_model().objects.filter(is_active=True))
    scopes = forms.MultipleChoiceField(
        choices=[(s.value, s.value) for s in Scope],
        widget=forms.CheckboxSelectMultiple,
        help_text="Partner members: read, grants:request, download. Staff: staff.",
    )
    expires_at = forms.DateTimeField(required=False, help_text="Empty: the longest allowed.")
    allowed_networks = forms.JSONField(
        required=False, initial=list, help_text='e.g. ["203.0.113.0/24"]'
    )

    class Meta:
        model = AccessToken
        fields = ["user", "name", "scopes", "expires_at", "allowed_networks"]

    def _post_clean(self) -> None:
        pass  # validated by the action, which also makes the secret


@admin.register(AccessToken)
class AccessTokenAdmin(AuditHistory, AddThenReadOnly, ActionErrorsAsMessages, admin.ModelAdmin):
    add_form = TokenCreateForm
    add_fields = ("user", "name", "scopes", "expires_at", "allowed_networks")
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

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("partners.revoke_accesstoken")

    def save_model(
        self, request: HttpRequest, obj: AccessToken, form: ModelForm, change: bool
    ) -> None:
        data = form.cleaned_data
        token, secret = actions.create_token(
            actor=request.user,
            user=data["user"],
            name=data["name"],
            scopes=data["scopes"],
            expires_at=data.get("expires_at"),
            allowed_networks=data.get("allowed_networks") or [],
        )
        obj.pk = token.pk
        request._accessctl_token_secret = secret  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: AccessToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        """Show the secret once, in this response only: it is never stored, not even in
        the session or a message cookie."""
        secret = getattr(request, "_accessctl_token_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        response = TemplateResponse(
            request,
            "admin/accessctl/token_created.html",
            {
                **self.admin_site.each_context(request),
                "token": obj,
                "secret": secret,
                "opts": self.opts,
                "title": "Token created",
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    @reason_action(description="Revoke selected tokens", permission="revoke", submit_label="Revoke")
    def revoke(self, request: HttpRequest, token: AccessToken, reason: str) -> None:
        actions.revoke_token(actor=request.user, token=token, reason=reason)
