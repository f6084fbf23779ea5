"""Downloading a checkpoint: parallel ranged requests, resumable, verified, atomic.

Layout of a download directory::

    DIR/<path>                          verified files (renamed into place when verified)
    DIR/.accessctl/manifest.json        the signed manifest, as the server sent it
    DIR/.accessctl/jwks.json            the public keys it was verified with
    DIR/.accessctl/partial/<path>.part  bytes received so far
    DIR/.accessctl/partial/<path>.json  {sha256, size, chunk, done: [chunk numbers]}

A chunk is recorded as done only after its bytes are written, so an interrupted download
re-fetches at most the chunks that were in flight. A partial file whose recorded SHA-256
(the file's ETag) or size differs from the manifest's is thrown away.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import threading
from collections.abc import Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from accessctl_wire import PublicKeys, canonical_json, key_for, parse_public_keys, unb64
from accessctl_wire.client import CliError, Retry, problem, with_retries

__all__ = ["Download", "load_keys", "sha256_of", "verify_dir", "verify_manifest"]

STATE = ".accessctl"


def load_keys(text: str) -> PublicKeys:
    """Ed25519 public keys by key id from a JWKS document, or one PEM key (id None)."""
    try:
        return parse_public_keys(text)
    except ValueError as exc:
        raise CliError("usage", f"cannot use that public key: {exc}") from exc


def verify_manifest(signed: dict[str, Any], keys: PublicKeys, source: str) -> None:
    from cryptography.exceptions import InvalidSignature

    signature = signed.get("signature") or {}
    key = key_for(keys, signature.get("kid"))
    if key is None:
        raise CliError(
            "verification_failed",
            f"the manifest is signed by key {signature.get('kid')!r}, which {source} does not hold",
        )
    try:
        key.verify(unb64(signature["signature"]), canonical_json(signed["manifest"]))
    except (InvalidSignature, KeyError, ValueError) as exc:
        raise CliError(
            "verification_failed",
            f"the manifest's signature does not verify against {source}: refusing it",
        ) from exc


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def safe_path(root: Path, relative: str) -> Path:
    """``root/relative``, refusing absolute paths and ``..`` from a manifest."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts:
        raise CliError("verification_failed", f"the manifest names an unsafe path {relative!r}")
    return root.joinpath(*parts)


def verify_dir(root: Path, keys: PublicKeys | None) -> list[str]:
    """Problems with ``root``'s files against its saved signed manifest ([] when fine)."""
    saved = root / STATE / "manifest.json"
    if not saved.exists():
        raise CliError("usage", f"{root} holds no downloaded checkpoint ({saved} is missing)")
    signed = json.loads(saved.read_text())
    if keys is None:
        keys = load_keys((root / STATE / "jwks.json").read_text())
        source = "the keys saved at download time"
    else:
        source = "the given public key"
    verify_manifest(signed, keys, source)
    problems = []
    for entry in signed["manifest"]["files"]:
        path = safe_path(root, entry["path"])
        if not path.exists():
            problems.append(f"{entry['path']}: missing")
        elif path.stat().st_size != entry["size"]:
            problems.append(
                f"{entry['path']}: size {path.stat().st_size}, expected {entry['size']}"
            )
        elif sha256_of(path) != entry["sha256"]:
            problems.append(
                f"{entry['path']}: SHA-256 differs from the signed manifest (corrupted)"
            )
    return problems


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

    @property
    def chunks(self) -> int:
        return max(1, -(-self.entry["size"] // self.chunk))

    def record(self, number: int) -> bool:
        """Mark chunk ``number`` done; True for the call that completes the file."""
        with self.lock:
            self.done.add(number)
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(
                json.dumps(
                    {
                        "sha256": self.entry["sha256"],
                        "size": self.entry["size"],
                        "chunk": self.chunk,
                        "done": sorted(self.done),
                    }
                )
            )
            os.replace(tmp, self.state_path)
            self._advance_hash()
            return len(self.done) == self.chunks

    def _advance_hash(self) -> None:
        """Hash the contiguous run of finished chunks (from the page cache)."""
        if self.hashed not in self.done:
            return
        fd = os.open(self.partial, os.O_RDONLY)
        try:
            while self.hashed in self.done:
                start = self.hashed * self.chunk
                end = min(self.entry["size"], start + self.chunk)
                for offset in range(start, end, 8 << 20):
                    self.digest.update(os.pread(fd, min(8 << 20, end - offset), offset))
                self.hashed += 1
        finally:
            os.close(fd)

    def sha256(self) -> str:
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

    # -- HTTP ------------------------------------------------------------------------

    def _clients(self) -> tuple[httpx.Client, httpx.Client]:
        if not hasattr(self.local, "api"):
            self.local.api = httpx.Client(
                base_url=self.server,
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "X-Grant-Token": self.grant["token"],
                    "User-Agent": "accessctl-cli/0.1",
                },
                timeout=httpx.Timeout(30.0, read=120.0),
            )
            self.local.plain = httpx.Client(timeout=httpx.Timeout(30.0, read=120.0))
        return self.local.api, self.local.plain

    def _fetch(self, part: Part, number: int, bar: Any, progress: Progress | None) -> None:
        start = number * part.chunk
        end = min(part.entry["size"], start + part.chunk) - 1
        headers = {"Range": f"bytes={start}-{end}"}
        url = f"/api/v1/grants/{self.grant['id']}/files/{part.entry['path']}"

        def attempt() -> None:
            if self.stop.is_set():
                return
            api, plain = self._clients()
            # Each attempt asks the API again, so an expired presigned URL is replaced.
            with api.stream("GET", url, headers=headers) as response:
                if response.status_code in (301, 302, 303, 307, 308):
                    location = response.headers["location"]
                    with plain.stream("GET", location, headers=headers) as direct:
                        if direct.status_code == 403 or direct.status_code >= 500:
                            raise Retry(f"storage answered {direct.status_code}")
                        # Storage's ETag is its own (S3: an MD5); the digest is checked at the end.
                        self._write(part, direct, start, end, bar, progress, check_etag=False)
                    return
                if response.status_code >= 500:
                    raise Retry(f"HTTP {response.status_code}")
                if response.status_code >= 400:
                    response.read()
                    raise problem(response)
                self._write(part, response, start, end, bar, progress)

        with_retries(attempt)
        if not self.stop.is_set() and part.record(number):
            # The file's last chunk: verify and rename it here, while other files still
            # download (hashing releases the GIL, so it overlaps the network).
            self._finish(part)

    def _write(
        self,
        part: Part,
        response: httpx.Response,
        start: int,
        end: int,
        bar: Any,
        progress: Progress | None,
        *,
        check_etag: bool = True,
    ) -> None:
        if response.status_code not in (200, 206):
            raise Retry(f"unexpected HTTP {response.status_code}")
        if response.status_code == 200 and (start, end) != (0, part.entry["size"] - 1):
            raise Retry("the server ignored the Range header")
        etag = response.headers.get("etag", "").strip('"')
        if check_etag and etag and etag != part.entry["sha256"]:
            raise CliError(
                "verification_failed",
                f"{part.entry['path']}: the server sends other bytes (ETag) than the manifest names",
            )
        offset, received = start, 0
        fd = os.open(part.partial, os.O_WRONLY)
        try:
            # Raw pieces as they arrive: httpx's re-chunking into large blocks halves the
            # throughput. Only an encoded body (never sent by accessctl) is decoded.
            encoded = "content-encoding" in response.headers
            for block in response.iter_bytes() if encoded else response.iter_raw():
                if self.stop.is_set():
                    return
                os.pwrite(fd, block, offset)
                offset += len(block)
                received += len(block)
                if progress is not None:
                    progress.advance(bar, len(block))
                    progress.advance(self.overall, len(block))
        finally:
            os.close(fd)
        if received != end - start + 1:
            raise Retry(f"short read: {received} of {end - start + 1} bytes")

    # -- Files -----------------------------------------------------------------------

    def _prepare(self, entry: dict[str, Any]) -> Part | None:
        """The file's partial state, or None if the verified file is already there."""
        final = safe_path(self.root, entry["path"])
        if (
            final.exists()
            and final.stat().st_size == entry["size"]
            and sha256_of(final) == entry["sha256"]
        ):
            return None
        partial = safe_path(self.root / STATE / "partial", entry["path"] + ".part")
        state_path = partial.with_name(partial.name[: -len(".part")] + ".json")
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
        return Part(entry, partial, state_path, chunk, done, threading.Lock())

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
        os.replace(part.partial, final)
        part.state_path.unlink(missing_ok=True)

    def run(self) -> list[str]:
        """Download; returns the paths fetched (files already verified are skipped)."""
        if not self.files:
            raise CliError("usage", "no file of the checkpoint matches --include")
        state = self.root / STATE
        state.mkdir(parents=True, exist_ok=True)
        (state / "manifest.json").write_text(json.dumps(self.signed, indent=2))
        (state / "jwks.json").write_text(self.jwks_text)
        parts = [p for p in (self._prepare(e) for e in self.files) if p is not None]
        total = sum(p.entry["size"] for p in parts)
        progress = (
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                transient=False,
            )
            if self.show
            else None
        )
        with progress or _Null():
            self.overall = progress.add_task("total", total=total) if progress else TaskID(0)
            bars = {}
            for p in parts:
                done_bytes = sum(
                    min(p.entry["size"], (n + 1) * p.chunk) - n * p.chunk for n in p.done
                )
                bars[p.entry["path"]] = (
                    progress.add_task(p.entry["path"], total=p.entry["size"], completed=done_bytes)
                    if progress
                    else TaskID(0)
                )
                if progress:
                    progress.advance(self.overall, done_bytes)
            jobs = [(p, n) for p in parts for n in range(p.chunks) if n not in p.done]
            with ThreadPoolExecutor(self.connections) as pool:
                futures = [
                    pool.submit(self._fetch, p, n, bars[p.entry["path"]], progress) for p, n in jobs
                ]
                finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
                failure = next((f.exception() for f in finished if f.exception()), None)
                if failure is not None:
                    self.stop.set()
                    for future in futures:
                        future.cancel()
                    wait(futures)
                    raise failure
        for p in parts:
            if len(p.done) == p.chunks and p.partial.exists():  # complete before this run
                self._finish(p)
        return [p.entry["path"] for p in parts]


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
