"""The periodic tasks (django-celery-beat) in the portal, as audited controls.

django-celery-beat's own admins save rows directly (and its list actions update them in
bulk), so a schedule could be switched off without evidence. These replace them: every
change calls an action in ``partners.actions.schedules``, which records it; the task and
its name are never editable, no schedule is added or deleted here (migrations install
them), and intervals and crontabs, once made, are read-only (a change to one would
silently reschedule every task using it).
"""

from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.translation import ngettext
from django_celery_beat.admin import PeriodicTaskInline
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from accessctl.actors import acting_user
from accessctl.audit.admin import AuditHistory
from partners import actions
from partners.actions.schedules import CRONTAB_FIELDS, EDITABLE_FIELDS
from partners.authority import Operation, may
from partners.errors import ActionError
from partners.refusals import settle

from ._helpers import ActionErrorsAsMessages, AddThenReadOnly, changed_values

__all__ = ["CrontabScheduleAdmin", "IntervalScheduleAdmin", "PeriodicTaskAdmin"]

for model in (PeriodicTask, IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


class ScheduleForm(forms.ModelForm):
    class Meta:
        model = PeriodicTask
        fields = EDITABLE_FIELDS
        widgets = {
            "args": forms.Textarea(attrs={"rows": 2, "cols": 60}),
            "kwargs": forms.Textarea(attrs={"rows": 2, "cols": 60}),
        }


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(AuditHistory, ActionErrorsAsMessages, admin.ModelAdmin):
    form = ScheduleForm
    list_display = ["name", "task", "enabled", "interval", "crontab", "last_run_at"]
    list_filter = ["enabled"]
    search_fields = ["name", "task"]
    list_select_related = ["interval", "crontab"]
    fields = ["name", "task", *EDITABLE_FIELDS, "last_run_at", "total_run_count", "date_changed"]
    readonly_fields = ["name", "task", "last_run_at", "total_run_count", "date_changed"]
    actions = ["enable", "disable"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # installed by migrations

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # a lifecycle control is switched off (and that shows), never deleted

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may(request.user, Operation.SCHEDULE_CHANGE, obj)

    def save_model(
        self, request: HttpRequest, obj: PeriodicTask, form: ModelForm, change: bool
    ) -> None:
        actions.change_schedule(
            actor=acting_user(request), task=obj, **changed_values(form, EDITABLE_FIELDS)
        )

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet, enabled: bool) -> None:
        done = 0
        for task in queryset:
            try:
                actions.change_schedule(actor=acting_user(request), task=task, enabled=enabled)
                done += 1
            except ActionError as exc:
                settle(exc)
                self.message_user(request, f"{task.name}: {exc.message}", messages.ERROR)
        if done:
            state = "enabled" if enabled else "disabled"
            self.message_user(
                request,
                f"{done} {ngettext('schedule', 'schedules', done)} {state}.",
                messages.SUCCESS,
            )

    @admin.action(description="Enable selected schedules", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected schedules", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_enabled(request, queryset, False)


class _ScheduleKindAdmin(AuditHistory, AddThenReadOnly, ActionErrorsAsMessages, admin.ModelAdmin):
    operation: Operation
    readonly_fields: ClassVar[tuple[str, ...]] = ()

    def get_inlines(self, request: HttpRequest, obj: Model | None) -> list[Any]:
        return [PeriodicTaskInline] if obj else []  # the tasks using this schedule

    def has_add_permission(self, request: HttpRequest) -> bool:
        return may(request.user, self.operation)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # deleting a schedule deletes the periodic tasks using it


class IntervalForm(forms.ModelForm):
    class Meta:
        model = IntervalSchedule
        fields = ["every", "period"]


@admin.register(IntervalSchedule)
class IntervalScheduleAdmin(_ScheduleKindAdmin):
    operation = Operation.SCHEDULE_CREATE_INTERVAL
    add_form = IntervalForm
    add_fields = ("every", "period")
    readonly_fields = ("every", "period")

    def save_model(
        self, request: HttpRequest, obj: IntervalSchedule, form: ModelForm, change: bool
    ) -> None:
        created = actions.create_interval(
            actor=acting_user(request),
            every=form.cleaned_data["every"],
            period=form.cleaned_data["period"],
        )
        obj.pk = created.pk


class CrontabForm(forms.ModelForm):
    class Meta:
        model = CrontabSchedule
        fields = list(CRONTAB_FIELDS)


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(_ScheduleKindAdmin):
    operation = Operation.SCHEDULE_CREATE_CRONTAB
    add_form = CrontabForm
    add_fields = CRONTAB_FIELDS
    readonly_fields = (*CRONTAB_FIELDS, "human_readable")
    list_display = ["__str__", "human_readable"]

    def save_model(
        self, request: HttpRequest, obj: CrontabSchedule, form: ModelForm, change: bool
    ) -> None:
        values = {name: form.cleaned_data[name] for name in CRONTAB_FIELDS}
        obj.pk = actions.create_crontab(actor=acting_user(request), **values).pk
