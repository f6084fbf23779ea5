"""gunicorn for accessctl: ``gunicorn -c deploy/gunicorn.conf.py accessctl.wsgi``.

Threaded workers (gthread): each process serves ``GUNICORN_THREADS`` requests at once, and
its main loop heartbeats while they run. So a response that takes minutes (in local mode a
download is streamed by gunicorn's sendfile) is never cut by ``timeout``, however long it
moves; sync workers were killed mid-file after 30 s. What ``timeout`` still bounds
(``Worker`` below, docs/operations.md):

- a worker whose main loop stops: killed and replaced, as before;
- a request stuck in the app (a lock that is never released, a dead connection) for
  ``timeout`` seconds: its worker stops heartbeating and is replaced ``timeout`` later,
  as a sync worker would be (its other requests end too; clients retry, and a download
  re-asked within its lease is not charged again);
- a client that sends or reads nothing for ``timeout`` seconds: its connection is closed,
  so a stalled client never holds a thread.
"""

import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from gunicorn import util
from gunicorn.glogging import Logger
from gunicorn.workers.gthread import ThreadWorker

# Files written by the app are not world-readable (the storages also chmod what they
# write); set here as systemd's UMask= and the image's entrypoint do, so every way of
# starting gunicorn gets it. gunicorn's own "umask" setting covers only its sockets.
umask = 0o027
os.umask(umask)

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
# Requests served at once per worker. Each may hold a PostgreSQL connection (kept for
# DATABASE_CONN_MAX_AGE): a host opens up to workers x threads of them. In local mode each
# running download holds a thread for its whole length.
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
max_requests = 10_000  # recycle workers now and then
max_requests_jitter = 1_000
# gunicorn answers its own limits with an HTML page, so nginx's limits sit below them
# (deploy/nginx/accessctl.conf): a request line or header line nginx passes is at most 8000
# bytes, and its header buffers (1k + 4 x 8000 bytes) hold fewer than 11,100 header lines.
# Whatever nginx lets through, the app answers, in problem+json (too many or too long
# headers: 431 header_too_large).
limit_request_line = 8190  # gunicorn's maximum
limit_request_field_size = 8190
limit_request_fields = 16384
# Who may set X-Forwarded-Proto (the scheme Django sees: HTTPS or not): the trusted
# proxies only, the same list the app believes X-Forwarded-For from (never "*", which lets
# any client that reaches gunicorn say its plain-HTTP request was HTTPS).
forwarded_allow_ips = (
    os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS")
    or os.environ.get("ACCESSCTL_TRUSTED_PROXIES")
    or "127.0.0.1"
)
accesslog = "-"
errorlog = "-"
# Never the query string: ``%(U)s`` is the path alone (not ``%(r)s``, the request line, nor
# ``%(q)s``). A secret put in the URL (``?grant_token=``, in any spelling or encoding) is
# refused by the API and must not be written here either (docs/security.md).
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'
preload_app = True


class RedactingLogger(Logger):
    """gunicorn's logger, writing no query string in its error or access log: a request
    line gunicorn could not parse is echoed in its error log, query and all (a secret in
    ``?grant_token=``, in any spelling). Same rule as the app's logs (accessctl/logs.py)."""

    def setup(self, cfg: Any) -> None:
        from accessctl.logs import RedactingFilter  # the app's rule, without loading Django

        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, RedactingFilter) for f in log.filters):
                log.addFilter(RedactingFilter())


logger_class = RedactingLogger


class Worker(ThreadWorker):
    """gthread, with the bounds a sync worker's ``timeout`` gave (see the module's
    docstring): it stops heartbeating while a request has been in the app for longer than
    ``timeout``, and each connection's socket times out after ``timeout`` seconds without
    progress (``socket.sendfile`` and ``recv`` wait that long at most for the client)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_app: dict[int, float] = {}  # thread -> when its request entered the app
        self.stuck = False

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app, in_app = self.wsgi, self.in_app

        def watched(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            # Only the app's own work: the response's bytes are sent after it returns.
            thread = threading.get_ident()
            in_app[thread] = time.monotonic()
            try:
                return app(environ, start_response)
            finally:
                del in_app[thread]

        self.wsgi = watched

    def notify(self) -> None:
        started = min(list(self.in_app.values()), default=None)
        if started is not None and time.monotonic() - started > self.cfg.timeout:
            # No heartbeat: the arbiter kills this worker after ``timeout`` and starts
            # another, as it would a sync worker stuck in a request.
            if not self.stuck:
                self.log.error(
                    "A request has been in the app for over %ss: this worker stops "
                    "heartbeating, to be replaced",
                    self.cfg.timeout,
                )
            self.stuck = True
            return
        super().notify()

    def handle_request(self, req: Any, conn: Any) -> bool:
        conn.sock.settimeout(self.cfg.timeout)
        try:
            return bool(super().handle_request(req, conn))
        except TimeoutError:
            self.log.warning(
                "Closed a connection that sent or read nothing for %ss", self.cfg.timeout
            )
            return False


worker_class = Worker


def write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own refusals (a request line or header it cannot parse: a raw byte >= 0x80
    in the line, a control character in a header value, ...) in problem+json with a
    registered code, never its HTML page echoing the request line. ``Worker.handle_error``
    (gunicorn/workers/base.py) logs the refusal and calls this, its only caller. These
    requests never reach Django, so no audit event is written for them (docs/security.md);
    gunicorn's error log has the refusal, its query string redacted."""
    from accessctl_wire.codes import Code  # the worker has loaded the app (preload_app)

    code = {414: Code.URI_TOO_LONG, 431: Code.HEADER_TOO_LARGE, 500: Code.SERVER_ERROR}.get(
        status_int, Code.BAD_REQUEST
    )
    status = code.status or 400
    body = json.dumps(
        {
            "type": "https://accessctl.invalid/problems/" + code,
            "title": code.problem_title,
            "status": status,
            "detail": code.detail,
            "code": code,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/problem+json\r\n"
        "Cache-Control: no-store\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


util.write_error = write_error
