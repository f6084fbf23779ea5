"""Staff sign-ins and failed sign-ins are audit events."""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from .events import AuditAction, record
from .models import Outcome


@receiver(user_logged_in)
def _signed_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    record(AuditAction.STAFF_SIGNED_IN, actor=user, target=user)


@receiver(user_login_failed)
def _sign_in_failed(
    sender: Any,
    credentials: dict[str, Any],
    request: Any = None,
    reason: str = "bad_credentials",
    **kwargs: Any,
) -> None:
    # Only the username is kept: ``credentials`` is already scrubbed of the password by
    # Django, and nothing else from it is recorded.
    username = str(credentials.get("username", ""))[:150]
    user = get_user_model().objects.filter(username=username).first()
    record(
        AuditAction.STAFF_SIGN_IN_FAILED,
        actor=None,
        target=user,
        target_type="auth.user",
        target_id=str(user.pk) if user else "",
        outcome=Outcome.FAILURE,
        reason=reason,  # bad_credentials, or the portal form's second_factor_*
        changes={"username": username},
    )
