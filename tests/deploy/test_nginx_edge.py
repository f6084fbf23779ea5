"""What the shipped nginx answers itself under /api/ is problem+json with a registered code
(its own limits, an app server that is down or slow), its limits are the app's, and
neither of its logs writes a query string (issue #12); the Hub-compatible download route
(``/<org>/<repo>/resolve/...``) is held to the same limits. The nginx here is the real one,
running the shipped site configuration (tests/deploy/test_deploy.py's ``shipped_nginx``)."""

import json
import re
import signal
import socket
import subprocess
import uuid

import httpx
from django.conf import settings

from accessctl.codes import Code
from partners.api.edge import problem_body
from tests.deploy.test_deploy import DEPLOY, NGINX, SECURITY_HEADERS, shipped_nginx
from tests.servers import raw_https
from tests.workers import wait_for

SITE = (DEPLOY / "nginx" / "accessctl.conf").read_text()
LIMIT = 2_621_440  # DATA_UPLOAD_MAX_MEMORY_SIZE's default: 2.5 MiB


def assert_nginx_problem(response: httpx.Response, status: int, code: str) -> None:
    """nginx's own answer: problem+json whose code is registered with this status, the
    same members the app's problems have, each security header once."""
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    member = Code(code)
    assert member.status == status
    expected = problem_body(status, member, body["detail"])
    assert body == json.loads(json.dumps(expected)), body
    for header in SECURITY_HEADERS:
        assert len(response.headers.get_list(header)) == 1, header


def test_nginx_takes_the_bodies_the_app_takes():
    size = re.search(r"client_max_body_size (\d+)k;", SITE)
    assert size is not None and int(size[1]) * 1024 == LIMIT
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == LIMIT


def test_nginx_answers_its_own_refusals_as_problems_and_logs_no_query_string(tmp_path):
    # The app server: a socket that takes connections and never answers (504), then none
    # at all (502).
    silent = socket.create_server(("127.0.0.1", 0), backlog=128)
    upstream = silent.getsockname()[1]
    conf, _, https_port = shipped_nginx(
        tmp_path,
        upstream_port=upstream,
        artifacts=tmp_path,
        changes={"proxy_read_timeout 60s;": "proxy_read_timeout 1s;"},
    )
    secret = f"SECRET{uuid.uuid4().hex}"
    proxy = subprocess.Popen([NGINX, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(
            base_url=f"https://127.0.0.1:{https_port}",
            verify=False,  # noqa: S501 (self-signed)
            timeout=20,
        ) as client:
            wait_for(lambda: _answers(client), what="nginx", timeout=20)
            url = f"/api/v1/grants/7/files/shard.bin?grant_token={secret}"
            assert_nginx_problem(client.get(url), 504, "upstream_timeout")
            # Bodies up to the app's limit go through (to the silent upstream); one more
            # byte is nginx's 413.
            assert client.post(url, content=b"x" * LIMIT).status_code == 504
            assert_nginx_problem(
                client.post(url, content=b"x" * (LIMIT + 1)), 413, "body_too_large"
            )
            assert_nginx_problem(client.get(url + "&x=" + "y" * 9000), 414, "uri_too_long")
            assert_nginx_problem(
                client.get(url, headers={"X-Junk": "j" * 9000}), 431, "header_too_large"
            )
            for unreadable in (
                f"GET {url} HTTP/1.1\r\nHost: x\r\nNo colon here\r\n",
                "NOT HTTP AT ALL\r\n",
            ):
                request = (unreadable + "Connection: close\r\n\r\n").encode()
                status, content_type, body = raw_https(https_port, request)
                assert (status, content_type) == (400, "application/problem+json")
                assert json.loads(body)["code"] == "bad_request"
            silent.close()
            assert_nginx_problem(client.get(url), 502, "upstream_unavailable")
            # The Hub-compatible download route answers the same way (and shares the limit).
            hub = "/lab/v4/resolve/main/model.safetensors"
            assert_nginx_problem(client.get(hub), 502, "upstream_unavailable")
            # nginx's per-address limit on /api/ (50 a second, bursts of 200).
            for _ in range(2000):
                answer = client.get(url)
                if answer.status_code == 429:
                    break
                assert_nginx_problem(answer, 502, "upstream_unavailable")
            assert_nginx_problem(answer, 429, "throttled")
            assert answer.headers["retry-after"] == "1"
            # The Hub route shares the emptied bucket: refused at once. The bucket refills
            # one request per 20 ms, so on a slow machine one may slip through between
            # the two calls; a route with a bucket of its own would let 200 through.
            hub_answers = [client.get(hub) for _ in range(3)]
            assert any(a.status_code == 429 for a in hub_answers), hub_answers
            assert_nginx_problem(
                next(a for a in hub_answers if a.status_code == 429), 429, "throttled"
            )
            # Outside /api/, nginx's own pages are left as they are.
            assert "problem" not in client.get("/admin/").headers["content-type"]
    finally:
        silent.close()
        proxy.send_signal(signal.SIGQUIT)
        proxy.wait(timeout=30)
    access = (tmp_path / "access.log").read_text()
    assert "/api/v1/grants/7/files/shard.bin" in access and " 429 " in access  # the real log
    assert "up=504" in access  # the upstream's own status, for the operator
    for log in ("access.log", "accessctl.error.log", "error.log"):
        written = (tmp_path / log).read_text() if (tmp_path / log).exists() else ""
        assert secret not in written, log
        assert "grant_token" not in written, log
        assert "?" not in written, log


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/metrics").status_code == 404
    except httpx.HTTPError:
        return False


def test_every_problem_nginx_answers_is_registered():
    """The static problems of the shipped configuration: each a registered code with its
    status, and the same members the app's problems have."""
    answers = re.findall(r"return (\d{3}) '(\{.*\})\\n';", SITE)
    assert len(answers) >= 7
    for status, text in answers:
        body = json.loads(text)
        member = Code(body["code"])
        assert member.status == int(status) == body["status"]
        assert body == json.loads(json.dumps(problem_body(int(status), member, body["detail"])))
    targets = set(re.findall(r"error_page [\d =]+ (\S+);", SITE))
    defined = set(re.findall(r"location (?:= )?([@/]\S+) \{", SITE))
    assert len(targets) == len(answers) and targets <= defined


def test_the_shipped_logs_write_no_request_line():
    """The access log's format has the path alone; the error log is at crit, below which
    nginx quotes the request line (query string included) of each error about a request."""
    levels = re.findall(r"error_log \S+ (\w+);", SITE)
    servers = SITE.count("server {")
    assert levels == ["crit"] * servers
