"""The session engine (``SESSION_ENGINE = "accessctl.sessions.backend"``)."""

from typing import TYPE_CHECKING, Any, cast

from django.contrib import auth
from django.contrib.sessions.backends.db import SessionStore as DBStore

if TYPE_CHECKING:
    from .models import UserSession

__all__ = ["SessionStore"]


class SessionStore(DBStore):
    """Django's database store, writing ``UserSession.user_id`` from the session's
    ``_auth_user_id`` (set by ``login``; removed by ``logout`` and ``flush``)."""

    @classmethod
    def get_model_class(cls) -> "type[UserSession]":
        from .models import UserSession  # models are ready only after app loading

        return UserSession

    def create_model_instance(self, data: dict[str, Any]) -> "UserSession":
        instance = cast("UserSession", super().create_model_instance(data))
        user_id = data.get(auth.SESSION_KEY)
        try:
            instance.user_id = int(user_id) if user_id is not None else None
        except (TypeError, ValueError):  # a user model with non-integer keys: not ours
            instance.user_id = None
        return instance
