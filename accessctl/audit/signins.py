"""Staff sign-ins, successful or not: recorded by one function, whatever signals them.

Django's ``user_logged_in`` / ``user_login_failed`` signals (``signals.py``) call it, and
so does anything that refuses a sign-in on its own (the portal's second factor sends
``user_login_failed`` with its reason, so django-axes counts it too).
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User

from .events import AuditAction, record
from .models import AuditEvent, Outcome

__all__ = ["record_sign_in"]


def record_sign_in(
    *, user: User | None = None, username: str = "", succeeded: bool, reason: str = ""
) -> AuditEvent:
    """``staff.signed_in`` for ``user``, or ``staff.sign_in_failed`` for ``username``
    (the account it names, if any, is the target; nothing else of the attempt is kept)."""
    if succeeded:
        return record(AuditAction.STAFF_SIGNED_IN, actor=user, target=user)
    username = username[:150]
    named = get_user_model().objects.filter(username=username).first()
    return record(
        AuditAction.STAFF_SIGN_IN_FAILED,
        actor=None,
        target=named,
        target_type="auth.user",
        target_id=str(named.pk) if named else "",
        outcome=Outcome.FAILURE,
        reason=reason or "bad_credentials",
        changes={"username": username},
    )
