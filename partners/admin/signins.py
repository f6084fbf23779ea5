"""django-axes' sign-in lockouts in the portal, without its broken bulk action.

django-axes' *Clean up expired attempts* action reads ``request.axes_attempt_time``, which
only its sign-in handler sets, so in the portal it always fails (500). It has nothing to
do anyway: an expired attempt locks nobody out, and django-axes deletes expired attempts
at every sign-in. Clearing a lock is deleting that attempt (its delete page), as before.
"""

from typing import Any

from axes.admin import AccessAttemptAdmin as AxesAccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin

__all__ = ["AccessAttemptAdmin"]


class AccessAttemptAdmin(AxesAccessAttemptAdmin):  # type: ignore[misc]
    actions: Any = []


if admin.site.is_registered(AccessAttempt):
    admin.site.unregister(AccessAttempt)
    admin.site.register(AccessAttempt, AccessAttemptAdmin)
