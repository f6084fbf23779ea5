"""Where artifact bytes live: the ``artifacts`` storage (local files by default)."""

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from django.core.files import File
from django.core.files.storage import Storage, storages

__all__ = ["CHUNK", "artifact_key", "artifact_storage", "sha256_of", "store_artifact"]

CHUNK = 1024 * 1024


def artifact_storage() -> Storage:
    return storages["artifacts"]


def artifact_key(release: str, tag: str, path: str) -> str:
    return f"{release}/{tag}/{path}"


def sha256_of(stream: BinaryIO, progress: Callable[[int], object] | None = None) -> str:
    """Digest a stream in fixed-size chunks: constant memory whatever the file size."""
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        if progress:
            progress(len(chunk))
    return digest.hexdigest()


def store_artifact(source: Path, key: str, size: int) -> str:
    """Copy ``source`` into artifact storage under ``key``, unless a complete copy is there.

    A copy of the wrong size (an interrupted earlier run) is replaced.
    """
    storage = artifact_storage()
    if storage.exists(key):
        if storage.size(key) == size:
            return key
        storage.delete(key)
    with source.open("rb") as handle:
        saved = storage.save(key, File(handle, name=source.name))
    if saved != key:  # another writer won a race for the same key
        storage.delete(saved)
    return key
