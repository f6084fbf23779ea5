"""The CLI's retries honour the server's ``Retry-After`` (docs/cli.md, *Retries*): a real
``accessctl`` process against a small HTTP server that answers 503 ``variant_not_ready``
(what a fingerprinted release's partner gets while its copies are written) with
``Retry-After`` in seconds or as an HTTP date; the waits are measured. Giving up says the
server's detail and code, and exits with the code's status."""

import json
import os
import subprocess
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from accessctl_wire.codes import Exit

from .test_cli import CLI, one_line

DETAIL = "Your copy of model.safetensors is still being prepared; try again in 2 seconds."


class Waiting(ThreadingHTTPServer):
    """Answers 503 variant_not_ready ``refusals`` times (``Retry-After``: ``after()``),
    then the list the CLI asked for; notes when each request came."""

    def __init__(self, refusals: int, after) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.refusals, self.after, self.times = refusals, after, []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Waiting

    def do_GET(self):
        self.server.times.append(time.monotonic())
        if len(self.server.times) <= self.server.refusals:
            body = json.dumps(
                {
                    "type": "about:blank",
                    "title": "Service Unavailable",
                    "status": 503,
                    "code": "variant_not_ready",
                    "detail": DETAIL,
                }
            ).encode()
            self.send_response(503)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Retry-After", self.server.after())
        else:
            body = json.dumps({"results": [], "next": None}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


def run(server: Waiting, tmp_path, **env):
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        return subprocess.run(
            [CLI, "--server", server.url, "--token", "acx_retrytest", "releases"],
            capture_output=True,
            text=True,
            env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path), **env},
            timeout=120,
            check=False,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def gaps(server: Waiting) -> list[float]:
    return [b - a for a, b in zip(server.times, server.times[1:], strict=False)]


def test_a_503_with_retry_after_in_seconds_is_waited_for_as_told(tmp_path):
    server = Waiting(2, lambda: "2")
    done = run(server, tmp_path)
    assert done.returncode == 0, done.stderr
    measured = gaps(server)
    assert len(measured) == 2
    # As told (2 s each, no jitter), not the 0.5 s doubling backoff of a bare 503.
    assert all(2.0 <= gap < 3.0 for gap in measured), measured


def test_a_retry_after_given_as_an_http_date_is_waited_for_until_then(tmp_path):
    server = Waiting(1, lambda: formatdate(time.time() + 3, usegmt=True))
    done = run(server, tmp_path)
    assert done.returncode == 0, done.stderr
    (gap,) = gaps(server)
    assert 2.0 <= gap < 4.0, gap  # the date has whole seconds: 2 to 3 s from the answer


def test_giving_up_says_what_the_server_said_with_its_code_and_exit_status(tmp_path):
    server = Waiting(100, lambda: "1")
    done = run(server, tmp_path, ACCESSCTL_RETRY_TOTAL="3")
    assert done.returncode == Exit.NETWORK
    # Waits of 1 s while they add up to 3 s: four answers, the fourth is the last.
    assert len(server.times) == 4
    assert all(1.0 <= gap < 2.0 for gap in gaps(server)), gaps(server)
    line = one_line(done)
    assert line.startswith(f"error: {DETAIL.rstrip('.')}")
    assert line.endswith("still so after 4 attempts over 3 s (variant_not_ready, HTTP 503)")


@pytest.mark.parametrize("told", ["600", "1000000"])
def test_a_long_retry_after_is_capped_at_60_seconds(told):
    from accessctl_wire.client import RETRY_AFTER_MAX, retry_after

    assert retry_after(told) == RETRY_AFTER_MAX == 60.0
