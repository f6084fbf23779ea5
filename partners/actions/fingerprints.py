"""Leak attribution, serving side (docs/fingerprints.md, *Serving*): each partner's key
commitment and its own marked copy of every safetensors file of a fingerprinted release.

``prepare_variants`` runs inside the actions that give a partner a checkpoint (issuing a
grant, turning fingerprinting on, adding files to a checkpoint with grants): in their
transaction it commits to the partner's key (``FingerprintKey`` and its
``fingerprint.committed`` event) and adds one pending ``ArtifactVariant`` per
``.safetensors`` file, then queues ``partners.tasks.write_variants`` once they commit.
``write_variants`` (the task's action) seals the commitment into the audit log first,
then writes each partner's marked copy into artifact storage and makes it ready.
"""

import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import IO, Any, BinaryIO, cast

from django.core.files import File
from django.db import transaction
from django.db.models import Q

from accessctl.actors import Actor
from accessctl.audit.events import AuditAction, record
from accessctl.audit.models import AuditCheckpoint, AuditEvent, AuditLeaf, Outcome
from accessctl.audit.sealing import seal
from partners import fingerprints as fp
from partners.dispatch import after_commit
from partners.fingerprints_store import current_secret, key_for
from partners.models import (
    Artifact,
    ArtifactVariant,
    Checkpoint,
    FingerprintKey,
    Grant,
    Partner,
    Release,
)
from partners.storage import artifact_storage

from ._common import now

__all__ = [
    "MARKED_SUFFIX",
    "VARIANTS_PREFIX",
    "WRITE_VARIANTS_TASK",
    "VariantError",
    "prepare_release_variants",
    "prepare_variants",
    "variant_key",
    "write_variants",
]

log = logging.getLogger(__name__)

# Under a prefix no release slug ([-a-zA-Z0-9_]+) can spell (it holds a "."), so no
# artifact key ("{release}/{tag}/{path}") can ever name a variant, and the reverse.
VARIANTS_PREFIX = "accessctl.variants"
MARKED_SUFFIX = ".safetensors"
WRITE_VARIANTS_TASK = "partners.tasks.write_variants"
# Grants that still serve (or may again): a new file or fingerprinting turned on reaches
# their partners.
_LIVE = (Grant.Status.ACTIVE, Grant.Status.EXHAUSTED)


class VariantError(Exception):
    """A variant could not be written; ``code`` is stable, the message short (no trace)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def variant_key(partner: Partner, artifact: Artifact) -> str:
    """Where ``partner``'s copy of ``artifact`` is stored."""
    return f"{VARIANTS_PREFIX}/{partner.slug}/{artifact.storage_key}"


def _commit_key(*, actor: Actor, release: Release, partner: Partner, at: datetime) -> bool:
    """The partner's key commitment for the release, made (and audited) if missing; True
    when made. The key itself is neither stored nor recorded: only its commitment."""
    if FingerprintKey.objects.filter(release=release, partner=partner).exists():
        return False
    secret, raw = current_secret()
    key = fp.derive_key(raw, release.slug, partner.slug)
    commitment = fp.commitment(key, release.slug, partner.slug)
    row = FingerprintKey.objects.create(
        release=release, partner=partner, secret=secret, commitment=commitment, committed_at=at
    )
    record(
        AuditAction.FINGERPRINT_COMMITTED,
        actor=actor,
        target=partner,
        partner=partner,
        changes={
            "release": release.slug,
            "commitment": commitment,
            "fingerprint_key": row.pk,
            "secret": secret.pk,
        },
        at=at,
    )
    return True


def prepare_variants(
    *,
    actor: Actor,
    release: Release,
    partner: Partner,
    checkpoints: Iterable[Checkpoint],
    at: datetime,
) -> list[int]:
    """Inside the caller's transaction (an action that authorized its own operation): for
    a fingerprinted ``release``, ``partner``'s key commitment if missing and one pending
    variant per ``.safetensors`` file of ``checkpoints`` that has none; the task that
    writes them is queued when the transaction commits. Returns the new variants' ids
    ([] for a release without fingerprinting)."""
    if not release.fingerprint:
        return []
    artifacts = list(
        Artifact.objects.filter(
            checkpoint__in=[c.pk for c in checkpoints], path__endswith=MARKED_SUFFIX
        )
        .exclude(variants__partner=partner)
        .order_by("pk")
    )
    if not artifacts:
        return []
    _commit_key(actor=actor, release=release, partner=partner, at=at)
    made = ArtifactVariant.objects.bulk_create(
        [
            ArtifactVariant(
                artifact=artifact,
                partner=partner,
                alpha=release.fingerprint_alpha,
                patterns=list(release.fingerprint_patterns),
                created_at=at,
            )
            for artifact in artifacts
        ],
        ignore_conflicts=True,  # a concurrent preparation made some: theirs stand
    )
    ids = [v.pk for v in made if v.pk is not None]
    if not ids:  # ignore_conflicts gives no ids on some backends: read them
        ids = list(
            ArtifactVariant.objects.filter(
                partner=partner, artifact__in=artifacts, status=ArtifactVariant.Status.PENDING
            ).values_list("pk", flat=True)
        )
    # One message per copy: each task writes one shard, well within the broker's
    # visibility timeout, and the copies are written in parallel by several workers.
    for variant_id in ids:
        after_commit(WRITE_VARIANTS_TASK, [variant_id])
    return ids


def prepare_release_variants(*, actor: Actor, release: Release, at: datetime) -> list[int]:
    """``prepare_variants`` for every partner holding a live grant (active or exhausted)
    of ``release``, for the checkpoints of those grants: when staff turn fingerprinting
    on, or add files to a checkpoint that partners already hold grants for."""
    held: dict[int, list[int]] = {}
    for partner_id, checkpoint_id in (
        Grant.objects.filter(checkpoint__release=release, status__in=_LIVE)
        .values_list("partner_id", "checkpoint_id")
        .distinct()
    ):
        held.setdefault(partner_id, []).append(checkpoint_id)
    ids: list[int] = []
    for partner in Partner.objects.filter(pk__in=held).order_by("pk"):
        checkpoints = Checkpoint.objects.filter(pk__in=held[partner.pk])
        ids += prepare_variants(
            actor=actor, release=release, partner=partner, checkpoints=checkpoints, at=at
        )
    return ids


# -- writing ---------------------------------------------------------------------------------


def _seal_commitment(key: FingerprintKey) -> None:
    """Make sure the audit log's signed checkpoints cover the key's ``fingerprint.committed``
    event (sealing now if they do not), and note when (``sealed_at``): no marked byte is
    served before its commitment is part of the sealed log."""
    if key.sealed_at is not None:
        return
    committed = (
        AuditEvent.objects.filter(
            action=AuditAction.FINGERPRINT_COMMITTED,
            partner_id=key.partner_id,
            changes__commitment=key.commitment,
        )
        .order_by("pk")
        .first()
    )
    if committed is None:
        raise VariantError("commitment_missing", "The key's commitment event is not in the log.")

    def covering() -> AuditCheckpoint | None:
        leaf = AuditLeaf.objects.filter(event_id=committed.pk).first()
        if leaf is None:
            return None
        return (
            AuditCheckpoint.objects.filter(tree_size__gt=leaf.index).order_by("tree_size").first()
        )

    checkpoint = covering()
    if checkpoint is None:
        seal()
        checkpoint = covering()
    if checkpoint is None:
        raise VariantError("commitment_not_sealed", "The key's commitment could not be sealed.")
    FingerprintKey.objects.filter(pk=key.pk, sealed_at__isnull=True).update(
        sealed_at=checkpoint.sealed_at
    )
    key.sealed_at = checkpoint.sealed_at


def _save(key: str, source: IO[bytes]) -> None:
    """Store ``source`` under exactly ``key``, replacing what an interrupted run left
    there (the bytes are deterministic: any earlier copy is the same or incomplete)."""
    storage = artifact_storage()
    if storage.exists(key):
        storage.delete(key)
    saved = storage.save(key, File(source, name=key.rsplit("/", 1)[-1]))
    if saved != key:  # a concurrent writer of the same bytes won the key
        storage.delete(saved)


def _write(variant: ArtifactVariant) -> dict[str, Any]:
    """Mark and store one variant; the fields that make it ready."""
    artifact, partner = variant.artifact, variant.partner
    release = artifact.checkpoint.release
    storage = artifact_storage()
    with storage.open(artifact.storage_key, "rb") as original:
        source = cast(BinaryIO, original)
        header = fp.read_header(source)  # FingerprintError("not_safetensors")
        source.seek(0)
        if not fp.matched_tensors(header, variant.patterns):
            # Nothing to mark: the partner gets the shared file, as unmarked ones are.
            return {
                "storage_key": artifact.storage_key,
                "size": artifact.size,
                "sha256": artifact.sha256,
                "tensors": [],
            }
        key = key_for(release, partner)
        fd, name = tempfile.mkstemp(prefix="accessctl-variant-", suffix=MARKED_SUFFIX)
        try:
            with os.fdopen(fd, "w+b") as target:
                result = fp.mark_safetensors(
                    source, target, key=key, alpha=variant.alpha, patterns=variant.patterns
                )
                target.flush()
                target.seek(0)
                stored = variant_key(partner, artifact)
                _save(stored, target)
        finally:
            os.unlink(name)
    return {
        "storage_key": stored,
        "size": result.size,
        "sha256": result.sha256,
        "tensors": list(result.tensors),
    }


def _label(variant: ArtifactVariant) -> dict[str, Any]:
    artifact = variant.artifact
    return {"checkpoint": str(artifact.checkpoint), "artifact": artifact.path}


def _short(exc: BaseException) -> str:
    """What a failure says: its class and first line, no trace, never a key."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:300]


def _write_one(variant: ArtifactVariant) -> str:
    """Write ``variant`` and record the outcome; its new status."""
    current = ArtifactVariant.objects.filter(pk=variant.pk).values_list("status", flat=True)
    if current.first() == ArtifactVariant.Status.READY:
        # Another run (a redelivered message) finished it: its stored copy is served now
        # and must not be replaced under a download.
        return ArtifactVariant.Status.READY
    try:
        key = FingerprintKey.objects.get(
            release=variant.artifact.checkpoint.release, partner=variant.partner
        )
        _seal_commitment(key)
        done = _write(variant)
    except Exception as exc:  # storage, format or core failure: recorded, retried later
        code = getattr(exc, "code", "")
        known = isinstance(exc, VariantError | fp.FingerprintError) and isinstance(code, str)
        error = f"{code}: {exc}" if known else _short(exc)
        log.warning("variant %s could not be written: %s", variant.pk, error)
        with transaction.atomic():
            changed = ArtifactVariant.objects.filter(
                pk=variant.pk,
                status__in=[ArtifactVariant.Status.PENDING, ArtifactVariant.Status.FAILED],
            ).update(status=ArtifactVariant.Status.FAILED, error=error[:300])
            if changed:
                record(
                    AuditAction.VARIANT_FAILED,
                    actor=None,
                    target=variant,
                    partner_id=variant.partner_id,
                    outcome=Outcome.FAILURE,
                    reason=code if known else "variant_failed",
                    changes={**_label(variant), "error": error[:300]},
                )
        return ArtifactVariant.Status.FAILED
    at = now()
    with transaction.atomic():
        changed = ArtifactVariant.objects.filter(
            pk=variant.pk,
            status__in=[ArtifactVariant.Status.PENDING, ArtifactVariant.Status.FAILED],
        ).update(status=ArtifactVariant.Status.READY, error="", ready_at=at, **done)
        if changed:
            record(
                AuditAction.VARIANT_READY,
                actor=None,
                target=variant,
                partner_id=variant.partner_id,
                changes={
                    **_label(variant),
                    "sha256": done["sha256"],
                    "size": done["size"],
                    "tensors": len(done["tensors"]),
                    "shared": not done["tensors"],
                },
                at=at,
            )
    return ArtifactVariant.Status.READY


def write_variants(variant_ids: Sequence[int] | None = None) -> dict[str, int]:
    """Write the variants ``variant_ids`` that are not ready (every pending one when
    ``None``): the commitment sealed first, then the marked copy stored under
    ``variant_key`` (or the shared file when no tensor matches) and the row made ready
    (``variant.ready``); a failure leaves it ``failed`` with a short error
    (``variant.failed``) for a later run. Idempotent: a ready variant is left alone, and
    a copy is the same bytes however often it is written. Returns
    ``{"ready": n, "failed": n}``."""
    wanted = Q(status=ArtifactVariant.Status.PENDING)
    if variant_ids is not None:
        wanted = Q(pk__in=list(variant_ids)) & ~Q(status=ArtifactVariant.Status.READY)
    counts = {"ready": 0, "failed": 0}
    for variant in (
        ArtifactVariant.objects.filter(wanted)
        .select_related("artifact__checkpoint__release", "partner")
        .order_by("pk")
    ):
        status = _write_one(variant)
        counts["ready" if status == ArtifactVariant.Status.READY else "failed"] += 1
    return counts
