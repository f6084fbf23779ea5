"""Leak attribution: submit a suspect file set, and run the detection (docs/fingerprints.md).

``request_detection`` checks the suspect files (1 to 16 safetensors or GGUF files, by
their first bytes; at most ``ACCESSCTL_DETECTION_MAX_BYTES`` together), stores them under
``accessctl.detections/<id>/<n>`` in artifact storage and queues the ``slow`` task. ``run_detection``
(the task's one call) aligns the suspect with the release's originals, computes every
partner's z with their key and writes the signed report.
"""

import hashlib
import json
import struct
import tempfile
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage
from django.db import transaction
from django.utils import timezone

from accessctl.actors import Actor
from accessctl.audit.events import AuditAction, record
from accessctl.audit.models import AuditCheckpoint, AuditEvent, AuditLeaf, Outcome
from accessctl.codes import Code
from accessctl.signing.keys import sign_detached
from accessctl_wire import canonical_json
from partners.authority import Operation, authorize
from partners.dispatch import after_commit
from partners.errors import ActionError, ActionForbidden
from partners.models import Artifact, Detection, FingerprintKey, Release
from partners.storage import CHUNK, artifact_storage

__all__ = [
    "MAX_FILES",
    "SUSPECT_PREFIX",
    "fail_detection",
    "request_detection",
    "run_detection",
    "suspect_format",
    "suspect_key",
]

MAX_FILES = 16
# Where suspect files live in artifact storage: ``<prefix>/<detection id>/<n>``. The
# prefix holds a ".", which no release slug ([-a-zA-Z0-9_]+) can spell, so no artifact
# key ("<release>/<tag>/<path>") can ever name a suspect's bytes, nor a suspect an
# artifact's (as the serving side's ``accessctl.variants/``).
SUSPECT_PREFIX = "accessctl.detections"
NAME_MAX = 200
# A safetensors header longer than this is no model file we will read (the format's own
# reader refuses headers over 100 MB).
_HEADER_MAX = 100 * 1024 * 1024


def suspect_format(head: bytes, size: int) -> str | None:
    """``"safetensors"``, ``"gguf"`` or ``None`` from a file's first 9 bytes (or more) and
    its size: GGUF starts with ``b"GGUF"``; safetensors with the little-endian u64 length of
    a JSON header that fits in the file and starts with ``{``."""
    if head[:4] == b"GGUF":
        return "gguf"
    if len(head) >= 9:
        (length,) = struct.unpack("<Q", head[:8])
        if 2 <= length <= min(_HEADER_MAX, size - 8) and head[8:9] == b"{":
            return "safetensors"
    return None


def suspect_key(detection_id: int, n: int) -> str:
    """The storage key of suspect file ``n`` (from 0) of detection ``detection_id``."""
    return f"{SUSPECT_PREFIX}/{detection_id}/{n}"


def _clean_name(name: str, n: int) -> str:
    """The uploaded file's own name (no folder), without control characters, shortened."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch) not in {"Cc", "Cs", "Cf"})
    return base.strip()[:NAME_MAX] or f"suspect-{n}"


def _checked(files: Sequence[File]) -> list[tuple[File, str, int]]:
    """``(file, format, size)`` of each file, or the refusal."""
    if not 1 <= len(files) <= MAX_FILES:
        raise ActionError(
            Code.SUSPECT_FILES_COUNT,
            f"Send between 1 and {MAX_FILES} suspect files ({len(files)} sent).",
        )
    limit = settings.ACCESSCTL_DETECTION_MAX_BYTES
    total = sum(int(f.size or 0) for f in files)
    if total > limit:
        raise ActionError(
            Code.SUSPECT_TOO_LARGE,
            f"The suspect files hold {total} bytes; this server accepts at most {limit} "
            "(ACCESSCTL_DETECTION_MAX_BYTES).",
        )
    checked = []
    for n, upload in enumerate(files):
        size = int(upload.size or 0)
        upload.seek(0)
        head = upload.read(16)
        upload.seek(0)
        kind = suspect_format(head, size) if size else None
        if kind is None:
            what = "is empty" if not size else "is neither a safetensors nor a GGUF file"
            raise ActionError(
                Code.SUSPECT_FILE_INVALID,
                f"File {n + 1} ({_clean_name(upload.name or '', n)!r}) {what}.",
            )
        checked.append((upload, kind, size))
    return checked


def _store(detection: Detection, checked: list[tuple[File, str, int]]) -> list[dict[str, Any]]:
    storage = artifact_storage()
    stored = []
    for n, (upload, kind, size) in enumerate(checked):
        digest = hashlib.sha256()
        upload.seek(0)
        while chunk := upload.read(CHUNK):
            digest.update(chunk)
        upload.seek(0)
        key = suspect_key(detection.pk, n)
        saved = storage.save(key, File(cast(IO[bytes], upload), name=str(n)))
        stored.append(
            {
                "name": _clean_name(upload.name or "", n),
                "size": size,
                "sha256": digest.hexdigest(),
                "format": kind,
                "storage_key": saved,
            }
        )
    return stored


@transaction.atomic
def request_detection(
    *, actor: Actor, release: Release, files: Sequence[File], reason: str
) -> Detection:
    """Submit ``files`` (a leaked copy of ``release``'s weights, as found) for attribution.

    Returns the pending ``Detection``; the ``slow`` task ``partners.tasks.run_detection``
    runs it after the commit. Refuses (``ActionError``): ``forbidden`` without
    ``partners.run_detection``; ``reason_required``; ``suspect_files_count`` (not 1-16
    files); ``suspect_too_large`` (more than ``ACCESSCTL_DETECTION_MAX_BYTES`` bytes
    together); ``suspect_file_invalid`` (empty, or neither safetensors nor GGUF by its
    first bytes); ``fingerprint_off``; ``no_fingerprint_keys``. Audited
    ``detection.requested`` with the reason and the files' names, sizes and SHA-256s.
    """
    authorize(actor, Operation.DETECTION_RUN, release)
    if actor is None:  # the system never asks: a detection is someone's decision
        raise ActionForbidden(str(Operation.DETECTION_RUN), "a person must request it")
    if not reason.strip():
        raise ActionError(Code.REASON_REQUIRED, "Say why: the reason is kept in the audit trail.")
    release = Release.objects.get(pk=release.pk)
    if not release.fingerprint:
        raise ActionError(
            Code.FINGERPRINT_OFF,
            f"Release {release.slug} does not fingerprint its partners' copies: there is "
            "nothing to attribute a leak to.",
        )
    if not FingerprintKey.objects.filter(release=release).exists():
        raise ActionError(
            Code.NO_FINGERPRINT_KEYS,
            f"No partner has received a marked copy of release {release.slug} yet.",
        )
    checked = _checked(files)
    detection = Detection.objects.create(
        release=release, requested_by=actor, reason=reason.strip()[:300]
    )
    try:
        detection.suspect_files = _store(detection, checked)
    except BaseException:
        _delete_files(detection)
        raise
    detection.save(update_fields=["suspect_files"])
    record(
        AuditAction.DETECTION_REQUESTED,
        actor=actor,
        target=detection,
        changes={
            "release": release.slug,
            "reason": detection.reason,
            "files": [
                {k: f[k] for k in ("name", "size", "sha256", "format")}
                for f in detection.suspect_files
            ],
        },
    )
    after_commit("partners.tasks.run_detection", detection.pk)
    return detection


def _delete_files(detection: Detection) -> None:
    storage = artifact_storage()
    for n in range(MAX_FILES):
        key = suspect_key(detection.pk, n)
        if storage.exists(key):
            storage.delete(key)


# -- running it -----------------------------------------------------------------------------


@contextmanager
def _local_path(storage: Storage, key: str) -> Iterator[Path]:
    """A path on this machine holding the object ``key``: the file itself for local
    storage, else a temporary copy (removed after). GGUF is read memory-mapped, so a
    suspect must be a file on disk."""
    try:
        local = Path(storage.path(key))
    except NotImplementedError:
        local = None
    if local is not None:
        yield local
        return
    with tempfile.NamedTemporaryFile(prefix="accessctl-suspect-") as copy:
        with storage.open(key, "rb") as source:
            while chunk := source.read(CHUNK):
                copy.write(chunk)
        copy.flush()
        yield Path(copy.name)


def _combined(parts: Sequence[tuple[Any, Sequence[str] | None]]) -> Any:
    """One lazy mapping (``TensorFile``) over several files' tensors: ``(tensor file,
    names to keep or None for all)`` each. A name seen twice keeps the first file's
    tensor under its own name and the later one as ``name#n`` (n: the file's index)."""
    from partners.fingerprints import TensorFile

    names: dict[str, tuple[tuple[int, ...], str]] = {}
    where: dict[str, tuple[Any, str]] = {}
    for n, (tensors, keep) in enumerate(parts):
        for name in keep if keep is not None else list(tensors):
            shown = name if name not in names else f"{name}#{n}"
            names[shown] = (tensors.shape(name), tensors.dtype(name))
            where[shown] = (tensors, name)

    def load(shown: str) -> Any:
        tensors, name = where[shown]
        return tensors[name]

    return TensorFile(names, load)


def _suspect(stack: ExitStack, storage: Storage, files: Sequence[dict[str, Any]]) -> Any:
    from partners.fingerprints import read_tensors

    parts = []
    for meta in files:
        path = stack.enter_context(_local_path(storage, meta["storage_key"]))
        handle = stack.enter_context(path.open("rb"))
        parts.append((read_tensors(handle, format=meta.get("format")), None))
    return _combined(parts)


def _originals(
    stack: ExitStack, storage: Storage, artifacts: Sequence[Artifact], patterns: Sequence[str]
) -> Any:
    """The marked tensors of a checkpoint's safetensors files, read from artifact storage
    one tensor at a time when asked for (a checkpoint larger than memory works)."""
    from partners.fingerprints import matched_tensors, read_tensors

    parts = []
    for artifact in artifacts:
        handle = stack.enter_context(storage.open(artifact.storage_key, "rb"))
        tensors = read_tensors(cast(BinaryIO, handle), format="safetensors")
        marked = matched_tensors(tensors.header, list(patterns)) if tensors.header else []
        parts.append((tensors, marked))
    return _combined(parts)


def _sealed(event: AuditEvent | None) -> dict[str, Any] | None:
    """Where ``event`` is sealed in the Merkle log: its leaf index and the first signed
    checkpoint that covers it (``None`` when not sealed yet)."""
    if event is None:
        return None
    leaf = AuditLeaf.objects.filter(event_id=event.pk).values_list("index", flat=True).first()
    if leaf is None:
        return None
    checkpoint = AuditCheckpoint.objects.filter(tree_size__gt=leaf).order_by("tree_size").first()
    if checkpoint is None:
        return None
    return {
        "leaf_index": leaf,
        "tree_size": checkpoint.tree_size,
        "sealed_at": checkpoint.sealed_at.isoformat(),
    }


def _leaf(event: AuditEvent, checkpoint: AuditCheckpoint | None) -> dict[str, Any]:
    """``event`` as sealed: its canonical record (what its leaf hashes), its leaf index and
    its RFC 9162 inclusion proof in ``checkpoint`` (``leaf_index``/``proof`` None when
    the event or the checkpoint does not cover it yet)."""
    from accessctl.audit.sealing import FIELDS, event_record, inclusion

    values = AuditEvent.objects.filter(pk=event.pk).values(*FIELDS).get()
    index = AuditLeaf.objects.filter(event_id=event.pk).values_list("index", flat=True).first()
    covered = None
    if index is not None and checkpoint is not None and index < checkpoint.tree_size:
        covered = checkpoint.tree_size
    return {
        "event": event_record(values),
        "leaf_index": index,
        "checkpoint": covered,
        "proof": None if covered is None or index is None else inclusion(index, covered),
    }


def _first_download(release: Release, partner_id: int) -> AuditEvent | None:
    """The partner's first ``download.authorized`` event on any grant of ``release``."""
    from partners.models import Grant

    grants = [
        str(pk)
        for pk in Grant.objects.filter(
            checkpoint__release=release, partner_id=partner_id
        ).values_list("pk", flat=True)
    ]
    return (
        AuditEvent.objects.filter(
            action="download.authorized",
            partner_id=partner_id,
            target_type=Grant._meta.label_lower,
            target_id__in=grants,
        )
        .order_by("pk")
        .first()
    )


def _evidence(event: AuditEvent | None, download: AuditEvent | None) -> dict[str, Any] | None:
    """What proves offline that the commitment was sealed before the first download: the
    first signed checkpoint covering the commitment's leaf (``sealed``) with its inclusion
    proof; the partner's first ``download.authorized`` leaf with its inclusion proof in the
    newest checkpoint (``latest``), and the consistency proof from one to the other.
    ``None`` when the commitment is not sealed yet."""
    from accessctl.audit.sealing import checkpoint_json, consistency

    sealed = _sealed(event)
    if event is None or sealed is None:
        return None
    first = AuditCheckpoint.objects.get(tree_size=sealed["tree_size"])
    latest = AuditCheckpoint.objects.order_by("-tree_size").first() or first
    return {
        "sealed": checkpoint_json(first),
        "latest": checkpoint_json(latest),
        "consistency": consistency(first.tree_size, latest.tree_size),
        "commitment": _leaf(event, first),
        "first_download": None if download is None else _leaf(download, latest),
    }


def _commitments(release: Release, keys: Sequence[FingerprintKey]) -> list[dict[str, Any]]:
    found = []
    for key in keys:
        event = (
            AuditEvent.objects.filter(
                action="fingerprint.committed",
                partner_id=key.partner_id,
                changes__commitment=key.commitment,
            )
            .order_by("pk")
            .first()
        )
        found.append(
            {
                "partner": key.partner.slug,
                "commitment": key.commitment,
                "committed_at": key.committed_at.isoformat(),
                "audit_event": event.pk if event else None,
                "sealed_in_checkpoint": _sealed(event),
                "evidence": _evidence(event, _first_download(release, key.partner_id)),
            }
        )
    return found


def _key_for(release: Release, partner: Any) -> bytes:
    # The serving side's derivation (partners.fingerprints_store), one import to switch.
    from partners.fingerprints_store import key_for

    return bytes(key_for(release, partner))


def _fail(detection: Detection, message: str) -> Detection:
    detection.status = Detection.Status.FAILED
    detection.error = message[:300]
    detection.finished_at = timezone.now()
    detection.save(update_fields=["status", "error", "finished_at"])
    record(
        AuditAction.DETECTION_FAILED,
        actor=None,
        target=detection,
        outcome=Outcome.FAILURE,
        changes={"release": detection.release.slug, "error": detection.error},
    )
    return detection


def fail_detection(detection_id: int, message: str) -> Detection | None:
    """End a detection that is not finished as ``failed`` with ``message`` (the task's time
    limit); ``None`` when it was finished already."""
    with transaction.atomic():
        detection = (
            Detection.objects.select_for_update().select_related("release").get(pk=detection_id)
        )
        if detection.status in (Detection.Status.DONE, Detection.Status.FAILED):
            return None
        return _fail(detection, message)


def _claim(detection_id: int) -> Detection | None:
    """Mark the detection running; ``None`` when it is finished (a redelivered message)."""
    with transaction.atomic():
        detection = (
            Detection.objects.select_for_update().select_related("release").get(pk=detection_id)
        )
        if detection.status in (Detection.Status.DONE, Detection.Status.FAILED):
            return None
        detection.status = Detection.Status.RUNNING
        detection.save(update_fields=["status"])
        return detection


def run_detection(detection_id: int) -> Detection | None:
    """Run one detection (the ``slow`` task's one call). Idempotent: a finished detection
    is left as it is (``None``); a running one (its worker was killed) runs again.

    Per checkpoint of the release (its ``.safetensors`` files), ``detect`` compares the
    suspect with the originals for every partner holding a key; the checkpoint whose
    tensors align best (most weights compared) is reported. The report, signed with the
    lab's key over its canonical JSON, is ``detect``'s body plus ``detection``,
    ``release``, ``checkpoint``, ``suspect_files`` (name, size, sha256), ``commitments``
    (per partner: commitment, committed_at, its audit event's id and the sealed audit
    checkpoint covering it) and ``created_at``. A suspect that does not parse, or nothing
    aligned, ends ``failed`` with the error (audited ``detection.failed``).
    """
    from partners.fingerprints import Candidate, FingerprintError, detect

    detection = _claim(detection_id)
    if detection is None:
        return None
    release = detection.release
    storage = artifact_storage()
    keys = list(FingerprintKey.objects.filter(release=release).select_related("partner"))
    candidates = [Candidate(label=k.partner.slug, key=_key_for(release, k.partner)) for k in keys]
    patterns = list(release.fingerprint_patterns)
    best: tuple[int, str, dict[str, Any]] | None = None
    marked_any = False
    with ExitStack() as stack:
        try:
            suspect = _suspect(stack, storage, detection.suspect_files)
        except FingerprintError as exc:
            return _fail(detection, f"A suspect file could not be read ({exc.code}): {exc}")
        except OSError as exc:
            return _fail(detection, f"A suspect file could not be read: {exc}")
        for checkpoint in release.checkpoints.order_by("registered_at", "pk"):
            artifacts = list(
                checkpoint.artifacts.filter(path__endswith=".safetensors").order_by("path")
            )
            try:
                originals = _originals(stack, storage, artifacts, patterns)
            except (FingerprintError, OSError):
                continue  # a file of the checkpoint that is no safetensors file we can read
            if not originals:
                continue
            marked_any = True
            body = detect(
                originals,
                suspect,
                candidates,
                alpha=release.fingerprint_alpha,
                patterns=patterns,
            )
            if body["weights"] and (best is None or body["weights"] > best[0]):
                best = (int(body["weights"]), checkpoint.tag, body)
    if best is None and not marked_any:
        return _fail(
            detection,
            f"No tensor of release {release.slug}'s checkpoints matches its fingerprint "
            f"patterns {patterns!r}: nothing was marked in its partners' copies, so no copy "
            "can be attributed (the patterns are wrong for these files).",
        )
    if best is None:
        return _fail(
            detection,
            "No tensor of the suspect aligned with a marked tensor of any checkpoint of "
            f"release {release.slug}: it is not derived from these weights, or too far "
            "from them to compare.",
        )
    _, tag, body = best
    report = {
        **body,
        "detection": detection.pk,
        "release": release.slug,
        "checkpoint": tag,
        "suspect_files": [
            {"name": f["name"], "size": f["size"], "sha256": f["sha256"]}
            for f in detection.suspect_files
        ],
        "commitments": _commitments(release, keys),
        "created_at": timezone.now().isoformat(),
    }
    # Plain JSON (no numpy scalars, no NaN): what canonical_json signs is what is stored.
    report = json.loads(json.dumps(report, allow_nan=False, default=float))
    with transaction.atomic():
        detection = Detection.objects.select_for_update().get(pk=detection.pk)
        if detection.status != Detection.Status.RUNNING:
            return None
        detection.report = report
        detection.signature = sign_detached(canonical_json(report))
        detection.verdict = str(report["verdict"])
        detection.named = list(report["named"])
        detection.status = Detection.Status.DONE
        detection.finished_at = timezone.now()
        detection.save()
        record(
            AuditAction.DETECTION_FINISHED,
            actor=None,
            target=detection,
            reason=detection.verdict,
            changes={
                "release": release.slug,
                "verdict": detection.verdict,
                "named": detection.named,
                "z": {p["partner"]: round(float(p["z"]), 2) for p in report["partners"]},
            },
        )
    return detection
