"""The shipped gunicorn configuration (deploy/gunicorn.conf.py), run for real with a short
``timeout``: a download that takes many times the timeout arrives whole (sync workers were
killed mid-file), and the timeout still bounds what is stuck: a client that stops reading,
a request stuck in the app."""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from django.db import transaction

from partners.models import Grant
from tests import factories as f
from tests.deploy.test_deploy import DEPLOY, ROOT
from tests.servers import free_port
from tests.workers import database_url, wait_for

TIMEOUT = 3  # GUNICORN_TIMEOUT, seconds
RATE = 1024 * 1024  # what the slow client reads, bytes a second
# Many times what the client reads in TIMEOUT seconds, and more than the kernel buffers
# on the way hold (the server's send buffer, up to 4 MiB here; the client's, kept small):
# gunicorn is still sending long after TIMEOUT.
SIZE = 12 * 1024 * 1024

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@contextmanager
def shipped_gunicorn(artifacts: Path, log: Path, data_dir: Path) -> Iterator[int]:
    """gunicorn -c deploy/gunicorn.conf.py, one worker, GUNICORN_TIMEOUT lowered, in
    local mode (gunicorn sends the files); its error log in ``log``. Yields its port."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "ACCESSCTL_DATA_DIR": str(data_dir),  # this process's embedded secrets
        "ACCESSCTL_ARTIFACT_ROOT": str(artifacts),
        "ACCESSCTL_DOWNLOAD_MODE": "local",
        "DJANGO_ALLOWED_HOSTS": "*",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_TIMEOUT": str(TIMEOUT),
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
            stdout=subprocess.DEVNULL,
            stderr=written,
        )
        try:
            wait_for(lambda: _healthy(port), what="gunicorn", timeout=60)
            yield port
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        time.sleep(0.1)
        return False


@pytest.fixture
def world(settings, _artifact_root):
    content = os.urandom(SIZE)
    partner = f.partner()
    release = f.release()
    checkpoint = f.stored_checkpoint(release, {"shards/big.bin": content})
    f.window(release, partner)
    grant = f.grant(checkpoint, partner, quota_bytes=10 * SIZE)
    secret = f.token(f.partner_user(partner))
    return {"content": content, "grant": grant, "secret": secret, "artifacts": _artifact_root}


def grant_headers(port: int, world) -> dict[str, str]:
    auth = {"Authorization": f"Bearer {world['secret']}"}
    detail = httpx.get(f"http://127.0.0.1:{port}/api/v1/grants/{world['grant'].pk}", headers=auth)
    return {**auth, "X-Grant-Token": detail.json()["token"]}


def slow_download(
    port: int, path: str, headers: dict[str, str], *, pause_after: int | None = None
) -> tuple[int, int, int, str]:
    """GET ``path`` reading at most RATE bytes a second through a small receive buffer
    (and, after ``pause_after`` bytes, nothing for 3 x TIMEOUT seconds). Returns (status,
    Content-Length, bytes received, their SHA-256) once the server closes."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # before connect
        sock.settimeout(60)
        sock.connect(("127.0.0.1", port))
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, head
            head += chunk
        head, _, body = head.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        fields = dict(
            line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if line
        )
        length = int({k.lower(): v for k, v in fields.items()}["content-length"])
        digest, received, started = hashlib.sha256(body), len(body), time.monotonic()
        paused = pause_after is None
        while chunk := sock.recv(64 * 1024):
            digest.update(chunk)
            received += len(chunk)
            if not paused and received >= pause_after:
                time.sleep(3 * TIMEOUT)
                paused, started = True, time.monotonic() - received / RATE
            behind = received / RATE - (time.monotonic() - started)
            if behind > 0:
                time.sleep(behind)
        return status, length, received, digest.hexdigest()


def test_a_download_many_times_longer_than_the_timeout_arrives_whole(tmp_path, settings, world):
    log = tmp_path / "gunicorn.log"
    with shipped_gunicorn(world["artifacts"], log, settings.DATA_DIR) as port:
        headers = grant_headers(port, world)
        path = f"/api/v1/grants/{world['grant'].pk}/files/shards/big.bin"
        status, length, received, sha = slow_download(port, path, headers)
        assert (status, length, received) == (200, SIZE, SIZE)
        assert sha == hashlib.sha256(world["content"]).hexdigest()
    written = log.read_text()
    assert "WORKER TIMEOUT" not in written and "Closed a connection" not in written
    grant = Grant.objects.get(pk=world["grant"].pk)
    assert grant.bytes_used == SIZE


def test_a_client_that_stops_reading_is_cut_and_the_worker_serves_on(tmp_path, settings, world):
    log = tmp_path / "gunicorn.log"
    with shipped_gunicorn(world["artifacts"], log, settings.DATA_DIR) as port:
        headers = grant_headers(port, world)
        path = f"/api/v1/grants/{world['grant'].pk}/files/shards/big.bin"
        status, length, received, _ = slow_download(port, path, headers, pause_after=RATE)
        assert (status, length) == (200, SIZE)
        assert received < SIZE  # the server closed the connection it could not write to
        # The same worker (no timeout killed it) serves the next request.
        again = httpx.get(
            f"http://127.0.0.1:{port}{path}", headers={**headers, "Range": "bytes=0-9"}
        )
        assert again.content == world["content"][:10]
    written = log.read_text()
    assert f"Closed a connection that sent or read nothing for {TIMEOUT}s" in written
    assert "WORKER TIMEOUT" not in written


def test_a_request_stuck_in_the_app_gets_its_worker_replaced(tmp_path, settings, world):
    log = tmp_path / "gunicorn.log"
    with shipped_gunicorn(world["artifacts"], log, settings.DATA_DIR) as port:
        headers = grant_headers(port, world)
        url = f"http://127.0.0.1:{port}/api/v1/grants/{world['grant'].pk}/files/shards/big.bin"
        answered = threading.Event()
        with transaction.atomic():
            # The download waits for the grant's row lock, which this test holds until
            # the request has ended (the worker killed).
            Grant.objects.select_for_update().get(pk=world["grant"].pk)
            outcome: list[object] = []

            def ask() -> None:
                try:
                    outcome.append(httpx.get(url, headers=headers, timeout=60))
                except httpx.HTTPError as exc:
                    outcome.append(exc)
                answered.set()

            threading.Thread(target=ask).start()
            assert answered.wait(timeout=60)
        (ended,) = outcome
        assert isinstance(ended, httpx.RemoteProtocolError | httpx.ReadError), ended
        # A new worker serves the same request.
        wait_for(lambda: _healthy(port), what="a new worker", timeout=60)
        again = httpx.get(url, headers={**headers, "Range": "bytes=0-9"})
        assert again.content == world["content"][:10]
    written = log.read_text()
    assert "A request has been in the app for over 3s" in written
    assert "WORKER TIMEOUT" in written
