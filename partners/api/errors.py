"""The API's own error, kept apart from the exception handler so that authentication
classes can raise it without importing DRF's views (which import them)."""

from typing import Any

from rest_framework import exceptions

__all__ = ["Problem"]


class Problem(exceptions.APIException):
    """Raise from a view: ``Problem(403, "window_closed", "The window closed on ...")``."""

    def __init__(
        self,
        status_code: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail=detail, code=code)
        self.status_code = status_code
        self.problem_code = code
        self.headers = headers
        self.extra = extra
