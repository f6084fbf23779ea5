"""A tiny real HTTP proxy for the CLI tests (standard library only).

As a reverse proxy (``upstream`` given) it forwards every request to ``upstream``; as a
forward proxy (a client's ``HTTP_PROXY``) it forwards to the absolute URL asked for. It
can drop ``Range`` from requests (as some corporate proxies and caches do), delay each
request, or answer file requests itself with a page (``200``, HTML: a proxy's error or
sign-in page). The client's ``Host`` header is kept (presigned URLs sign it); the upstream's
answer is passed on as it came, ``Date`` included, streamed.
"""

import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

__all__ = ["Proxy", "proxy"]

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


@dataclass
class Proxy:
    url: str
    upstream: str | None
    drop_range: bool = False
    delay: float = 0.0
    page: bytes | None = None
    # (method, path, Range header as received) of every request, in order.
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._forward()

    def do_HEAD(self) -> None:
        self._forward()

    def _forward(self) -> None:
        proxy = self.server.proxy
        absolute = self.path.startswith(("http://", "https://"))
        target = urlsplit(self.path if absolute else f"{proxy.upstream}{self.path}")
        path = target.path + (f"?{target.query}" if target.query else "")
        proxy.seen.append((self.command, target.path, self.headers.get("Range")))
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() not in HOP_BY_HOP
            and not (proxy.drop_range and name.lower() in {"range", "if-range"})
        }
        if proxy.delay:
            time.sleep(proxy.delay)
        if proxy.page is not None and "/files/" in target.path:
            self.send_response_only(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(proxy.page)))
            self.end_headers()
            self.wfile.write(proxy.page)
            return
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        try:
            upstream.request(self.command, path, headers=headers)
            answer = upstream.getresponse()
            self.send_response_only(answer.status, answer.reason)
            length = answer.getheader("Content-Length")
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            if length is None and self.command != "HEAD":
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            while block := answer.read(1 << 16):
                self.wfile.write(block)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            upstream.close()


class _Server(ThreadingHTTPServer):
    # server_close() joins the handler threads: none outlives the test.
    daemon_threads = False
    block_on_close = True
    proxy: Proxy


@contextmanager
def proxy(
    upstream: str | None = None,
    *,
    drop_range: bool = False,
    delay: float = 0.0,
    page: bytes | None = None,
) -> Iterator[Proxy]:
    """A proxy on a free loopback port for the ``with`` block."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.proxy = Proxy(
        f"http://127.0.0.1:{server.server_address[1]}", upstream, drop_range, delay, page
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
