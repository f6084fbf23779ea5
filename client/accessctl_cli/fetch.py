"""Downloading a checkpoint: parallel ranged requests, resumable, verified, atomic.

Layout of a download directory::

    DIR/<path>                          verified files (renamed into place when verified)
    DIR/.accessctl/lock                 held (flock) by the run using DIR; holds its pid
    DIR/.accessctl/manifest.json        the signed manifest, as the server sent it
    DIR/.accessctl/jwks.json            the public keys it was verified with
    DIR/.accessctl/partial/<path>.part  bytes received so far
    DIR/.accessctl/partial/<path>.json  {sha256, size, chunk, done: [chunk numbers]}

A chunk is recorded as done only after its bytes are written, and every record is
replaced atomically, so a run stopped at any point (``kill -9`` included) re-fetches at
most the chunks that were in flight. A partial file whose recorded SHA-256 (the file's
ETag) or size differs from the manifest's is thrown away.

Authorizations. The run's first request (one chunk, ranged) goes alone; its answer says
the server's mode:

- the bytes (206/200: local or nginx mode): every chunk is one ranged request to the API,
  which carries its bytes;
- a redirect (s3 mode): a file with no bytes on disk when the run began is authorized
  once, whole (no ``Range``), and its chunks are fetched in parallel with their ``Range``
  from that one presigned URL (a whole-file URL takes any Range; a ranged one only its
  own). The first file's whole-file authorization follows its ranged first chunk; the
  server's lease (``partners.rules.leases``) charges it only the bytes not yet covered.
  A file partly on disk (a resume) is authorized by its missing chunks, each ranged, so
  a resume pays only for missing bytes even once the lease has expired.

  The whole-file authorizations of fresh files are asked for in batches
  (``POST /api/v1/grants/{id}/authorizations``, at most ``BATCH_MAX`` files each, in the
  order the files are fetched) by ``BATCHERS`` threads of their own, ahead of the threads
  that fetch from storage: a checkpoint of many small files costs one API round trip per
  batch, not one per file. A file the batch refused (or a server without the route) is
  authorized by its own GET, which answers the refusal as the CLI always reported it.

Speed. Bytes from storage are read with ``direct.Storage`` (``readinto`` a 1 MiB buffer,
then ``pwrite``: half of httpx's CPU per byte); each file is hashed in order as its
chunks land, through a read-only mapping of the partial file (no copy), by whichever
thread finds the next chunk done, while the others keep downloading.

What the field has seen, handled by kind:

- file names are percent-encoded per path segment (``accessctl_wire.client.file_path``);
- a 0-byte file is asked for without a ``Range`` (there is no byte to name);
- a ``200`` to a ranged request (a proxy that drops ``Range``) carries the whole file: the
  first is kept, checked like any file (length, ETag, SHA-256), and from then on each file
  is asked for whole, once; such an answer is never retried in the hope of a ``206``. The
  other connections wait for the first answer (one round trip), so a proxy like that
  costs one whole-file answer per file, not one per connection;
- storage refusing a presigned URL (400, 401, 403: expired, clock skew): the API is
  asked for a new URL once per chunk; for a file's shared URL one thread asks and the
  others take the new one (the lease charges nothing again). Refused again, the error
  names the likely cause (``storage.explain``);
- one run per directory: a second is refused (``directory_locked``) while the first holds
  ``DIR/.accessctl/lock``; the kernel releases it when the first ends, however it ends.
"""

from __future__ import annotations

import dataclasses
import fcntl
import fnmatch
import hashlib
import json
import mmap
import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx

from accessctl_wire.client import (
    CliError,
    Retry,
    file_path,
    problem,
    server_failure,
    tls_context,
    with_retries,
)

from .direct import Storage
from .storage import Answer, explain
from .verify import STATE, safe_path, sha256_of, write_atomically

if TYPE_CHECKING:  # rich is imported when bars are shown (``Download.run``), not before
    from rich.progress import Progress, TaskID

__all__ = ["Download", "lock_dir"]

REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Storage's answers to a presigned URL that a new URL may cure (signature, time).
REFUSED = frozenset({400, 401, 403})
# Bytes of a refusal's body kept to say why (an S3 error document is a few hundred).
REFUSAL_BODY = 4096
# ``_from_storage``: storage refused the URL; a new one may cure it.
_REFUSED = object()
# Batch authorizations (s3 mode): the server's limit per request, the sizes of the first
# batches (small, so the first files start at once; then larger, ahead of the fetching),
# and how many batches are asked for at a time (one per API worker of a small server).
BATCH_MAX = 256
BATCH_SIZES = (8, 32, 64, 128)
BATCHERS = 2


class _NoBatch(Exception):
    """The server answered a batch with something else than its files' answers."""


@contextmanager
def lock_dir(root: Path) -> Iterator[None]:
    """Hold ``root``'s download lock for the ``with`` block, or refuse at once
    (``directory_locked``) when another process holds it.

    ``flock`` is released by the kernel when the holder's descriptor closes, so a run
    killed with ``kill -9`` leaves no stale lock; the file stays (deleting a lock file
    lets two runs each lock a different file).
    """
    state = root / STATE
    state.mkdir(parents=True, exist_ok=True)
    fd = os.open(state / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise CliError(
                "directory_locked",
                f"{root} is in use by another accessctl download (pid {holder}): wait for it "
                "to finish, or download into another --dir",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


@dataclass
class Part:
    entry: dict[str, Any]
    partial: Path
    state_path: Path
    chunk: int
    done: set[int]
    lock: threading.Lock
    # The file's SHA-256 over its first ``hashed`` chunks, advanced as chunks land in
    # order, so verifying a finished file does not read it again from the start.
    digest: Any = field(default_factory=hashlib.sha256)
    hashed: int = 0
    # The chunk number of the job that fetches the whole file in one answer (a 0-byte
    # file, or an answer that ignored Range); the file's other jobs then do nothing.
    whole_by: int | None = None
    # No byte of the file was on disk when the run began: in redirect mode the file is
    # authorized once, whole, and its chunks share that presigned URL (``url``, the
    # API's answer that gave it, and how many URLs were given: ``generation``).
    fresh: bool = False
    url: str | None = None
    authorized: Answer | None = None
    generation: int = 0
    url_lock: threading.Lock = field(default_factory=threading.Lock)
    # Set when a batch authorization answered for this file (with ``url`` set, or not:
    # then its own GET asks); ``batched`` says a batch took it.
    batch_done: threading.Event = field(default_factory=threading.Event)
    batched: bool = False
    # Held by the one thread hashing the file's finished chunks (never ``lock``: the
    # others keep writing while it hashes).
    hash_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def chunks(self) -> int:
        return max(1, -(-self.entry["size"] // self.chunk))

    def span(self, number: int) -> tuple[int, int]:
        """Chunk ``number``'s first and last byte (inclusive)."""
        start = number * self.chunk
        return start, min(self.entry["size"], start + self.chunk) - 1

    def done_bytes(self) -> int:
        return sum(self.span(n)[1] - self.span(n)[0] + 1 for n in self.done)

    def record(self, numbers: Iterable[int]) -> bool:
        """Mark chunks done; True for the one call that completes the file."""
        with self.lock:
            complete_before = len(self.done) == self.chunks
            self.done.update(numbers)
            complete = not complete_before and len(self.done) == self.chunks
            if not complete:
                # A complete file is verified and renamed next, its record deleted: not
                # written (killed before the rename, the run after fetches its last
                # chunks again, inside their lease: nothing is charged twice).
                write_atomically(
                    self.state_path,
                    json.dumps(
                        {
                            "sha256": self.entry["sha256"],
                            "size": self.entry["size"],
                            "chunk": self.chunk,
                            "done": sorted(self.done),
                        }
                    ),
                )
        if not complete:
            self.advance_hash()
        return complete

    def _next_done(self) -> bool:
        with self.lock:
            return self.hashed in self.done

    def _hash_run(self) -> None:
        """Hash the contiguous run of finished chunks, through a read-only mapping of the
        partial file (the page cache: no copy); the caller holds ``hash_lock``."""
        if not self._next_done():
            return
        if self.entry["size"] == 0:
            self.hashed = self.chunks
            return
        with (
            self.partial.open("rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
        ):
            view = memoryview(mapped)
            try:
                while self._next_done():
                    start, end = self.span(self.hashed)
                    for offset in range(start, end + 1, 8 << 20):
                        self.digest.update(view[offset : min(end + 1, offset + (8 << 20))])
                    self.hashed += 1
            finally:
                view.release()

    def advance_hash(self) -> None:
        """Hash what can be hashed now, unless another thread is at it: that thread looks
        again after letting go, so a chunk recorded meanwhile is not left behind."""
        while self._next_done() and self.hash_lock.acquire(blocking=False):
            try:
                self._hash_run()
            finally:
                self.hash_lock.release()

    def sha256(self) -> str:
        with self.hash_lock:
            self._hash_run()
        if self.hashed == self.chunks:
            return str(self.digest.hexdigest())
        return sha256_of(self.partial)


class Download:
    """Fetch the selected files of one checkpoint under one grant."""

    def __init__(
        self,
        *,
        server: str,
        token: str,
        grant: dict[str, Any],
        signed: dict[str, Any],
        jwks_text: str,
        root: Path,
        include: Iterable[str] = (),
        connections: int = 8,
        chunk: int = 16 << 20,
        progress: bool = True,
    ) -> None:
        self.server, self.token, self.grant = server.rstrip("/"), token, grant
        self.signed, self.jwks_text, self.root = signed, jwks_text, root
        patterns = list(include)
        self.files = [
            e
            for e in signed["manifest"]["files"]
            if not patterns or any(fnmatch.fnmatch(e["path"], p) for p in patterns)
        ]
        self.connections, self.chunk, self.show = max(1, connections), max(1, chunk), progress
        self.local = threading.local()
        self.stop = threading.Event()
        # The first request goes alone; the others wait until its answer says whether
        # Range is honoured (``whole_files``), or it failed.
        self.first = threading.Lock()
        self.first_sent = False
        self.answered = threading.Event()
        self.whole_files = False
        # Whether the API answers with redirects to presigned URLs (s3 mode): unknown
        # until the first answer.
        self.redirects: bool | None = None
        self.progress: Progress | None = None
        self.overall = cast("TaskID", 0)
        self.bars: dict[str, TaskID] = {}
        # Batch authorizations of fresh files (s3 mode): the files not yet in a batch, in
        # the order they are fetched; started once, when the first redirect is seen.
        self.batch_lock = threading.Lock()
        self.unbatched: list[Part] = []
        self.batches_started = False
        self.batches_given = 0
        self.batchers: list[threading.Thread] = []

    # -- HTTP ------------------------------------------------------------------------

    def _clients(self) -> tuple[httpx.Client, Storage]:
        if not hasattr(self.local, "api"):
            self.local.api = httpx.Client(
                base_url=self.server,
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "X-Grant-Token": self.grant["token"],
                    "User-Agent": "accessctl-cli/0.1",
                },
                timeout=httpx.Timeout(30.0, read=120.0),
                verify=tls_context(),  # one per process, not one per connection
            )
            self.local.storage = Storage()
        return self.local.api, self.local.storage

    def _wait_for_first_answer(self) -> None:
        with self.first:
            if not self.first_sent:
                self.first_sent = True
                return
        self.answered.wait()

    def _fetch(self, part: Part, number: int) -> None:
        try:
            self._wait_for_first_answer()
            got = with_retries(lambda: self._attempt(part, number))
            if got is None or self.stop.is_set():
                return
            if part.record(range(part.chunks) if got == "whole" else (number,)):
                # The file's last chunk: verify and rename it here, while other files
                # still download (hashing releases the GIL, so it overlaps the network).
                self._finish(part)
        except BaseException:
            self.stop.set()  # before the others are let go: they must not start
            raise
        finally:
            self.answered.set()

    def _attempt(self, part: Part, number: int) -> str | None:
        """Fetch chunk ``number`` of ``part`` (or the whole file, when it must be): "chunk"
        or "whole" for what was written, None when there is nothing to do."""
        if self.stop.is_set():
            return None
        with part.lock:
            if part.whole_by not in (None, number):
                return None  # another job fetches the whole file
            if part.entry["size"] == 0 or self.whole_files:
                part.whole_by = number
            whole = part.whole_by == number
        start, end = (0, part.entry["size"] - 1) if whole else part.span(number)
        headers = {} if whole else {"Range": f"bytes={start}-{end}"}
        if self.redirects and part.fresh:
            return self._from_shared_url(part, number, headers, start, end)
        api, _ = self._clients()
        url = file_path(self.grant["id"], part.entry["path"])
        for ask_again in (True, False):  # storage refusing a URL: one new authorization
            with api.stream("GET", url, headers=headers) as response:
                if response.status_code >= 500:
                    response.read()
                    raise server_failure(response)
                if response.status_code >= 400:
                    response.read()
                    raise problem(response)
                if response.status_code not in REDIRECTS:
                    # The API sends the bytes itself (local or nginx mode).
                    self.redirects = False
                    encoded = "content-encoding" in response.headers
                    return self._write(
                        part,
                        number,
                        status=response.status_code,
                        headers=response.headers,
                        ranged="range" in response.request.headers,
                        # Raw pieces as they arrive: httpx's re-chunking into large
                        # blocks halves the throughput.
                        blocks=response.iter_bytes() if encoded else response.iter_raw(),
                        start=start,
                        end=end,
                        check_etag=True,
                    )
                # Known before the other connections are let go (``_write``).
                self.redirects = True
                response.read()  # the (empty) body: the connection stays open for the next
                location = response.headers["location"]
                authorized = Answer.of(response)
            got = self._from_storage(
                part, number, location, authorized, headers, start, end, last=not ask_again
            )
            if got is not _REFUSED:
                return got  # type: ignore[return-value]
            if self.stop.is_set():
                return None
        raise AssertionError("unreachable: the second refusal raises")

    def _from_shared_url(
        self, part: Part, number: int, headers: dict[str, str], start: int, end: int
    ) -> str | None:
        """Chunk ``number`` from the file's one whole-file presigned URL; refused, the URL
        is replaced once (by one thread; the others take the new one)."""
        location, authorized, generation = self._shared_url(part, stale=None)
        for ask_again in (True, False):
            got = self._from_storage(
                part, number, location, authorized, headers, start, end, last=not ask_again
            )
            if got is not _REFUSED:
                return got  # type: ignore[return-value]
            if self.stop.is_set():
                return None
            location, authorized, generation = self._shared_url(part, stale=generation)
        raise AssertionError("unreachable: the second refusal raises")

    def _shared_url(self, part: Part, *, stale: int | None) -> tuple[str, Answer, int]:
        """The file's whole-file presigned URL, the API's answer that gave it, and its
        generation. The API is asked (without Range: the whole file) when there is none
        yet or the one there is ``stale`` (storage refused it); the lease
        (``partners.rules.leases``) charges only bytes not authorized before, so asking
        after the run's first (ranged) request, or again for a refused URL, costs only
        what was not paid for."""
        if stale is None and part.url is None:
            self._wait_for_batch(part)
        with part.url_lock:
            if part.url is None or part.generation == stale:
                api, _ = self._clients()
                path = file_path(self.grant["id"], part.entry["path"])
                with api.stream("GET", path) as response:
                    if response.status_code >= 500:
                        response.read()
                        raise server_failure(response)
                    if response.status_code >= 400:
                        response.read()
                        raise problem(response)
                    if response.status_code not in REDIRECTS:
                        # The server stopped redirecting (its mode changed): ask for
                        # chunks again, each from the API.
                        self.redirects = False
                        raise Retry(f"HTTP {response.status_code} instead of a redirect")
                    response.read()  # keeps the connection open
                    part.url = response.headers["location"]
                    part.authorized = Answer.of(response)
                    part.generation += 1
            if part.url is None or part.authorized is None:  # pragma: no cover
                raise AssertionError("unreachable: set above")
            return part.url, part.authorized, part.generation

    # -- Batch authorizations (s3 mode) -----------------------------------------------

    def _wait_for_batch(self, part: Part) -> None:
        """Start the batch threads (once), then wait until a batch answered for ``part``
        (if one took it)."""
        with self.batch_lock:
            if not self.batches_started:
                self.batches_started = True
                self.batchers = [
                    threading.Thread(target=self._batches, name=f"accessctl-batch-{n}", daemon=True)
                    for n in range(BATCHERS)
                ]
                for thread in self.batchers:
                    thread.start()
        while part.batched or part in self.unbatched:
            if part.batch_done.wait(0.2) or self.stop.is_set():
                return

    def _next_batch(self) -> list[Part]:
        with self.batch_lock:
            size = BATCH_SIZES[min(self.batches_given, len(BATCH_SIZES) - 1)]
            batch, self.unbatched = self.unbatched[:size], self.unbatched[size:]
            self.batches_given += 1
            for part in batch:
                part.batched = True
            return batch

    def _batches(self) -> None:
        """One batch thread: authorize the next files, a batch at a time, until none is
        left or the run stops. Whatever fails, every file it took is released (its own
        GET then asks, and reports a refusal as it always did)."""
        api: httpx.Client | None = None
        try:
            while not self.stop.is_set() and (batch := self._next_batch()):
                try:
                    if api is None:
                        api, _ = self._clients()
                    self._authorize_batch(api, batch)
                except Exception:
                    with self.batch_lock:  # the rest is asked for file by file
                        self.unbatched = []
                finally:
                    for part in batch:
                        part.batch_done.set()
        finally:
            if api is not None:
                api.close()

    def _authorize_batch(self, api: httpx.Client, batch: list[Part]) -> None:
        path = f"/api/v1/grants/{int(self.grant['id'])}/authorizations"
        body = {"files": [{"path": p.entry["path"]} for p in batch]}
        response = with_retries(lambda: self._post_batch(api, path, body))
        authorized = Answer.of(response)
        by_path = {p.entry["path"]: p for p in batch}
        for answer in response.json()["files"]:
            part = by_path.get(answer.get("path"))
            if part is None or answer.get("status") != 200 or not answer.get("url"):
                continue  # refused: the file's own GET asks, and reports it
            if answer.get("sha256") != part.entry["sha256"]:
                continue  # not the manifest's file: its own GET checks and reports it
            with part.url_lock:
                if part.url is None:
                    part.url, part.authorized = answer["url"], authorized
                    part.generation += 1

    def _post_batch(self, api: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
        response = api.post(path, json=body)
        if response.status_code >= 500 or response.status_code == 429:
            raise server_failure(response)  # waits as its Retry-After says
        if response.status_code != 200:
            # A server without batches (404, 405) or a refusal of the grant: each file's
            # own GET asks, and reports the refusal as it always did.
            raise _NoBatch(response.status_code)
        return response

    def _from_storage(
        self,
        part: Part,
        number: int,
        location: str,
        authorized: Answer,
        headers: dict[str, str],
        start: int,
        end: int,
        *,
        last: bool,
    ) -> object:
        """GET ``location`` (a presigned URL the API gave) and write what it answers:
        "chunk", "whole" or None as ``_attempt``; ``_REFUSED`` when storage refused the
        URL and a new one may be asked for (not ``last``); refused on the ``last`` try,
        ``storage_refused`` naming the likely cause."""
        _, storage = self._clients()
        with storage.get(location, headers) as direct:
            if direct.status_code in REFUSED:
                refused = Answer(
                    direct.status_code, direct.headers.get("date"), time.time(), time.monotonic()
                )
                body = direct.read(REFUSAL_BODY).decode(errors="replace")
                if not last:
                    return _REFUSED
                refused = dataclasses.replace(refused, body=body)
                raise CliError(
                    "storage_refused",
                    f"storage refused the presigned URL for {part.entry['path']}, also "
                    f"after a new authorization: {explain(location, authorized, refused)} "
                    f"(storage_refused, HTTP {refused.status} from storage)",
                )
            if direct.status_code in (408, 429) or direct.status_code >= 500:
                raise Retry(f"storage answered {direct.status_code}")
            if direct.status_code == 404:
                raise CliError(
                    "file_not_found",
                    f"{part.entry['path']}: storage holds no such object (HTTP 404 from "
                    "storage): tell the lab",
                )
            # Storage's ETag is its own (S3: an MD5); the digest is checked at the end.
            return self._write(
                part,
                number,
                status=direct.status_code,
                headers=direct.headers,
                ranged=direct.ranged,
                blocks=direct.blocks(),
                start=start,
                end=end,
                check_etag=False,
            )

    def _write(
        self,
        part: Part,
        number: int,
        *,
        status: int,
        headers: Any,
        ranged: bool,
        blocks: Iterable[bytes | memoryview],
        start: int,
        end: int,
        check_etag: bool,
    ) -> str | None:
        """Check an answer (``status``, ``headers``: anything with a case-insensitive
        ``get``; ``ranged``: the request named a Range) and write its body's ``blocks``
        into the partial file at ``start``: "chunk" or "whole" for what was written."""
        size, path = part.entry["size"], part.entry["path"]
        if status not in (200, 206):
            self.answered.set()
            raise Retry(f"unexpected HTTP {status}")
        if status == 200 and ranged:
            # Something on the way ignored Range: this is the whole file. From now on
            # files are asked for whole; set before the other connections are let go.
            self.whole_files = True
            with part.lock:
                if part.whole_by not in (None, number):
                    return None  # another connection is writing the whole file
                part.whole_by = number
            start, end = 0, size - 1
        whole = (start, end) == (0, size - 1)
        content_range = headers.get("content-range")
        if (
            status == 206
            and content_range
            and not content_range.startswith(f"bytes {start}-{end}/")
        ):
            raise CliError(
                "verification_failed",
                f"{path}: asked for bytes {start}-{end}, the answer is {content_range!r}: "
                "something between you and the server (a proxy?) changes the answers",
            )
        # Only an encoded body (never asked for by accessctl) is decoded, and its length
        # is the encoded one.
        encoded = headers.get("content-encoding") is not None
        length = headers.get("content-length") or ""
        if not encoded and length.isdigit() and int(length) != end - start + 1:
            raise CliError(
                "verification_failed",
                f"{path}: asked for {end - start + 1} bytes, the answer (HTTP {status}) "
                f"announces {length}: something between you and the server (a proxy?) "
                "changes the answers",
            )
        etag = (headers.get("etag") or "").strip('"')
        if check_etag and etag and etag != part.entry["sha256"]:
            raise CliError(
                "verification_failed",
                f"{path}: the server sends other bytes (ETag) than the manifest names",
            )
        # The answer is one to use: let the other connections go (a refusal above lets
        # them go only after ``stop`` is set, so none of them asks).
        self.answered.set()
        if whole:
            self._restart_bar(part)
        with part.lock:
            if part.whole_by not in (None, number):
                return None  # a whole-file answer for this file is being written
            fd = os.open(part.partial, os.O_WRONLY)
        offset = start
        try:
            for block in blocks:
                if self.stop.is_set():
                    return None
                if offset + len(block) > end + 1:
                    raise CliError(
                        "verification_failed",
                        f"{path}: the answer (HTTP {status}) is longer than the "
                        f"{end - start + 1} bytes asked for",
                    )
                os.pwrite(fd, block, offset)
                offset += len(block)
                self._advance(part, len(block))
        finally:
            os.close(fd)
        if offset != end + 1:
            raise Retry(f"short read: {offset - start} of {end - start + 1} bytes")
        return "whole" if whole else "chunk"

    # -- Progress --------------------------------------------------------------------

    def _advance(self, part: Part, n: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.bars[part.entry["path"]], n)
            self.progress.advance(self.overall, n)

    def _restart_bar(self, part: Part) -> None:
        """The whole file comes again in one answer: its bar starts from zero."""
        if self.progress is not None:
            bar = self.bars[part.entry["path"]]
            done = next(t.completed for t in self.progress.tasks if t.id == bar)
            self.progress.advance(self.overall, -done)
            self.progress.reset(bar, total=part.entry["size"])

    # -- Files -----------------------------------------------------------------------

    def _prepare(self, entry: dict[str, Any]) -> Part | None:
        """The file's partial state, or None if the verified file is already there."""
        final = safe_path(self.root, entry["path"])
        partial = safe_path(self.root / STATE / "partial", entry["path"] + ".part")
        state_path = partial.with_name(partial.name[: -len(".part")] + ".json")
        if (
            final.exists()
            and final.stat().st_size == entry["size"]
            and sha256_of(final) == entry["sha256"]
        ):
            # A run stopped between renaming the file and deleting its record leaves these.
            partial.unlink(missing_ok=True)
            state_path.unlink(missing_ok=True)
            return None
        partial.parent.mkdir(parents=True, exist_ok=True)
        done: set[int] = set()
        chunk = self.chunk
        if state_path.exists() and partial.exists():
            state = json.loads(state_path.read_text())
            if (state.get("sha256"), state.get("size")) == (entry["sha256"], entry["size"]):
                done, chunk = set(state["done"]), int(state["chunk"])
        if not done:
            with partial.open("wb") as handle:
                handle.truncate(entry["size"])
        return Part(entry, partial, state_path, chunk, done, threading.Lock(), fresh=not done)

    def _finish(self, part: Part) -> None:
        if part.sha256() != part.entry["sha256"]:
            part.partial.unlink()
            part.state_path.unlink(missing_ok=True)
            raise CliError(
                "verification_failed",
                f"{part.entry['path']}: SHA-256 differs from the signed manifest; discarded, "
                "run the download again",
            )
        final = safe_path(self.root, part.entry["path"])
        final.parent.mkdir(parents=True, exist_ok=True)
        with part.lock:  # a late chunk of a whole-file answer opens the partial under it
            os.replace(part.partial, final)
        part.state_path.unlink(missing_ok=True)

    def run(self) -> list[str]:
        """Download; returns the paths fetched (files already verified are skipped).
        The caller holds the directory's lock (``lock_dir``)."""
        if not self.files:
            raise CliError("usage", "no file of the checkpoint matches --include")
        state = self.root / STATE
        state.mkdir(parents=True, exist_ok=True)
        write_atomically(state / "manifest.json", json.dumps(self.signed, indent=2))
        write_atomically(state / "jwks.json", self.jwks_text)
        parts = [p for p in (self._prepare(e) for e in self.files) if p is not None]
        if self.show:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
        self.progress = (
            Progress(
                TextColumn("{task.description}", markup=False),  # file names, as they are
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                transient=False,
            )
            if self.show
            else None
        )
        with self.progress or _Null():
            if self.progress is not None:
                total = sum(p.entry["size"] for p in parts)
                self.overall = self.progress.add_task("total", total=total)
                for p in parts:
                    self.bars[p.entry["path"]] = self.progress.add_task(
                        p.entry["path"], total=p.entry["size"], completed=p.done_bytes()
                    )
                    self.progress.advance(self.overall, p.done_bytes())
            jobs = [(p, n) for p in parts for n in range(p.chunks) if n not in p.done]
            self.unbatched = [p for p in parts if p.fresh]
            try:
                with ThreadPoolExecutor(self.connections) as pool:
                    futures = [pool.submit(self._fetch, p, n) for p, n in jobs]
                    finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
                    failure = next((f.exception() for f in finished if f.exception()), None)
                    if failure is not None:
                        self.stop.set()
                        for future in futures:
                            future.cancel()
                        wait(futures)
                        raise failure
            finally:
                with self.batch_lock:
                    self.unbatched = []  # nothing is left to ask for
                for thread in self.batchers:
                    thread.join()
        for p in parts:
            if len(p.done) == p.chunks and p.partial.exists():  # complete before this run
                self._finish(p)
        missing = [p.entry["path"] for p in parts if len(p.done) != p.chunks]
        if missing:  # never claim a checkpoint verified that is not all there
            raise CliError(
                "network",
                f"{len(missing)} files are incomplete ({missing[0]}, ...): run the same "
                "command again to resume",
            )
        return [p.entry["path"] for p in parts]


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
