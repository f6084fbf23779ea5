from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models

__all__ = ["UserSession"]


class UserSession(AbstractBaseSession):
    """A portal session: Django's session row plus the signed-in user's id (``None``
    before sign-in), indexed so ``UserSession.objects.filter(user_id=...)`` is one query."""

    user_id = models.IntegerField(null=True, db_index=True)

    class Meta(AbstractBaseSession.Meta):
        db_table = "portal_sessions_usersession"

    @classmethod
    def get_session_store_class(cls) -> type:
        from .backend import SessionStore  # the store imports this module

        return SessionStore
