"""Staff sign-ins and failed sign-ins are audit events (``signins.record_sign_in``)."""

from typing import Any

from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from .lockout import LOCKED_OUT
from .signins import record_sign_in


@receiver(user_logged_in)
def _signed_in(sender: type[User], request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    record_sign_in(user=user, succeeded=True)


@receiver(user_login_failed)
def _sign_in_failed(
    sender: object,  # Django's module name, or the portal's login form class
    credentials: dict[str, Any],
    request: HttpRequest | None = None,
    reason: str = "bad_credentials",
    **kwargs: Any,
) -> None:
    # Only the username is kept: ``credentials`` is already scrubbed of the password by
    # Django, and nothing else from it is recorded. ``reason``: bad_credentials, or the
    # portal form's second_factor_*; locked_out when django-axes' lockout refused it
    # before any password was checked (``lockout.py``).
    if getattr(request, LOCKED_OUT, False):
        reason = "locked_out"
    record_sign_in(username=str(credentials.get("username", "")), succeeded=False, reason=reason)
