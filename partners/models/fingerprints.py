"""Leak attribution: per-partner marked copies of a release's weights (docs/fingerprints.md).

A release with fingerprinting on gives each partner its own copy of every marked shard:
the same tensor names, shapes, dtypes and header, with a keyed spread-spectrum mark of
strength ``alpha`` spread over the tensors whose names match the release's patterns.
The key of (release, partner) is derived from the lab's ``FingerprintSecret`` and never
stored; its commitment is (``FingerprintKey``), audited and sealed before the partner's
first byte. A ``Detection`` names the partner whose copy a suspect file derives from.
"""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

__all__ = ["ArtifactVariant", "Detection", "FingerprintKey", "FingerprintSecret"]

_HEX64 = RegexValidator(r"^[0-9a-f]{64}$", "A lower-case hex SHA-256.")


class FingerprintSecret(models.Model):
    """The lab's fingerprint secret, from which every (release, partner) key is derived
    (HKDF-SHA256). 32 random bytes, stored encrypted as the signing keys are (AES-256-GCM
    under the key-encryption key, ``fingerprint-secret:<id>`` as associated data). One row
    is current (the newest); it never leaves the server: not in exports, logs or errors."""

    secret_encrypted = models.BinaryField(editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"fingerprint secret #{self.pk}"


class FingerprintKey(models.Model):
    """The commitment to one partner's key for one release: SHA-256 over a domain tag,
    the release, the partner and the key (docs/fingerprints.md). Written, audited
    (``fingerprint.committed``) and sealed into the Merkle log before any marked byte
    reaches the partner, so a neutral party can later check the key was fixed before a
    leak. The key itself is re-derived when needed, never stored."""

    release = models.ForeignKey(
        "partners.Release", on_delete=models.PROTECT, related_name="fingerprint_keys"
    )
    partner = models.ForeignKey(
        "partners.Partner", on_delete=models.PROTECT, related_name="fingerprint_keys"
    )
    secret = models.ForeignKey(FingerprintSecret, on_delete=models.PROTECT, related_name="+")
    commitment = models.CharField(max_length=64, validators=[_HEX64])
    committed_at = models.DateTimeField(default=timezone.now, editable=False)
    # When the audit checkpoint that covers the commitment's event was signed; a partner's
    # marked copy is served only after it.
    sealed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["release", "partner"]
        constraints = [
            models.UniqueConstraint(
                fields=["release", "partner"], name="fingerprint_key_one_per_partner"
            )
        ]

    def __str__(self) -> str:
        return f"fingerprint key of {self.partner_id} for release {self.release_id}"


class ArtifactVariant(models.Model):
    """One partner's copy of one artifact of a fingerprinted release.

    Created ``pending`` when the partner's grant is issued; the ``slow``-queue task writes
    the marked copy under the partner's own prefix and makes it ``ready`` (its size,
    SHA-256 and storage key), or ``ready`` pointing at the shared file when no tensor of
    the file matches the patterns (``tensors`` empty). A download of a file whose variant
    is not ready is refused, retryably (``variant_not_ready``)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Being written"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    artifact = models.ForeignKey(
        "partners.Artifact", on_delete=models.PROTECT, related_name="variants"
    )
    partner = models.ForeignKey(
        "partners.Partner", on_delete=models.PROTECT, related_name="variants"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    storage_key = models.CharField(max_length=700, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    alpha = models.FloatField()
    patterns = models.JSONField(default=list)
    # The names of the tensors that carry the mark (empty: the shared file is served).
    tensors = models.JSONField(default=list, blank=True)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    ready_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["artifact", "partner"]
        constraints = [
            models.UniqueConstraint(fields=["artifact", "partner"], name="variant_one_per_partner"),
            models.CheckConstraint(
                condition=~models.Q(status="ready")
                | (models.Q(size__isnull=False) & ~models.Q(storage_key="") & ~models.Q(sha256="")),
                name="variant_ready_has_bytes",
            ),
        ]

    def __str__(self) -> str:
        return f"variant of artifact {self.artifact_id} for partner {self.partner_id}"


class Detection(models.Model):
    """A suspect file set checked against every partner that received a release.

    The suspect files are stored under ``accessctl.detections/<id>/`` in artifact storage; the
    ``slow``-queue task writes ``report`` (per-partner z, one-sided false-positive
    probability, verdict, compared tensors, commitments) and its detached Ed25519
    ``signature`` over the report's canonical JSON, verifiable offline with the lab's
    public key."""

    class Status(models.TextChoices):
        PENDING = "pending", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Verdict(models.TextChoices):
        NAMED = "named", "One partner named"
        COLLUSION = "collusion", "Several partners named"
        INCONCLUSIVE = "inconclusive", "Inconclusive"

    release = models.ForeignKey(
        "partners.Release", on_delete=models.PROTECT, related_name="detections"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.CharField(max_length=300)
    # [{"name": str, "size": int, "sha256": str, "storage_key": str}]
    suspect_files = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)
    named = models.JSONField(default=list, blank=True)  # partner slugs
    report = models.JSONField(null=True, blank=True)
    signature = models.JSONField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("run_detection", "Can submit a suspect file set for leak attribution")]

    def __str__(self) -> str:
        return f"detection #{self.pk}"
