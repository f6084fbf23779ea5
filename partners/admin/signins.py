"""django-axes' sign-in lockouts in the portal: clearing one is an audited action.

A lock is django-axes' attempt row for a username and address. Deleting it (the row's
delete page, offered to the Security officer role) calls ``clear_lockout``, which records
``staff.lockout_cleared`` with whose lock it was. django-axes' *Clean up expired attempts*
action is not offered: it reads ``request.axes_attempt_time``, which only its sign-in
handler sets, so in the portal it always failed (500); it has nothing to do anyway (an
expired attempt locks nobody out, and django-axes deletes expired attempts at every
sign-in).
"""

from typing import Any

from axes.admin import AccessAttemptAdmin as AxesAccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from accessctl.actors import acting_user
from partners import actions
from partners.authority import Operation, may

__all__ = ["AccessAttemptAdmin"]


class AccessAttemptAdmin(AxesAccessAttemptAdmin):  # type: ignore[misc]
    actions: Any = []

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may(request.user, Operation.STAFF_CLEAR_LOCKOUT, obj)

    def delete_model(self, request: HttpRequest, obj: AccessAttempt) -> None:
        actions.clear_lockout(actor=acting_user(request), attempt=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for attempt in queryset:
            actions.clear_lockout(actor=acting_user(request), attempt=attempt)


if admin.site.is_registered(AccessAttempt):
    admin.site.unregister(AccessAttempt)
    admin.site.register(AccessAttempt, AccessAttemptAdmin)
