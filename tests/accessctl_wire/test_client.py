"""The partner API client (``accessctl_wire.client``): a file's path percent-encoded
segment by segment; and, against a real HTTP server that answers what a test scripts,
retries, refusals as one line with their exit status, and cursor pagination as a list."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from accessctl_wire.client import (
    Api,
    CliError,
    Retry,
    file_path,
    retry_after,
    segment,
    server_failure,
    with_retries,
)
from accessctl_wire.codes import Code, Exit


@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("model.safetensors", "/api/v1/grants/3/files/model.safetensors"),
        ("a #1?.bin", "/api/v1/grants/3/files/a%20%231%3F.bin"),
        ("50% off+more", "/api/v1/grants/3/files/50%25%20off%2Bmore"),
        ('dir/sub/"q" ü模.bin', "/api/v1/grants/3/files/dir/sub/%22q%22%20%C3%BC%E6%A8%A1.bin"),
        ("a;b=c&d", "/api/v1/grants/3/files/a%3Bb%3Dc%26d"),
        ("~keep_-.", "/api/v1/grants/3/files/~keep_-."),
    ],
)
def test_a_file_path_is_encoded_per_segment_with_the_slashes_kept(path, url):
    assert file_path(3, path) == url


def test_a_segment_encodes_its_slash():
    assert segment("v4/x") == "v4%2Fx"


class Scripted(ThreadingHTTPServer):
    """Answers each request with the next scripted ``(status, content type, body)`` and
    keeps what it was asked (method, path, JSON body)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.answers: list[tuple[int, str, bytes]] = []
        self.asked: list[tuple[str, str, object]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, status: int, body: object, content_type: str = "application/json") -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers.append((status, content_type, raw))


class Handler(BaseHTTPRequestHandler):
    server: Scripted

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.asked.append((self.command, self.path, body))
        status, content_type, raw = self.server.answers.pop(0)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_POST = _reply

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Scripted]:
    scripted = Scripted()
    thread = threading.Thread(target=scripted.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield scripted
    finally:
        scripted.shutdown()
        scripted.server_close()
        thread.join()


@pytest.fixture
def api(server: Scripted) -> Iterator[Api]:
    client = Api(server.url + "/", "acx_token")
    try:
        yield client
    finally:
        client.close()


def test_a_server_error_is_tried_again(server, api):
    server.answer(503, {"detail": "restarting"})
    server.answer(200, {"username": "ana"})
    assert api.get("/api/v1/me") == {"username": "ana"}
    assert [path for _, path, _ in server.asked] == ["/api/v1/me", "/api/v1/me"]


def test_a_refusal_is_one_line_with_its_code_and_exit_status(server, api):
    server.answer(403, {"code": "partner_suspended", "detail": "Your access is suspended."})
    with pytest.raises(CliError) as refused:
        api.get("/api/v1/me")
    assert refused.value.message == "Your access is suspended. (partner_suspended, HTTP 403)"
    assert refused.value.exit_status == Code.PARTNER_SUSPENDED.exit
    assert len(server.asked) == 1  # a refusal is an answer: not tried again


@pytest.mark.parametrize(
    ("status", "content_type", "body", "message"),
    [
        (404, "text/html", b"<h1>Not Found</h1>", "<h1>Not Found</h1> (not_found, HTTP 404)"),
        (413, "text/html", b"", "Request Entity Too Large (http_413, HTTP 413)"),
        (400, "application/json", b"[1, 2]", "[1, 2] (http_400, HTTP 400)"),
    ],
)
def test_a_refusal_that_is_not_a_problem_document_still_says_what_happened(
    server, api, status, content_type, body, message
):
    """A proxy's page, or any body that is not an RFC 9457 problem, still becomes one line
    naming the HTTP status (the CLI's "refused" exit status)."""
    server.answer(status, body, content_type)
    with pytest.raises(CliError) as refused:
        api.get("/api/v1/releases/")
    assert refused.value.message == message
    expected = Code.NOT_FOUND.exit if status == 404 else Exit.REFUSED
    assert refused.value.exit_status == expected


def test_post_sends_json_and_returns_the_status_and_answer(server, api):
    server.answer(202, {"id": 7, "status": "pending"})
    assert api.post("/api/v1/grants/", {"checkpoint": 3}) == (202, {"id": 7, "status": "pending"})
    assert server.asked == [("POST", "/api/v1/grants/", {"checkpoint": 3})]


def test_a_refused_post_is_not_sent_again(server, api):
    server.answer(409, {"code": "grant_exists", "detail": "You hold a grant for it."})
    with pytest.raises(CliError) as refused:
        api.post("/api/v1/grants/", {"checkpoint": 3})
    assert refused.value.code == "grant_exists"
    assert refused.value.exit_status == Code.GRANT_EXISTS.exit
    assert len(server.asked) == 1


def test_pages_follows_the_cursor_to_the_last_page(server, api):
    """The server's ``next`` links are absolute (DRF builds them from the request)."""
    server.answer(200, {"results": [1, 2], "next": f"{server.url}/api/v1/grants/?cursor=b"})
    server.answer(200, {"results": [3], "next": None})
    assert api.pages("/api/v1/grants/") == [1, 2, 3]
    assert [path for _, path, _ in server.asked] == [
        "/api/v1/grants/",
        "/api/v1/grants/?cursor=b",
    ]


@pytest.mark.parametrize("method", ["get", "post"])
def test_an_answer_that_is_not_json_names_what_came_instead(server, api, method):
    """A captive portal or a proxy answering 200 with its own page: one line saying so,
    as the network's failure (nothing the server refused)."""
    server.answer(200, b"<html>Sign in to the hotel wifi</html>", "text/html")
    with pytest.raises(CliError) as failed:
        api.get("/api/v1/me") if method == "get" else api.post("/api/v1/grants/", {})
    assert failed.value.code == "network" and failed.value.exit_status == Code.NETWORK.exit
    path = "/api/v1/me" if method == "get" else "/api/v1/grants/"
    assert failed.value.message.startswith(
        f"{path}: the answer (HTTP 200, text/html) is not the API's JSON"
    )


# Retry-After (RFC 9110 section 10.2.3): what the CLI waits, and what it says on giving up.


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("30", 30.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("600", 60.0),  # capped
        ("Sun, 06 Nov 1994 08:49:37 GMT", 10.0),  # an HTTP date, 10 s after "now"
        ("Sun, 06 Nov 1994 08:49:17 GMT", 0.0),  # in the past: now
        ("Sun, 06 Nov 1994 08:49:37 -0000", None),  # a date with no known zone
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("Sun, 99 Nov 1994 08:49:37 GMT", None),
        ("", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date_capped(value, seconds):
    assert retry_after(value, now=784111767.0) == seconds


def test_a_5xx_that_is_not_a_problem_document_is_retried_without_a_problem():
    request = httpx.Request("GET", "http://127.0.0.1/api/v1/me")
    answer = httpx.Response(503, text="<html>busy</html>", request=request)
    retry = server_failure(answer)
    assert retry.failure is None and retry.after is None
    assert str(retry) == "HTTP 503 from /api/v1/me"


def test_giving_up_says_the_servers_problem_even_without_a_status_in_it():
    # A problem whose message carries no "(code, HTTP status)" is raised as it is.
    plain = CliError("variant_not_ready", "Your copy is still being prepared")
    attempts = []

    def attempt():
        attempts.append(1)
        raise Retry("HTTP 503", after=0.0, failure=plain)

    with pytest.raises(CliError) as given_up:
        with_retries(attempt, told_total=0.5)
    assert given_up.value is plain
    assert attempts == [1]  # the first wait (at least 1 s) is already past the 0.5 s allowed
