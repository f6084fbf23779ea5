"""Real Celery worker processes, a private Redis and a real SMTP server for the tests.

Workers run ``celery -A accessctl worker`` against the test database (pytest-django's
``test_...`` database, visible to them because the tests using these are transactional).
"""

import email
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import Message
from pathlib import Path

import redis
from aiosmtpd.controller import Controller
from django.db import connection

from accessctl.celery import app
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]


def database_url() -> str:
    s = connection.settings_dict
    return (
        f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST'] or '127.0.0.1'}:"
        f"{s['PORT'] or 5432}/{s['NAME']}"
    )


class Worker:
    """One ``celery worker`` process; ``kill()`` is SIGKILL, as the kernel's OOM killer."""

    def __init__(self, broker: str, env: dict[str, str], *, concurrency: int = 1) -> None:
        pool = ["--pool", "solo"] if concurrency == 1 else ["--concurrency", str(concurrency)]
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("celery")),
                "-A",
                "accessctl",
                "worker",
                *pool,
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env={
                **os.environ,
                "DATABASE_URL": database_url(),
                "CELERY_BROKER_URL": broker,
                **env,
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


class Beat(Worker):
    """One ``celery beat`` process with the database scheduler (the schedules the
    migrations install), as production runs it."""

    def __init__(self, broker: str, env: dict[str, str], workdir: Path) -> None:
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("celery")),
                "-A",
                "accessctl",
                "beat",
                "--scheduler",
                "django_celery_beat.schedulers:DatabaseScheduler",
                "--pidfile",
                str(workdir / "beat.pid"),
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url(), "CELERY_BROKER_URL": broker, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


@contextmanager
def workers(broker: str, env: dict[str, str]) -> Iterator[Callable[..., Worker]]:
    """Start workers with ``start()``; all are stopped at the end."""
    started: list[Worker] = []

    def start(**kwargs) -> Worker:
        worker = Worker(broker, env, **kwargs)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


@contextmanager
def use_broker(url: str) -> Iterator[None]:
    """Point this process's Celery app (what ``transaction.on_commit`` sends through) at
    ``url``; restored afterwards."""
    old = app.conf.broker_url

    def reset(to: str) -> None:
        app.conf.broker_url = app.conf.broker_write_url = app.conf.broker_read_url = to
        app._pool = None
        app.amqp._producer_pool = None

    reset(url)
    try:
        yield
    finally:
        reset(old)


class RedisServer:
    """A private ``redis-server`` that a test may stop and start again on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "/usr/bin/redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _pings(self.url), what="redis-server to answer")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.2).ping())
    except redis.ConnectionError:
        return False


class Inbox:
    """A real SMTP server (aiosmtpd) on loopback, keeping what it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.controller.port}"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]


def wait_for(condition: Callable[[], object], *, what: str, timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
