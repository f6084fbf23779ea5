"""The partner API over HTTP, as the CLI (and any client) sees it: httpx, retries, and
refusals (RFC 9457 problems) as ``CliError`` with the CLI's exit status."""

from __future__ import annotations

import email.utils
import functools
import os
import random
import ssl
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from .codes import Code, Exit

__all__ = [
    "EXIT",
    "RETRY_AFTER_MAX",
    "RETRY_AFTER_TOTAL",
    "Api",
    "CliError",
    "Retry",
    "file_path",
    "retry_after",
    "segment",
    "server_failure",
    "tls_context",
    "with_retries",
]

T = TypeVar("T")

# Exit status per code, from the registry (``accessctl_wire.codes``; docs/cli.md's table
# is generated from it). A code this client does not know (a newer server's) is "refused".
EXIT: dict[str, int] = {code.value: int(code.exit) for code in Code}


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS context for verifying servers: httpx's
    (``httpx.create_ssl_context``: certifi's certificate authorities, or those of
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set). Made once: making one reads the
    whole bundle (20-40 ms measured, holding the GIL), and a download's connections each
    have a client; an ``SSLContext`` is safe to share between threads."""
    return httpx.create_ssl_context()


def segment(text: str) -> str:
    """``text`` as one path segment of a URL: every byte but RFC 3986's unreserved
    characters percent-encoded (UTF-8), ``/`` included, so ``#``, ``?``, ``%``, ``+``,
    spaces, quotes and non-ASCII letters reach the server as the name they are."""
    return quote(text, safe="")


def file_path(grant_id: int, path: str) -> str:
    """The API path of a file of a grant's checkpoint. ``path`` is the manifest's (``/``
    separates folders): each segment is percent-encoded, the ``/`` between them is not.

    >>> file_path(3, "dir/a b#1?.bin")
    '/api/v1/grants/3/files/dir/a%20b%231%3F.bin'
    """
    return f"/api/v1/grants/{int(grant_id)}/files/" + "/".join(map(segment, path.split("/")))


class CliError(Exception):
    """One line for the user, and the exit status."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    @property
    def exit_status(self) -> int:
        return EXIT.get(self.code, Exit.REFUSED)


# What the CLI does with a server's ``Retry-After`` (docs/cli.md, *Retries*): it waits as
# told, at most RETRY_AFTER_MAX seconds a time, and keeps asking while the server says
# when to, for at most RETRY_AFTER_TOTAL seconds of such waits in one request (the
# environment's ACCESSCTL_RETRY_TOTAL, in seconds, when set).
RETRY_AFTER_MAX = 60.0
RETRY_AFTER_TOTAL = 600.0
RETRY_AFTER_MIN = 1.0  # a "Retry-After: 0" is not a reason to ask in a tight loop


class Retry(Exception):
    """A failure worth trying again (network, 5xx, an expired presigned URL).

    ``after``: the seconds the server asked to wait (its ``Retry-After``, already capped),
    or ``None``; ``failure``: the server's problem, what is reported when giving up."""

    def __init__(
        self, message: str, *, after: float | None = None, failure: CliError | None = None
    ) -> None:
        super().__init__(message)
        self.after, self.failure = after, failure


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """The seconds a ``Retry-After`` header asks to wait (RFC 9110 section 10.2.3: a
    number of seconds, or an HTTP date), between 0 and ``RETRY_AFTER_MAX``; ``None``
    when there is none or it does not parse.

    >>> retry_after("30"), retry_after("600"), retry_after("soon")
    (30.0, 60.0, None)
    >>> retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now=784111767.0)
    10.0
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(int(value))
    else:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment is None or moment.tzinfo is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), RETRY_AFTER_MAX)


def server_failure(response: httpx.Response) -> Retry:
    """A 5xx answer (its body read) as a ``Retry``: the ``Retry-After`` it asks for, and
    its problem (code and detail), which is what the user is told if it does not pass."""
    failure = None
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        failure = problem(response)
    return Retry(
        f"HTTP {response.status_code} from {response.request.url.path}",
        after=retry_after(response.headers.get("retry-after")),
        failure=failure,
    )


def with_retries(
    attempt: Callable[[], T],
    *,
    tries: int = 6,
    base: float = 0.5,
    cap: float = 15.0,
    told_total: float | None = None,
) -> T:
    """Run ``attempt`` until it succeeds. On ``Retry`` and network errors it waits and
    tries again: as long as the server said (``Retry.after``, at least
    ``RETRY_AFTER_MIN``) while those waits add up to at most ``told_total`` seconds
    (default: ``ACCESSCTL_RETRY_TOTAL`` or ``RETRY_AFTER_TOTAL``),
    else backing off exponentially (with jitter) for up to ``tries`` attempts. Giving up
    raises the server's problem when there was one (its code, so its exit status; the
    message says how long it was tried), else ``CliError('network')``."""
    if told_total is None:
        told_total = _told_total()
    started, attempts, untold, told = time.monotonic(), 0, 0, 0.0
    while True:
        attempts += 1
        try:
            return attempt()
        except (Retry, httpx.TransportError) as exc:
            after = exc.after if isinstance(exc, Retry) else None
            if after is not None:
                wait = max(after, RETRY_AFTER_MIN)
                give_up = told + wait > told_total
                told += wait
            else:
                untold += 1
                wait = min(cap, base * 2 ** (untold - 1)) * (0.5 + random.random() / 2)  # noqa: S311
                give_up = untold >= tries
            if give_up:
                raise _given_up(exc, attempts, time.monotonic() - started) from exc
            time.sleep(wait)


def _told_total() -> float:
    """``ACCESSCTL_RETRY_TOTAL`` (seconds, 0 or more), else ``RETRY_AFTER_TOTAL``."""
    try:
        return max(0.0, float(os.environ["ACCESSCTL_RETRY_TOTAL"]))
    except (KeyError, ValueError):
        return RETRY_AFTER_TOTAL


def _given_up(exc: Exception, attempts: int, seconds: float) -> CliError:
    tried = f"still so after {attempts} attempts over {seconds:.0f} s"
    failure = exc.failure if isinstance(exc, Retry) else None
    if failure is None:
        return CliError("network", f"giving up after {attempts} attempts: {exc}")
    # "<what happened> (<code>, HTTP <status>)", the attempts before the parenthesis.
    what, _, said = failure.message.rpartition(" (")
    if not what:
        return failure
    return CliError(failure.code, f"{what.rstrip('.')}; {tried} ({said}")


def problem(response: httpx.Response) -> CliError:
    """The server's refusal (RFC 9457 problem) as one line."""
    try:
        body = response.json()
        code, detail = str(body.get("code", "")), str(body.get("detail", ""))
    except (ValueError, AttributeError):
        code, detail = "", response.text[:200]
    code = code or ("not_found" if response.status_code == 404 else f"http_{response.status_code}")
    return CliError(
        code, f"{detail or response.reason_phrase} ({code}, HTTP {response.status_code})"
    )


def _json(response: httpx.Response) -> Any:
    """The answer's JSON body; anything else (a proxy's or a captive portal's page) is
    a ``CliError('network')`` naming what came instead."""
    try:
        return response.json()
    except ValueError:
        raise CliError(
            "network",
            f"{response.request.url.path}: the answer (HTTP {response.status_code}, "
            f"{response.headers.get('content-type') or 'no content type'}) is not the API's "
            "JSON: is something between you and the server (a proxy, a login page)?",
        ) from None


class Api:
    def __init__(self, server: str, token: str, *, timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self.client = httpx.Client(
            base_url=self.server,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "accessctl-cli/0.1"},
            timeout=timeout,
            verify=tls_context(),
        )

    def close(self) -> None:
        self.client.close()

    def get(self, path: str, **params: Any) -> Any:
        def attempt() -> Any:
            response = self.client.get(path, params=params or None)
            if response.status_code >= 500:
                raise server_failure(response)
            if response.status_code >= 400:
                raise problem(response)
            return _json(response)

        return with_retries(attempt)

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        response = self.client.post(path, json=body)
        if response.status_code >= 400:
            raise problem(response)
        return response.status_code, _json(response)

    def pages(self, path: str) -> list[Any]:
        """Every item of a cursor-paginated list."""
        items, url = [], path
        while url:
            page = self.get(url)
            items += page["results"]
            url = page.get("next")
            if url and url.startswith(self.server):
                url = url[len(self.server) :]
        return items
