"""Log records carry the request id and client address of the request they belong to,
the same values the request's audit events hold, so logs and audit join on request id.
An id the client sent is ``client_request_id``, never the request id."""

import logging

from accessctl.middleware import current_context

__all__ = ["RequestContextFilter"]


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = current_context()
        record.request_id = context.request_id
        record.client_address = context.client_address or ""
        record.client_request_id = context.client_request_id
        return True
