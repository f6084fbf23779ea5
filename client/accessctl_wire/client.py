"""The partner API over HTTP, as the CLI (and any client) sees it: httpx, retries, and
refusals (RFC 9457 problems) as ``CliError`` with the CLI's exit status."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from .codes import Code, Exit

__all__ = ["EXIT", "Api", "CliError", "file_path", "segment", "with_retries"]

T = TypeVar("T")

# Exit status per code, from the registry (``accessctl_wire.codes``; docs/cli.md's table
# is generated from it). A code this client does not know (a newer server's) is "refused".
EXIT: dict[str, int] = {code.value: int(code.exit) for code in Code}


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


class Retry(Exception):
    """A failure worth trying again (network, 5xx, an expired presigned URL)."""


def with_retries(
    attempt: Callable[[], T], *, tries: int = 6, base: float = 0.5, cap: float = 15.0
) -> T:
    """Run ``attempt`` until it succeeds, backing off exponentially (with jitter) on
    ``Retry`` and network errors; the last failure becomes a ``CliError('network')``."""
    for n in range(tries - 1):
        try:
            return attempt()
        except (Retry, httpx.TransportError):
            time.sleep(min(cap, base * 2**n) * (0.5 + random.random() / 2))  # noqa: S311
    try:
        return attempt()
    except (Retry, httpx.TransportError) as exc:
        raise CliError("network", f"giving up after {tries} attempts: {exc}") from exc


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
        )

    def close(self) -> None:
        self.client.close()

    def get(self, path: str, **params: Any) -> Any:
        def attempt() -> Any:
            response = self.client.get(path, params=params or None)
            if response.status_code >= 500:
                raise Retry(f"HTTP {response.status_code} from {path}")
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
