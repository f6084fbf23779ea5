"""Pieces shared by the portal's model admins."""

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from partners.errors import ActionError

__all__ = ["ActionErrorsAsMessages", "action_error_to_validation", "reason_action"]


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=300,
        help_text="Kept in the audit trail.",
    )


def reason_action(
    *, description: str, permission: str, submit_label: str
) -> Callable[[Callable[..., None]], Callable[..., HttpResponse | None]]:
    """An admin action that first asks for a reason, then calls ``apply`` per object.

    ``apply(request, obj, reason)`` calls one action; an ``ActionError`` for one object is
    shown and the others still go ahead, each in its own transaction.
    """

    def decorate(apply: Callable[..., None]) -> Callable[..., HttpResponse | None]:
        @admin.action(description=description, permissions=[permission])
        def run(
            modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
        ) -> HttpResponse | None:
            form = ReasonForm(request.POST if request.POST.get("confirm") else None)
            if not form.is_valid():
                return TemplateResponse(
                    request,
                    "admin/accessctl/reason_form.html",
                    {
                        **modeladmin.admin_site.each_context(request),
                        "title": description,
                        "intro": f"{description}: say why.",
                        "queryset": queryset,
                        "form": form,
                        "action": apply.__name__,
                        "submit_label": submit_label,
                        "opts": modeladmin.model._meta,
                    },
                )
            done = 0
            for obj in queryset:
                try:
                    apply(modeladmin, request, obj, form.cleaned_data["reason"])
                    done += 1
                except ActionError as exc:
                    modeladmin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
            if done:
                modeladmin.message_user(request, f"{description}: {done} done.", messages.SUCCESS)
            return None

        run.__name__ = apply.__name__
        return run

    return decorate


def action_error_to_validation(exc: ActionError) -> ValidationError:
    if exc.fields:
        return ValidationError(exc.fields)
    return ValidationError(exc.message, code=exc.code)


class ActionErrorsAsMessages:
    """The last safety net: an action that refuses on save (say, a race with another
    staff member) shows its message instead of an error page; nothing was written."""

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().changeform_view(request, *args, **kwargs)  # type: ignore[misc]
        except ActionError as exc:
            self.message_user(request, exc.message, messages.ERROR)  # type: ignore[attr-defined]
            return HttpResponseRedirect(request.get_full_path())
