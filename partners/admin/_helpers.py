"""Pieces shared by the portal's model admins."""

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from partners.errors import ActionError
from partners.refusals import settle

__all__ = [
    "ActionErrorsAsMessages",
    "AddThenReadOnly",
    "KeepStoredTimes",
    "action_error_to_validation",
    "changed_values",
    "reason_action",
]


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
                # Each selected row with what the action would refuse for it, said before
                # anyone confirms (by the rule its object page's button asks).
                said = getattr(modeladmin, "bulk_refusal", None)
                rows = [
                    (obj, said(apply.__name__, obj, request.user) if said else None)
                    for obj in queryset
                ]
                refused = sum(1 for _, refusal in rows if refusal)
                return TemplateResponse(
                    request,
                    "admin/accessctl/reason_form.html",
                    {
                        **modeladmin.admin_site.each_context(request),
                        "title": description,
                        "intro": f"{description}: say why.",
                        "queryset": queryset,
                        "rows": rows,
                        "refused": refused,
                        "changes": len(rows) - refused,
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
                    settle(exc)
                    modeladmin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
            if done:
                modeladmin.message_user(request, f"{description}: {done} done.", messages.SUCCESS)
            return None

        run.__name__ = apply.__name__
        # The one-object form, for the button on the object's own page (admin/buttons.py):
        # the same function, so both paths do exactly the same.
        run.apply = apply  # type: ignore[attr-defined]
        return run

    return decorate


def action_error_to_validation(exc: ActionError) -> ValidationError:
    """A form's refusal: its evidence is written (the admin's transaction commits a form
    with errors), and the message shown on the form."""
    settle(exc)
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
            settle(exc)  # the admin's transaction rolled back: the evidence is written now
            self.message_user(request, exc.message, messages.ERROR)  # type: ignore[attr-defined]
            return HttpResponseRedirect(request.get_full_path())


class AddThenReadOnly:
    """An admin whose rows are made by an action through ``add_form`` and are history
    afterwards: the add page shows ``add_fields``, the change page only reads."""

    add_form: type[ModelForm]
    add_fields: Sequence[str]
    readonly_fields: ClassVar[Sequence[str]]

    def get_form(
        self, request: HttpRequest, obj: Model | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change, **kwargs)  # type: ignore[misc]

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        return self.readonly_fields if obj else []

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        return self.readonly_fields if obj else list(self.add_fields)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class KeepStoredTimes(forms.ModelForm):
    """A form whose untouched date-times keep the stored value, microseconds included.

    The portal's date-time widgets show whole seconds, so a stored time posted back
    unchanged comes back earlier (a window closing up to a second early, an NDA expiry
    "changed" by nobody). Django already counts such a field as unchanged
    (``changed_data``); this puts the stored value back in ``cleaned_data`` for it, so
    the form's own checks and the action see what is stored.
    """

    def clean(self) -> dict[str, Any]:
        super().clean()
        if self.instance.pk is None:
            return self.cleaned_data
        changed = set(self.changed_data)
        for name, field in self.fields.items():
            if (
                isinstance(field, forms.DateTimeField | forms.SplitDateTimeField)
                and name in self.cleaned_data
                and name not in changed
            ):
                self.cleaned_data[name] = getattr(self.instance, name)
        return self.cleaned_data


def changed_values(form: ModelForm, fields: Sequence[str]) -> dict[str, Any]:
    """The values of ``fields`` the person changed: only those reach an update action,
    so saving a form unchanged changes nothing and records nothing."""
    return {name: form.cleaned_data[name] for name in fields if name in form.changed_data}
