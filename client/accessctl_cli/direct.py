"""GETs to storage (presigned URLs): keep-alive connections per thread, bodies read into
one reused buffer.

The bytes of a download in s3 mode come from storage, not from the API. ``httpx`` parses
every 64 KiB piece of a body in Python (h11), which costs about twice the CPU of reading
straight into a buffer; on a machine where the client shares its cores with the network
stack (and, on loopback, with storage itself) that CPU is throughput. So this reads bodies
with the standard library's ``http.client`` ``readinto`` into a 1 MiB buffer: one system
call fills most of it, and the caller writes it with ``pwrite``.

As ``httpx`` does for the API: ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY`` from the
environment (an ``https`` URL goes through the proxy with ``CONNECT``); certificates from
``SSL_CERT_FILE`` or ``SSL_CERT_DIR``, else certifi's. Network failures raise
``accessctl_wire.client.Retry``.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit
from urllib.request import proxy_bypass_environment as _bypass  # type: ignore[attr-defined]

from accessctl_wire.client import Retry, tls_context

__all__ = ["BUFFER", "DirectAnswer", "Storage"]

# Bytes read per ``readinto``: large enough that per-read Python costs vanish, small
# enough that progress and ``stop`` are seen often.
BUFFER = 1 << 20
# A connection's answer the reader may no longer trust (raised on a request, or a body cut).
_NETWORK = (OSError, http.client.HTTPException)


class DirectAnswer:
    """One answer of storage: ``status_code``, ``headers`` (case-insensitive ``get``),
    whether the request named a ``Range`` (``ranged``), and the body by ``blocks``."""

    def __init__(self, response: http.client.HTTPResponse, ranged: bool, owner: Storage) -> None:
        self.status_code = response.status
        self.headers = response.msg
        self.ranged = ranged
        self._response, self._owner = response, owner

    def blocks(self) -> Iterator[memoryview]:
        """The body, as views of the thread's buffer: each is valid until the next."""
        view = self._owner.view
        try:
            while n := self._response.readinto(view):
                yield view[:n]
        except _NETWORK as exc:
            self._owner.drop()
            raise Retry(f"storage: {exc.__class__.__name__}: {exc}") from exc

    def read(self, limit: int) -> bytes:
        """At most ``limit`` bytes of the body (the rest is not read: the connection is
        dropped when the answer closes)."""
        try:
            return self._response.read(limit)
        except _NETWORK:
            return b""

    def close(self) -> None:
        if not self._response.isclosed():
            self._owner.drop()  # unread body: the connection cannot carry another request

    def __enter__(self) -> DirectAnswer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Storage:
    """One thread's connection to storage (one origin at a time, kept alive)."""

    def __init__(self, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self.buffer = bytearray(BUFFER)
        self.view = memoryview(self.buffer)
        self._key: tuple[str, str, int] | None = None
        self._connection: http.client.HTTPConnection | None = None
        self._proxies = urllib.request.getproxies_environment()
        self._context: ssl.SSLContext | None = None

    def drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection, self._key = None, None

    def _connect(
        self, scheme: str, host: str, port: int
    ) -> tuple[http.client.HTTPConnection, bool]:
        """The kept connection to (``scheme``, ``host``, ``port``), or a new one; and whether
        requests go to a forward proxy by absolute URL (plain ``http`` through a proxy)."""
        proxy = None
        if not _bypass(host, self._proxies):
            proxy = self._proxies.get(scheme)
        key = (scheme, host, port)
        if self._connection is not None and self._key == key:
            return self._connection, bool(proxy) and scheme == "http"
        self.drop()
        connection: http.client.HTTPConnection
        if scheme == "https" and self._context is None:
            self._context = tls_context()
        if proxy:
            where = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            proxy_host, proxy_port = where.hostname or "", where.port or 80
            if scheme == "https":
                connection = http.client.HTTPSConnection(
                    proxy_host, proxy_port, timeout=self.timeout, context=self._context
                )
                connection.set_tunnel(host, port)
            else:
                connection = http.client.HTTPConnection(
                    proxy_host, proxy_port, timeout=self.timeout
                )
        elif scheme == "https":
            connection = http.client.HTTPSConnection(
                host, port, timeout=self.timeout, context=self._context
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self.timeout)
        self._connection, self._key = connection, key
        return connection, bool(proxy) and scheme == "http"

    def get(self, url: str, headers: dict[str, str]) -> DirectAnswer:
        """GET ``url`` with ``headers``; the answer's body is read by the caller (close the
        answer, or use it in ``with``)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise Retry(f"storage: not an http(s) URL: {scheme or '?'}://")
        port = parts.port or (443 if scheme == "https" else 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        for fresh in (False, True):  # a kept connection the other side closed: once more
            connection, absolute = self._connect(scheme, parts.hostname, port)
            reused = connection.sock is not None
            try:
                connection.request("GET", url if absolute else target, headers=headers)
                response = connection.getresponse()
            except _NETWORK as exc:
                self.drop()
                if reused and not fresh:
                    continue
                raise Retry(f"storage: {exc.__class__.__name__}: {exc}") from exc
            return DirectAnswer(response, "Range" in headers, self)
        raise AssertionError("unreachable: the second failure raises")
