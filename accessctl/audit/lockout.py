"""django-axes' backend, marking the sign-ins its lockout refuses.

When the lockout refuses a sign-in, Django sends ``user_login_failed`` as for a wrong
password; the mark set here, on the request, lets ``signals.py`` record it as
``locked_out`` instead of ``bad_credentials``. (axes' own ``axes_locked_out`` flag is also
set on the failure that reaches the limit, a failure with its own reason, so it cannot
tell the two apart.)
"""

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.exceptions import AxesBackendPermissionDenied
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest

__all__ = ["LOCKED_OUT", "LockoutBackend"]

LOCKED_OUT = "accessctl_refused_by_lockout"


class LockoutBackend(AxesStandaloneBackend):  # type: ignore[misc]  # django-axes has no types
    def authenticate(
        self, request: HttpRequest | None, *args: Any, **kwargs: Any
    ) -> AbstractBaseUser | None:
        try:
            user: AbstractBaseUser | None = super().authenticate(request, *args, **kwargs)
            return user
        except AxesBackendPermissionDenied:
            setattr(request, LOCKED_OUT, True)
            raise
