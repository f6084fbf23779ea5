from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, BinaryIO, cast

from django.db import transaction
from django.db.models import Q
from django.utils.translation import ngettext

from accessctl.actors import Actor
from accessctl.audit.events import AuditAction, record
from partners.authority import Operation, authorize
from partners.errors import ActionError
from partners.models import Artifact, ArtifactVariant, Checkpoint, Grant, Release, Revocation
from partners.storage import KEY_MAX_BYTES, artifact_key, path_problem, verify_stored

from ._common import (
    integrity_as_action_error,
    now,
    require_not_withdrawn,
    save_changes,
    unapproved_grants,
    validate,
)
from .fingerprints import prepare_release_variants
from .revocations import start_revocation

__all__ = [
    "FINGERPRINT_FIELDS",
    "MAX_PATTERNS",
    "ArtifactSpec",
    "check_patterns",
    "create_release",
    "pull_checkpoint",
    "register_checkpoint",
    "update_release",
]

RELEASE_EDITABLE_FIELDS = (
    "name",
    "public_release_at",
    "status",
    "quota_factor",
    "fingerprint",
    "fingerprint_patterns",
    "fingerprint_alpha",
)
FINGERPRINT_FIELDS = ("fingerprint", "fingerprint_patterns", "fingerprint_alpha")
MAX_PATTERNS = 32


@transaction.atomic
def create_release(
    *,
    actor: Actor,
    slug: str,
    name: str,
    public_release_at: datetime,
    policy: str = Release.Policy.DENY_LIST,
    policy_jurisdictions: Sequence[str] = (),
    quota_factor: int = 4,
    fingerprint: bool = False,
    fingerprint_patterns: Sequence[str] | None = None,
    fingerprint_alpha: float | None = None,
) -> Release:
    """A new release; ``fingerprint`` gives each partner its own marked copy of its
    safetensors files (docs/fingerprints.md), with the tensor-name ``fingerprint_patterns``
    (default ``["*.weight"]``) and strength ``fingerprint_alpha`` (default 1e-3)."""
    authorize(actor, Operation.RELEASE_CREATE)
    if fingerprint_patterns is not None:
        check_patterns(fingerprint_patterns)
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
        fingerprint=fingerprint,
        **({"fingerprint_patterns": list(fingerprint_patterns)} if fingerprint_patterns else {}),
        **({"fingerprint_alpha": fingerprint_alpha} if fingerprint_alpha is not None else {}),
    )
    validate(release)
    with integrity_as_action_error():
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
            **(
                {
                    "fingerprint": [None, True],
                    "fingerprint_patterns": [None, release.fingerprint_patterns],
                    "fingerprint_alpha": [None, release.fingerprint_alpha],
                }
                if fingerprint
                else {}
            ),
        },
    )
    return release


@transaction.atomic
def update_release(*, actor: Actor, release: Release, **values: Any) -> Release:
    """Rename, reschedule or mark a release launched. Its slug and export policy are fixed:
    windows and grants were decided under them."""
    authorize(actor, Operation.RELEASE_CHANGE, release)
    require_not_withdrawn(release)
    if values.get("status") == Release.Status.WITHDRAWN:
        raise ActionError(
            "release_withdrawn",
            "A release is withdrawn only by the kill switch (its Kill switch button, with a "
            "reason), not by setting its status.",
        )
    if "public_release_at" in values:
        _check_public_time(release, values["public_release_at"])
    if "fingerprint_patterns" in values:
        check_patterns(values["fingerprint_patterns"])
    release, changes = save_changes(Release, release.pk, values, RELEASE_EDITABLE_FIELDS)
    # The row is locked (save_changes): no grant is issued meanwhile (``_issue`` locks it
    # too), so no variant appears between this check and the commit.
    if (
        set(changes) & set(FINGERPRINT_FIELDS)
        and ArtifactVariant.objects.filter(artifact__checkpoint__release=release).exists()
    ):
        raise ActionError(
            "fingerprint_fixed",
            f"Partners' marked copies of release {release.slug} exist already: its "
            "fingerprint settings are fixed (their keys are committed and their copies "
            "may be out). Make a new release to change them.",
        )
    if release.fingerprint and {"fingerprint", "fingerprint_patterns"} & set(changes):
        check_patterns_mark_something(
            release,
            release.fingerprint_patterns,
            Artifact.objects.filter(checkpoint__release=release),
        )
    if changes:
        record(AuditAction.RELEASE_UPDATED, actor=actor, target=release, changes=changes)
    if "fingerprint" in changes and release.fingerprint:
        # Turned on: every partner holding a live grant gets its commitment and copies.
        prepare_release_variants(actor=actor, release=release, at=now())
    return release


def check_patterns(patterns: Any) -> None:
    """Refuse (``fingerprint_patterns_invalid``) anything but a list of 1 to
    ``MAX_PATTERNS`` non-empty glob patterns of at most 200 characters."""
    if (
        not isinstance(patterns, list | tuple)
        or not 1 <= len(patterns) <= MAX_PATTERNS
        or not all(isinstance(p, str) and p.strip() and len(p) <= 200 for p in patterns)
    ):
        raise ActionError(
            "fingerprint_patterns_invalid",
            f"Fingerprint patterns are a list of 1 to {MAX_PATTERNS} non-empty glob patterns "
            'of tensor names, each at most 200 characters (e.g. ["*.weight"]).',
        )


def _marked_in(artifact: Artifact, patterns: Sequence[str]) -> int | None:
    """How many tensors of a registered safetensors file ``patterns`` mark, from its header
    alone; ``None`` when the stored file cannot be read as safetensors."""
    from partners.fingerprints import FingerprintError, matched_tensors, read_header
    from partners.storage import artifact_storage

    try:
        with artifact_storage().open(artifact.storage_key, "rb") as handle:
            return len(matched_tensors(read_header(cast(BinaryIO, handle)), list(patterns)))
    except (FingerprintError, OSError, ValueError):
        return None


def check_patterns_mark_something(
    release: Release, patterns: Sequence[str], artifacts: Iterable[Artifact]
) -> None:
    """Refuse (``fingerprint_patterns_match_nothing``) fingerprint ``patterns`` under which
    no tensor of any of ``artifacts``' ``.safetensors`` files would be marked (headers only
    are read). Files that are not in storage or not readable are not counted; with no
    readable safetensors file at all there is nothing to check."""
    files = [a for a in artifacts if a.path.endswith(".safetensors")]
    counts = [_marked_in(a, patterns) for a in files]
    read = [c for c in counts if c is not None]
    if read and not any(read):
        raise ActionError(
            "fingerprint_patterns_match_nothing",
            f"Fingerprint patterns {list(patterns)!r} mark no tensor of release "
            f"{release.slug}'s {len(read)} safetensors "
            f"{ngettext('file', 'files', len(read))}: partners would get unmarked copies. "
            "Only 2-D F32, F16 and BF16 tensors whose names match are marked "
            '(e.g. ["*.weight"]).',
        )


def _check_public_time(release: Release, public_release_at: datetime | None) -> None:
    """The two-person rule, for the public time (docs/decisions.md).

    Before the public time a grant needs the early-access approvals; after it, one person
    may issue one. So the time never moves earlier (that would let one person issue early
    access directly: a launch brought forward is done by early-access requests), and it
    moves later only when no grant that still serves would become early access without
    its approvals.
    """
    # Locks the row: a grant cannot be issued against the old time while we decide
    # (``_issue`` locks the same row).
    current = Release.objects.select_for_update().get(pk=release.pk)
    old = current.public_release_at
    if public_release_at is None or public_release_at == old:
        return
    if public_release_at < old:
        raise ActionError(
            "public_time_earlier",
            f"Release {current.slug}'s public time never moves earlier; for a launch brought "
            "forward, partners file early-access requests and staff approve them.",
        )
    live = Grant.objects.filter(
        checkpoint__release=current, status__in=[Grant.Status.ACTIVE, Grant.Status.EXHAUSTED]
    )
    blocking = sorted(unapproved_grants(live).values_list("pk", flat=True))
    if blocking:
        shown = ", ".join(f"#{pk}" for pk in blocking[:10])
        more = f" and {len(blocking) - 10} more" if len(blocking) > 10 else ""
        raise ActionError(
            "early_access_unapproved",
            f"Moving release {current.slug}'s public time later would make "
            f"{ngettext('grant', 'grants', len(blocking))} {shown}"
            f"{more} early access without the early-access approvals; revoke them first.",
        )


@dataclass(frozen=True, slots=True)
class ArtifactSpec:
    """A file to register. ``storage_key`` may be left empty: the server derives it
    (``artifact_key``); any other value than the derived one is refused."""

    path: str
    size: int
    sha256: str
    storage_key: str = ""


@dataclass(frozen=True, slots=True)
class Registration:
    checkpoint: Checkpoint
    added: list[str]
    unchanged: list[str]


def _confined(release: Release, tag: str, artifacts: Sequence[ArtifactSpec]) -> list[ArtifactSpec]:
    """The specs with their derived keys; refuses a bad path or any other key."""
    seen: set[str] = set()
    confined = []
    for spec in artifacts:
        problem = path_problem(spec.path)
        key = artifact_key(release.slug, tag, spec.path)
        if problem is None and len(key.encode()) > KEY_MAX_BYTES:
            problem = f"the storage key would be longer than {KEY_MAX_BYTES} bytes"
        if problem is None and spec.path in seen:
            problem = "the path is listed twice"
        if problem:
            raise ActionError("artifact_path_invalid", f"File {spec.path!r}: {problem}.")
        if spec.storage_key and spec.storage_key != key:
            raise ActionError(
                "storage_key_not_derived",
                f"File {spec.path!r} must be stored at {key!r}: a checkpoint's files live "
                "under its own release and tag.",
            )
        seen.add(spec.path)
        confined.append(replace(spec, storage_key=key))
    return confined


def _changed(existing: dict[str, Artifact], specs: Sequence[ArtifactSpec]) -> None:
    changed = [
        spec.path
        for spec in specs
        if spec.path in existing
        and (existing[spec.path].sha256, existing[spec.path].size) != (spec.sha256, spec.size)
    ]
    if changed:
        raise ActionError(
            "artifact_changed",
            f"{len(changed)} registered {ngettext('file', 'files', len(changed))} changed on disk "
            "and were not replaced: " + ", ".join(sorted(changed)),
        )


def _refuse_embargoed_bytes(release: Release, specs: Sequence[ArtifactSpec]) -> None:
    """Refuse bytes that are already another release's and that its own rules would not
    serve yet: its public time is later than this release's (or now), or it was
    withdrawn. Otherwise a grant on this checkpoint would serve them early."""
    if not specs:
        return
    horizon = max(now(), release.public_release_at)
    clash = (
        Artifact.objects.filter(sha256__in={s.sha256 for s in specs})
        .exclude(checkpoint__release=release)
        .filter(
            Q(checkpoint__release__public_release_at__gt=horizon)
            | Q(checkpoint__release__status=Release.Status.WITHDRAWN)
        )
        .values_list("sha256", flat=True)
    )
    found = set(clash)
    if found:
        paths = sorted(s.path for s in specs if s.sha256 in found)
        raise ActionError(
            "artifact_embargoed_elsewhere",
            f"{len(paths)} {ngettext('file holds', 'files hold', len(paths))} the bytes of a "
            "release that is not public yet (or was "
            f"withdrawn): {', '.join(paths)}.",
        )


@transaction.atomic
def register_checkpoint(
    *,
    actor: Actor,
    release: Release,
    tag: str,
    artifacts: Sequence[ArtifactSpec],
    training_step: int | None = None,
) -> Registration:
    """Record a checkpoint and its files; safe to repeat.

    Files belong to their checkpoint: each is stored at ``artifact_key(release, tag,
    path)`` (any other key is refused), must already be in artifact storage with its
    declared size (and SHA-256, where the storage can tell), and may not carry the bytes
    of a release that is not public yet. A file already registered with the same size
    and digest is left alone; one whose bytes differ is refused (``artifact_changed``) and
    nothing at all is written, because partners may already hold the registered bytes.
    """
    authorize(actor, Operation.CHECKPOINT_REGISTER, release)
    require_not_withdrawn(release)
    if not artifacts:
        raise ActionError("no_artifacts", "A checkpoint needs at least one file.")
    specs = _confined(release, tag, artifacts)

    # Storage is checked before any row is locked (hashing a large file takes a while).
    # Artifacts are never deleted, so a file registered by the time the lock is taken
    # below was registered by someone whose own check passed.
    registered = {
        a.path: a for a in Artifact.objects.filter(checkpoint__release=release, checkpoint__tag=tag)
    }
    _changed(registered, specs)
    for spec in specs:
        if spec.path not in registered:
            verify_stored(spec.storage_key, spec.size, spec.sha256)

    checkpoint, created = Checkpoint.objects.select_for_update().get_or_create(
        release=release, tag=tag, defaults={"training_step": training_step}
    )
    if not created and checkpoint.status == Checkpoint.Status.PULLED:
        raise ActionError(
            "checkpoint_pulled", f"Checkpoint {checkpoint} was pulled; register a new tag."
        )
    existing = {a.path: a for a in checkpoint.artifacts.all()}
    _changed(existing, specs)
    new = [spec for spec in specs if spec.path not in existing]
    _refuse_embargoed_bytes(release, new)
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
    if release.fingerprint and rows:
        check_patterns_mark_something(
            release, release.fingerprint_patterns, [*existing.values(), *rows]
        )
    Artifact.objects.bulk_create(rows)
    if new and not created:
        # Files added to a checkpoint partners already hold grants for: their copies too.
        prepare_release_variants(actor=actor, release=release, at=now())
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
        unchanged=[s.path for s in specs if s.path in existing],
    )


@transaction.atomic
def pull_checkpoint(*, actor: Actor, checkpoint: Checkpoint, reason: str) -> Checkpoint:
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
