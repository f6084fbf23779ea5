"""The app's logs, as written by the configured handlers (settings.LOGGING, JSON as in
production): no line holds a query string, whatever the logger (``django.request``'s
message, its ``request`` attribute, a 500's traceback, runserver's ``django.server``);
and a ``django.request`` record carries the request id and client address of its request
(issue #12)."""

import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.utils.log import configure_logging, log_response

SECRET = "SECRETb1946ac92492d2347c6235b4d2611184"
SPELLINGS = (
    "grant_token",
    "%67rant_token",
    "grantToken",
    "grant_token%5B%5D",
    "grant_token+",
    "GRANT_TOKEN",
    "a=1&token",
)


@pytest.fixture(params=["json", "plain"])
def written(request) -> Iterator[io.StringIO]:
    """Logging configured as settings.LOGGING does, with the given format; what its
    handlers write."""
    config = json.loads(json.dumps(settings.LOGGING))
    config["handlers"]["console"]["formatter"] = request.param
    configure_logging(settings.LOGGING_CONFIG, config)
    buffer = io.StringIO()
    handlers = [h for h in _all_handlers() if isinstance(h, logging.StreamHandler)]
    for handler in handlers:
        handler.setStream(buffer)
    try:
        yield buffer
    finally:
        for handler in handlers:
            handler.setStream(sys.stderr)
        configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)


def _all_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    return [h for lg in loggers if isinstance(lg, logging.Logger) for h in lg.handlers]


def assert_no_query(text: str) -> None:
    assert SECRET not in text
    assert "grant_token" not in text.lower() and "granttoken" not in text.lower()
    assert re.search(r"\?(?!\[redacted\])", text) is None  # every "?" starts a redaction


@pytest.mark.django_db
def test_no_query_string_in_any_log_line(client, rf, written):
    for spelling in SPELLINGS:
        client.get(f"/api/v1/no-such-route?{spelling}={SECRET}")
        client.get(f"/api/v1/grants/1?{spelling}={SECRET}")  # 401: django.request too
    # A 500's record, with a traceback whose message holds the URL.
    request = rf.get(f"/api/v1/me?grant_token={SECRET}")
    try:
        raise RuntimeError(f"failed on {request.get_full_path()}")
    except RuntimeError as error:
        response = type("R", (), {"status_code": 500, "_has_been_logged": False})()
        log_response(
            "Internal Server Error: %s", request.get_full_path(), response=response,
            request=request, exception=error,
        )  # fmt: skip
    # runserver's line (django.server: Django's own handler, replaced by ours).
    logging.getLogger("django.server").info(
        '"%s" %s %s', f"GET /api/v1/me?grant_token={SECRET} HTTP/1.1", "401", "120"
    )
    text = written.getvalue()
    assert text.count("Not Found: /api/v1/no-such-route") == len(SPELLINGS)  # the real log
    assert "failed on /api/v1/me?[redacted]" in text and "Traceback" in text
    assert '"GET /api/v1/me?[redacted]' in text
    assert_no_query(text)


# What a server or worker process has loaded: the WSGI application (every app's modules,
# URLs and views) and the Celery application (every task module).
_LOADED_AS_IN_PRODUCTION = """
import logging
import accessctl.wsgi, accessctl.celery
from django.urls import get_resolver
from accessctl.logs import JsonFormatter, PlainFormatter, RedactingFilter
get_resolver().url_patterns
accessctl.celery.app.loader.import_default_modules()
loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
for logger in loggers:
    for handler in getattr(logger, "handlers", []):
        if isinstance(handler, logging.NullHandler):
            continue
        if not (
            isinstance(handler.formatter, JsonFormatter | PlainFormatter)
            or any(isinstance(f, RedactingFilter) for f in handler.filters)
        ):
            print(logger.name, handler)
"""


def test_every_handler_writes_no_query_string():
    """Whatever logger a record goes to, the handler writing it redacts: one of ours. Read
    in a process that loads what a server and a worker load, and nothing a test imports
    (a test-only library may add a handler of its own, as huggingface_hub's does)."""
    run = subprocess.run(
        [sys.executable, "-c", _LOADED_AS_IN_PRODUCTION],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "accessctl.settings"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout == "", f"handlers that do not redact: {run.stdout}"


@pytest.mark.django_db
def test_a_django_request_record_carries_its_requests_ids(client, written):
    response = client.get(
        "/api/v1/no-such-route", REMOTE_ADDR="192.0.2.7", HTTP_X_REQUEST_ID="client-id-0001"
    )
    lines = [line for line in written.getvalue().splitlines() if "Not Found" in line]
    assert len(lines) == 1
    line = lines[0]
    if line.startswith("{"):
        record = json.loads(line)
        assert record["logger"] == "django.request"
        assert record["request_id"] == response["X-Request-ID"]
        assert record["client_address"] == "192.0.2.7"
        assert record["client_request_id"] == "client-id-0001"
    else:
        assert f"[{response['X-Request-ID']}]" in line
