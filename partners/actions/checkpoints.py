from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction

from accessctl.audit.events import AuditAction, record
from partners.authority import Operation, authorize
from partners.errors import ActionError
from partners.models import Artifact, Checkpoint, Release, Revocation

from ._common import now, require_not_withdrawn, save_changes, validate
from .revocations import start_revocation

__all__ = [
    "ArtifactSpec",
    "create_release",
    "pull_checkpoint",
    "register_checkpoint",
    "update_release",
]

RELEASE_EDITABLE_FIELDS = ("name", "public_release_at", "status", "quota_factor")


@transaction.atomic
def create_release(
    *,
    actor: Any,
    slug: str,
    name: str,
    public_release_at: datetime,
    policy: str = Release.Policy.DENY_LIST,
    policy_jurisdictions: Sequence[str] = (),
    quota_factor: int = 4,
) -> Release:
    authorize(actor, Operation.RELEASE_CREATE)
    if Release.objects.filter(slug=slug).exists():
        raise ActionError("release_exists", f"A release with the slug {slug!r} already exists.")
    # django-countries' multiple field takes a list; its stubs say str.
    release = Release(  # type: ignore[misc]
        slug=slug,
        name=name,
        public_release_at=public_release_at,
        policy=policy,
        policy_jurisdictions=list(policy_jurisdictions),
        quota_factor=quota_factor,
    )
    validate(release)
    release.save()
    record(
        AuditAction.RELEASE_CREATED,
        actor=actor,
        target=release,
        changes={
            "public_release_at": [None, public_release_at.isoformat()],
            "policy": [None, policy],
            "policy_jurisdictions": [None, sorted(str(c) for c in release.policy_jurisdictions)],
            "quota_factor": [None, quota_factor],
        },
    )
    return release


@transaction.atomic
def update_release(*, actor: Any, release: Release, **values: Any) -> Release:
    """Rename, reschedule or mark a release launched. Its slug and export policy are fixed:
    windows and grants were decided under them."""
    authorize(actor, Operation.RELEASE_CHANGE, release)
    require_not_withdrawn(release)
    if values.get("status") == Release.Status.WITHDRAWN:
        raise ActionError(
            "release_withdrawn",
            "A withdrawn release cannot change; the kill switch is the only way to withdraw one.",
        )
    release, changes = save_changes(Release, release.pk, values, RELEASE_EDITABLE_FIELDS)
    if changes:
        record(AuditAction.RELEASE_UPDATED, actor=actor, target=release, changes=changes)
    return release


@dataclass(frozen=True, slots=True)
class ArtifactSpec:
    path: str
    size: int
    sha256: str
    storage_key: str


@dataclass(frozen=True, slots=True)
class Registration:
    checkpoint: Checkpoint
    added: list[str]
    unchanged: list[str]


@transaction.atomic
def register_checkpoint(
    *,
    actor: Any,
    release: Release,
    tag: str,
    artifacts: Sequence[ArtifactSpec],
    training_step: int | None = None,
) -> Registration:
    """Record a checkpoint and its files; safe to repeat.

    A file already registered with the same size and digest is left alone; one whose
    bytes differ is refused (``artifact_changed``) and nothing at all is written, because
    partners may already hold the registered bytes.
    """
    authorize(actor, Operation.CHECKPOINT_REGISTER, release)
    require_not_withdrawn(release)
    if not artifacts:
        raise ActionError("no_artifacts", "A checkpoint needs at least one file.")
    checkpoint, created = Checkpoint.objects.select_for_update().get_or_create(
        release=release, tag=tag, defaults={"training_step": training_step}
    )
    if not created and checkpoint.status == Checkpoint.Status.PULLED:
        raise ActionError(
            "checkpoint_pulled", f"Checkpoint {checkpoint} was pulled; register a new tag."
        )
    existing = {a.path: a for a in checkpoint.artifacts.all()}
    changed = [
        spec.path
        for spec in artifacts
        if spec.path in existing
        and (existing[spec.path].sha256, existing[spec.path].size) != (spec.sha256, spec.size)
    ]
    if changed:
        raise ActionError(
            "artifact_changed",
            f"{len(changed)} registered file(s) changed on disk and were not replaced: "
            + ", ".join(sorted(changed)),
        )
    new = [spec for spec in artifacts if spec.path not in existing]
    rows = [
        Artifact(
            checkpoint=checkpoint,
            path=s.path,
            size=s.size,
            sha256=s.sha256,
            storage_key=s.storage_key,
        )
        for s in new
    ]
    for row in rows:
        validate(row, exclude=["checkpoint"])
    Artifact.objects.bulk_create(rows)
    if new:
        record(
            AuditAction.CHECKPOINT_REGISTERED,
            actor=actor,
            target=checkpoint,
            changes={
                "files_added": len(new),
                "bytes_added": sum(s.size for s in new),
                "training_step": training_step,
                "new_checkpoint": created,
            },
        )
    return Registration(
        checkpoint=checkpoint,
        added=[s.path for s in new],
        unchanged=[s.path for s in artifacts if s.path in existing],
    )


@transaction.atomic
def pull_checkpoint(*, actor: Any, checkpoint: Checkpoint, reason: str) -> Checkpoint:
    """Withdraw a checkpoint: every download of it stops now; the cascade revokes its
    grants."""
    authorize(actor, Operation.CHECKPOINT_PULL, checkpoint)
    if not reason.strip():
        raise ActionError("reason_required", "Say why: the reason is kept in the audit trail.")
    checkpoint = Checkpoint.objects.select_for_update().get(pk=checkpoint.pk)
    if checkpoint.status == Checkpoint.Status.PULLED:
        return checkpoint
    at = now()
    checkpoint.status = Checkpoint.Status.PULLED
    checkpoint.pulled_at = at
    checkpoint.pulled_reason = reason
    checkpoint.save(update_fields=["status", "pulled_at", "pulled_reason"])
    revocation = start_revocation(
        Revocation.Scope.CHECKPOINT, checkpoint, actor=actor, reason=reason, at=at
    )
    record(
        AuditAction.CHECKPOINT_PULLED,
        actor=actor,
        target=checkpoint,
        changes={
            "reason": reason,
            "status": ["available", "pulled"],
            "revocation": revocation.pk,
        },
        at=at,
    )
    return checkpoint
