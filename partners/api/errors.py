"""The API's own error, kept apart from the exception handler so that authentication
classes can raise it without importing DRF's views (which import them)."""

from typing import Any

from django.http import Http404
from rest_framework import exceptions

from accessctl.codes import Code, CodeError, registered, status_of, strict_codes
from partners.rules import Failure

__all__ = ["Hidden", "Problem", "failure_problem"]


class Problem(exceptions.APIException):
    """Raise from a view: ``Problem(403, "window_closed", "The window closed on ...")``.

    The code must be registered (``accessctl_wire.codes``) and ``status_code`` must be the
    registry's status for it: the registry decides, the literal at the call site only
    repeats it for the reader (``tests/accessctl_wire/test_codes.py`` checks every literal statically; a
    mismatch raises here in development and tests, and the registry wins in production).
    """

    def __init__(
        self,
        status_code: int,
        code: Code | str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        recorded: bool = False,
        **extra: Any,
    ) -> None:
        member = registered(code)
        decided = status_of(member, default=status_code)
        if decided != status_code and isinstance(member, Code) and strict_codes():
            raise CodeError(
                f"{member.value!r} is answered with {decided}, not {status_code} "
                "(client/accessctl_wire/codes.py)"
            )
        super().__init__(detail=detail, code=member)
        self.status_code = decided
        self.problem_code = member
        self.headers = headers
        self.extra = extra
        # True when the refusal's audit event is already written (the download decision
        # writes its own): the evidence rule then writes none (``partners.api.evidence``).
        self.recorded = recorded
        # (type, id, label) of the object whose rule refused, when the URL does not name
        # it (a Hub route names a repository; the grant decided): the audit event's target.
        self.decided_target: tuple[str, str, str] | None = None


class Hidden(Http404):
    """A 404 that hides a refusal (export control: the release does not exist for this
    partner); ``reason`` is what the audit event records, and ``evidence`` the refused
    action's event when an action refused (``partners.api.evidence`` writes it, once)."""

    def __init__(self, reason: str, *, evidence: Any = None) -> None:
        super().__init__("No such object, or not yours.")
        self.reason = reason
        self.evidence = evidence


def failure_problem(status_code: int, failure: Failure) -> Problem:
    """The problem for a rule's ``Failure``: its code, message and extra members."""
    extra = dict(failure.extra)
    if failure.fields:
        extra["fields"] = dict(failure.fields)
    return Problem(status_code, failure.code, failure.message, **extra)
