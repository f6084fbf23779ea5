"""Log records carry the request id and client address of the request they belong to,
the same values the request's audit events hold, so logs and audit join on request id.
An id the client sent is ``client_request_id``, never the request id.

No log line holds a query string. A secret a client put in a URL (``?grant_token=``,
refused by the API) would otherwise be written by whichever logger saw the URL: Django's
``django.request`` record (its message, its ``request`` attribute, a 500's traceback),
runserver's ``django.server`` line, gunicorn's error log echoing a request line it could
not parse. Blanking known parameter names misses other spellings (``%67rant_token=``,
``grantToken=``), so the rule is structural: from a ``?`` to the end of its line, every
line is replaced by ``?[redacted]``, in the text each formatter writes (``redact_queries``).
"""

import logging
import re
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from accessctl.middleware import current_context

__all__ = [
    "JsonFormatter",
    "PlainFormatter",
    "RedactingFilter",
    "RequestContextFilter",
    "redact_queries",
]

_QUERY = re.compile(r"\?[^\n]*")
REDACTED = "?[redacted]"


def redact_queries(text: str) -> str:
    """``text`` with everything from a ``?`` to the end of its line replaced by
    ``?[redacted]`` (a query string, and whatever followed it on the line)."""
    return _QUERY.sub(REDACTED, text)


class RequestContextFilter(logging.Filter):
    """Sets ``request_id``, ``client_address`` and ``client_request_id`` on the record:
    the current request's, or, for a record logged after the request's context ended (the
    ``django.request`` record of a 4xx is), those the middleware put in its ``request``'s
    ``META`` (``accessctl.middleware``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current_context()
        meta = getattr(getattr(record, "request", None), "META", None)
        if not context.request_id and isinstance(meta, dict):
            record.request_id = meta.get("ACCESSCTL_REQUEST_ID", "")
            record.client_address = meta.get("REMOTE_ADDR") or ""
            record.client_request_id = meta.get("ACCESSCTL_CLIENT_REQUEST_ID", "")
            return True
        record.request_id = context.request_id
        record.client_address = context.client_address or ""
        record.client_request_id = context.client_request_id
        return True


class RedactingFilter(logging.Filter):
    """For loggers whose handlers are not ours (gunicorn's): the record's message and
    traceback with their query strings redacted (``redact_queries``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_queries(record.getMessage()), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_queries(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_queries(record.stack_info)
        return True


class PlainFormatter(logging.Formatter):
    """A text line (and traceback) with no query string in it."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_queries(super().format(record))


class JsonFormatter(_JsonFormatter):
    """One JSON object per record, no query string in any of its values (the message,
    ``exc_info``, a ``django.request`` record's ``request``)."""

    def process_log_record(self, log_record: dict[str, Any]) -> dict[str, Any]:
        return {
            key: _redacted(value) for key, value in super().process_log_record(log_record).items()
        }


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_queries(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact_queries(str(value))
