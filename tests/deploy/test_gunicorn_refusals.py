"""What gunicorn refuses itself (a request line or header it cannot parse) is answered in
problem+json with a registered code, behind the shipped nginx too, never with its HTML
page echoing the request line; and its logs hold no query string (issue #12). The parts
are the real ones: gunicorn with deploy/gunicorn.conf.py, nginx with the shipped site."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from accessctl.codes import Code
from partners.api.edge import problem_body
from tests.accessctl.test_embedded import PRODUCTION
from tests.deploy.test_deploy import DEPLOY, NGINX, ROOT, shipped_nginx
from tests.servers import free_port, raw_https
from tests.workers import database_url, wait_for

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

SECRET = f"SECRET{uuid.uuid4().hex}"
# Every byte gunicorn refuses in a request line, and in a header value.
HIGH_BYTES = [bytes([b]) for b in range(0x80, 0x100)]
CONTROL_BYTES = [bytes([b]) for b in [*range(0x01, 0x20), 0x7F] if b not in (0x09, 0x0A, 0x0D)]


@contextmanager
def shipped_gunicorn(log: Path, data_dir: Path) -> Iterator[int]:
    """gunicorn -c deploy/gunicorn.conf.py, one worker; both its logs (access: stdout,
    error: stderr) in ``log``. Yields its port."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "ACCESSCTL_DATA_DIR": str(data_dir),
        "ACCESSCTL_TRUSTED_PROXIES": "127.0.0.1/32",
        "DJANGO_ALLOWED_HOSTS": "*",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
    }
    with log.open("wb") as written:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "-c",
                str(DEPLOY / "gunicorn.conf.py"),
                "accessctl.wsgi",
            ],
            cwd=ROOT,
            env=env,
            stdout=written,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: _healthy(port), what="gunicorn", timeout=60)
            yield port
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def raw_http(port: int, request: bytes) -> tuple[int, str, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    content_type = next(
        (
            line.split(":", 1)[1].strip()
            for line in lines
            if line.lower().startswith("content-type:")
        ),
        "",
    )
    return int(lines[0].split()[1]), content_type, body


def assert_problem(answer: tuple[int, str, bytes], status: int, code: str, what: object) -> None:
    got_status, content_type, body = answer
    assert (got_status, content_type) == (status, "application/problem+json"), (what, body[:200])
    problem = json.loads(body)
    assert problem == json.loads(json.dumps(problem_body(status, Code(code), problem["detail"])))
    assert SECRET.encode() not in body and b"GET" not in body, what  # no request line echoed


def unparsable_requests() -> Iterator[tuple[object, bytes]]:
    for byte in HIGH_BYTES:
        line = b"GET /api/v1/me?grant_token=" + SECRET.encode() + byte + b" HTTP/1.1\r\n"
        yield byte, line + b"Host: x\r\nConnection: close\r\n\r\n"
    for byte in CONTROL_BYTES:
        line = f"GET /api/v1/me?grant_token={SECRET} HTTP/1.1\r\n".encode()
        yield byte, line + b"Host: x\r\nX-Junk: a" + byte + b"b\r\nConnection: close\r\n\r\n"


def test_gunicorn_refuses_what_it_cannot_parse_in_problem_json_and_logs_no_query(
    tmp_path, settings
):
    log = tmp_path / "gunicorn.log"
    with shipped_gunicorn(log, settings.DATA_DIR) as port:
        for what, request in unparsable_requests():
            assert_problem(raw_http(port, request), 400, "bad_request", what)
        # A parseable request whose query spells the secret otherwise: logged, no query.
        for spelling in ("%67rant_token", "grantToken", "grant_token%5B%5D", "grant_token+"):
            request = f"GET /api/v1/me?{spelling}={SECRET} HTTP/1.1\r\nHost: x\r\n"
            raw_http(port, (request + "Connection: close\r\n\r\n").encode())
    written = log.read_text(errors="replace")
    assert "Invalid request from ip=127.0.0.1" in written  # the real error log
    assert '"GET /api/v1/me HTTP/1.1" 401' in written  # the real access log
    assert SECRET not in written
    assert "grant_token" not in written.lower() and "granttoken" not in written.lower()
    assert re.search(r"\?(?!\[redacted\])", written) is None  # every "?" starts a redaction


def test_behind_the_shipped_nginx_gunicorn_refusals_are_problems(tmp_path, settings):
    log = tmp_path / "gunicorn.log"
    with shipped_gunicorn(log, settings.DATA_DIR) as port:
        conf, _, https_port = shipped_nginx(tmp_path, upstream_port=port, artifacts=tmp_path)
        proxy = subprocess.Popen([NGINX, "-c", str(conf)], stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: _nginx_answers(https_port), what="nginx", timeout=20)
            for what, request in unparsable_requests():
                status, content_type, body = raw_https(https_port, request)
                # nginx refuses some itself (its own problem), the rest gunicorn does.
                assert_problem((status, content_type, body), 400, "bad_request", what)
        finally:
            proxy.send_signal(signal.SIGQUIT)
            proxy.wait(timeout=30)
    assert SECRET not in log.read_text(errors="replace")


def _nginx_answers(port: int) -> bool:
    try:
        return (
            raw_https(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] > 0
        )
    except OSError:
        return False


def test_probes_answer_whatever_the_host_in_production(tmp_path):
    """A Kubernetes httpGet probe and the image's HEALTHCHECK send the pod's address as
    Host, over plain HTTP: /healthz answers them (no DisallowedHost 400, no HTTPS 301),
    with the shipped gunicorn in production mode; every other URL still checks the Host."""
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "DJANGO_", "ACCESSCTL_", "CELERY_", "CACHE_URL"))
    }
    env.update(
        {
            **PRODUCTION,
            "ACCESSCTL_DATA_DIR": str(tmp_path),
            # Production refuses the tests' password; /healthz touches no database (and
            # /readyz says it failed).
            "DATABASE_URL": "postgres://accessctl:Xk29vLq8Rt4mWn7Bp3Zs@127.0.0.1:5432/nothing",
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_WORKERS": "1",
        }
    )
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as written:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "-c",
             str(DEPLOY / "gunicorn.conf.py"), "accessctl.wsgi"],
            cwd=ROOT, env=env, stdout=written, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for(lambda: _healthy(port), what="gunicorn", timeout=60)
            base = f"http://127.0.0.1:{port}"
            for host in ("10.42.0.17:8000", f"127.0.0.1:{port}", "accessctl.lab.example"):
                health = httpx.get(f"{base}/healthz", headers={"Host": host})
                assert (health.status_code, health.json()) == (200, {"status": "ok"}), host
                ready = httpx.get(f"{base}/readyz", headers={"Host": host}, timeout=30)
                assert ready.status_code in (200, 503) and "checks" in ready.json(), host
            other = httpx.get(f"{base}/api/v1/me", headers={"Host": "10.42.0.17:8000"})
            assert other.status_code == 400
            assert other.headers["content-type"] == "application/problem+json"
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def test_gunicorn_believes_the_scheme_only_from_the_trusted_proxies():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "FORWARDED_ALLOW_IPS=*" not in dockerfile.replace(" ", "")
    conf = DEPLOY / "gunicorn.conf.py"
    for env, expected in (
        ({"ACCESSCTL_TRUSTED_PROXIES": "10.42.0.5/32,10.42.0.6/32"}, "10.42.0.5/32,10.42.0.6/32"),
        ({}, "127.0.0.1"),
        ({"GUNICORN_FORWARDED_ALLOW_IPS": "192.0.2.1"}, "192.0.2.1"),
    ):
        run = subprocess.run(
            [sys.executable, "-c", f"import runpy; print(runpy.run_path({str(conf)!r})"
             "['forwarded_allow_ips'])"],
            env={**{k: v for k, v in os.environ.items() if "FORWARDED" not in k
                    and k != "ACCESSCTL_TRUSTED_PROXIES"}, "PYTHONPATH": f"{ROOT}:{ROOT}/client",
                 **env},
            capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
        assert run.stdout.strip() == expected, run.stderr
