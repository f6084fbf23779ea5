"""Where artifact bytes live: the ``artifacts`` storage (local files by default).

A file belongs to its checkpoint: its key is always ``artifact_key(release, tag, path)``,
derived by the server, and the path is confined (``path_problem``), so no registration
can name another release's bytes or anything else in the bucket (audit exports live
under a prefix no release slug can spell: accessctl/settings.py).
"""

import base64
import hashlib
import unicodedata
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import quote

from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

from partners.errors import ActionError

__all__ = [
    "CHUNK",
    "PATH_MAX",
    "artifact_key",
    "artifact_storage",
    "path_problem",
    "presigned_get",
    "sha256_of",
    "store_artifact",
    "verify_stored",
]

CHUNK = 1024 * 1024
PATH_MAX = 500  # characters, as ``Artifact.path``
KEY_MAX_BYTES = 1024  # S3's limit for an object key, in UTF-8


def artifact_storage() -> Storage:
    return storages["artifacts"]


# S3's GetObject parameters a presigned URL carries, as query parameters (they set the
# answer's headers); ``Range`` is signed as a header instead.
_RESPONSE_QUERY = {
    "ResponseCacheControl": "response-cache-control",
    "ResponseContentDisposition": "response-content-disposition",
    "ResponseContentType": "response-content-type",
}
# Per S3 storage: its URLs' prefix before the object key (endpoint, and the bucket as a
# path segment or a host name, however the storage addresses it), learnt from boto3 once.
_URL_PREFIXES: "weakref.WeakKeyDictionary[Storage, str]" = weakref.WeakKeyDictionary()
_PROBE_KEY = "accessctl-presign-probe"


def presigned_get(storage: Storage, key: str, *, expire: int, parameters: Mapping[str, str]) -> str:
    """A SigV4 presigned GET URL (query authentication, valid ``expire`` seconds) of
    ``key`` in the S3 ``storage``; ``parameters`` as boto3's ``get_object`` names them:
    the ``Response*`` overrides, and ``Range``, which is signed as a header (storage then
    refuses the URL with any other Range, or none).

    The same URL as ``storage.url(key, expire=..., parameters=...)``, which builds and
    validates a whole boto3 request per call (about 1 ms here); this signs with botocore's
    own S3 SigV4 query signer (``S3SigV4QueryAuth``) and the client's credentials (about
    0.2 ms): the object URL's prefix is learnt from boto3 once per storage. A storage this
    does not know how to sign for (a custom domain, unsigned URLs, another kind) gets
    ``storage.url``.
    """
    client: Any = getattr(getattr(storage, "connection", None), "meta", None)
    client = getattr(client, "client", None)
    signer = getattr(client, "_request_signer", None)
    credentials = getattr(signer, "_credentials", None)  # what the client signs with
    if (
        credentials is None
        or getattr(storage, "custom_domain", None)
        or not getattr(storage, "querystring_auth", False)
        or set(parameters) - {*_RESPONSE_QUERY, "Range"}
    ):
        return str(storage.url(key, expire=expire, parameters=dict(parameters)))  # type: ignore[call-arg]
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from storages.utils import clean_name

    name = storage._normalize_name(clean_name(key))  # type: ignore[attr-defined]
    prefix = _URL_PREFIXES.get(storage)
    if prefix is None:
        probe = client.generate_presigned_url(
            "get_object",
            Params={"Bucket": storage.bucket_name, "Key": _PROBE_KEY},  # type: ignore[attr-defined]
            ExpiresIn=expire,
        )
        prefix = probe.split("?", 1)[0].removesuffix(_PROBE_KEY)
        _URL_PREFIXES[storage] = prefix
    request = AWSRequest(
        method="GET",
        # As botocore writes an S3 key into a path (its "greedy" label): UTF-8,
        # percent-encoded, "/" and "~" kept.
        url=prefix + quote(name.encode(), safe="/~"),
        headers={"Range": parameters["Range"]} if "Range" in parameters else {},
        params={
            _RESPONSE_QUERY[parameter]: value
            for parameter, value in parameters.items()
            if parameter in _RESPONSE_QUERY
        },
    )
    S3SigV4QueryAuth(
        credentials.get_frozen_credentials(),
        "s3",
        client.meta.region_name,
        expires=expire,
    ).add_auth(request)
    return str(request.prepare().url)


def artifact_key(release: str, tag: str, path: str) -> str:
    """The one key a checkpoint's file may have. ``release`` and ``tag`` are slugs
    (``[-a-zA-Z0-9_]+``); ``path`` must have passed ``path_problem``."""
    return f"{release}/{tag}/{path}"


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot name a file of a checkpoint, or ``None`` when it can.

    A relative POSIX path of plain segments: no leading ``/``, no ``.``, ``..`` or empty
    segment (storages normalise those, so two paths could name one key, or a key could
    climb out of its checkpoint), no backslash, no control character (NUL included).
    """
    if not path:
        return "the path is empty"
    if len(path) > PATH_MAX:
        return f"the path is longer than {PATH_MAX} characters"
    if path.startswith("/"):
        return "the path starts with '/'"
    if "\\" in path:
        return "the path contains a backslash"
    if any(unicodedata.category(ch) in {"Cc", "Cs"} for ch in path):
        return "the path contains a control character or a lone surrogate"
    if any(segment in {"", ".", ".."} for segment in path.split("/")):
        return "the path has an empty, '.' or '..' segment"
    return None


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


def verify_stored(key: str, size: int, sha256: str) -> None:
    """Refuse unless ``key`` is in artifact storage with ``size`` bytes and, where the
    storage can tell, the SHA-256 ``sha256``.

    Local files are hashed as a stream. S3 objects are compared with their stored
    ``ChecksumSHA256`` when they have a full-object one (a multipart upload's composite
    checksum is not the file's SHA-256 and is not compared).
    """
    storage = artifact_storage()
    if hasattr(storage, "bucket_name") and hasattr(storage, "connection"):
        found_size, found_sha = _s3_head(storage, key)
    else:
        if not storage.exists(key):
            found_size, found_sha = None, None
        else:
            found_size = storage.size(key)
            found_sha = None
            if isinstance(storage, FileSystemStorage) and found_size == size:
                with storage.open(key, "rb") as handle:
                    found_sha = sha256_of(cast(BinaryIO, handle))
    if found_size is None:
        raise ActionError("artifact_missing", f"No object {key!r} in artifact storage.")
    if found_size != size:
        raise ActionError(
            "artifact_size_mismatch",
            f"Object {key!r} holds {found_size} bytes, not the {size} declared.",
        )
    if found_sha is not None and found_sha != sha256:
        raise ActionError(
            "artifact_digest_mismatch",
            f"Object {key!r}'s SHA-256 is not the one declared.",
        )


def _s3_head(storage: Any, key: str) -> tuple[int | None, str | None]:
    from botocore.exceptions import ClientError

    try:
        head = storage.connection.meta.client.head_object(
            Bucket=storage.bucket_name,
            Key=storage._normalize_name(key),
            ChecksumMode="ENABLED",
        )
    except ClientError as exc:
        if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return None, None
        raise
    checksum = head.get("ChecksumSHA256")
    full_object = head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT"
    if not checksum or "-" in checksum or not full_object:
        return int(head["ContentLength"]), None
    return int(head["ContentLength"]), base64.b64decode(checksum).hex()
