from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Length
from django.db.models.lookups import Exact
from django.utils import timezone
from django_countries.fields import CountryField

from partners.rules.leases import LeaseRead
from partners.rules.visibility import jurisdiction_allowed

__all__ = ["Artifact", "Checkpoint", "Release", "default_fingerprint_patterns"]


def default_fingerprint_patterns() -> list[str]:
    """Every weight matrix (the 2-D tensors named ``*.weight``: linear and embedding)."""
    return ["*.weight"]


class Release(models.Model):
    """A model launch, with its export-control policy."""

    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        LAUNCHED = "launched", "Launched"
        CANCELLED = "cancelled", "Cancelled"
        WITHDRAWN = "withdrawn", "Withdrawn (kill switch)"

    class Policy(models.TextChoices):
        ALLOW_LIST = "allow", "Only the listed jurisdictions"
        DENY_LIST = "deny", "All but the listed jurisdictions"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    public_release_at = models.DateTimeField(help_text="When the model is launched publicly.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PLANNED)
    policy = models.CharField(max_length=8, choices=Policy.choices, default=Policy.DENY_LIST)
    policy_jurisdictions = CountryField(multiple=True, blank=True)
    quota_factor = models.PositiveSmallIntegerField(
        default=4,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="The largest byte quota a partner may ask for, as a multiple of the "
        "checkpoint's total size (4: four full downloads).",
    )
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_reason = models.CharField(max_length=300, blank=True)
    # Leak attribution (docs/fingerprints.md): each partner gets its own marked copy of
    # every safetensors file whose tensors match the patterns.
    fingerprint = models.BooleanField(
        default=False,
        help_text="Give each partner its own traceable copy of the weights (docs/fingerprints.md).",
    )
    fingerprint_patterns = models.JSONField(
        default=default_fingerprint_patterns,
        blank=True,
        help_text="Glob patterns of the tensor names to mark (2-D weights only), "
        'e.g. ["*.weight"].',
    )
    fingerprint_alpha = models.FloatField(
        default=1e-3,
        validators=[MinValueValidator(1e-5), MaxValueValidator(1e-2)],
        help_text="Mark strength, as a fraction of each tensor's standard deviation "
        "(1e-3: invisible in outputs, survives 4-bit quantization).",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-public_release_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(policy__in=["allow", "deny"]), name="release_policy_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(quota_factor__gte=1, quota_factor__lte=1000),
                name="release_quota_factor_range",
            ),
            models.CheckConstraint(
                condition=models.Q(fingerprint_alpha__gte=1e-5, fingerprint_alpha__lte=1e-2),
                name="release_fingerprint_alpha_range",
            ),
            models.CheckConstraint(
                condition=models.Q(status="withdrawn", withdrawn_at__isnull=False)
                | (~models.Q(status="withdrawn") & models.Q(withdrawn_at__isnull=True)),
                name="release_withdrawn_has_time",
            ),
        ]
        permissions = [("withdraw_release", "Can withdraw a whole release (kill switch)")]

    def __str__(self) -> str:
        return self.slug

    def jurisdiction_allowed(self, code: str) -> bool:
        """The export rule of ``decide``, for one jurisdiction."""
        listed = frozenset(str(c) for c in self.policy_jurisdictions)
        return jurisdiction_allowed(self.policy, listed, code)


class Checkpoint(models.Model):
    """One set of weights of a release, made of artifacts."""

    class Status(models.TextChoices):
        AVAILABLE = "available", "Available"
        PULLED = "pulled", "Pulled"

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="checkpoints")
    tag = models.SlugField(max_length=64)
    training_step = models.PositiveBigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.AVAILABLE)
    pulled_at = models.DateTimeField(null=True, blank=True)
    pulled_reason = models.CharField(max_length=300, blank=True)
    registered_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["release", "tag"]
        constraints = [
            models.UniqueConstraint(fields=["release", "tag"], name="checkpoint_unique_tag"),
            models.CheckConstraint(
                condition=models.Q(status="available", pulled_at__isnull=True)
                | models.Q(status="pulled", pulled_at__isnull=False),
                name="checkpoint_pulled_has_time",
            ),
        ]
        permissions = [("pull_checkpoint", "Can pull a checkpoint")]

    def __str__(self) -> str:
        return f"{self.release.slug}:{self.tag}"


class Artifact(models.Model):
    """One file of a checkpoint, as registered: its bytes never change afterwards."""

    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.PROTECT, related_name="artifacts")
    path = models.CharField(max_length=500)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(
        max_length=64, validators=[RegexValidator(r"^[0-9a-f]{64}$", "A lower-case hex SHA-256.")]
    )
    storage_key = models.CharField(max_length=700)
    # Not a column: the file's lease as ``queries.download_target`` read it with the
    # grant, so the debit needs no statement to read it (``actions.authorize_download``).
    lease_read: LeaseRead | None = None
    # Not a column: set by the reads that give a partner its own copy of a fingerprinted
    # release's file (``queries.download_target``, ``queries.partner_files``): the status
    # of that partner's variant, or None for the shared file.
    variant_status: str | None = None

    class Meta:
        ordering = ["checkpoint", "path"]
        constraints = [
            models.UniqueConstraint(fields=["checkpoint", "path"], name="artifact_unique_path"),
            models.CheckConstraint(
                condition=Exact(Length("sha256"), 64), name="artifact_sha256_length"
            ),
        ]

    def __str__(self) -> str:
        return self.path
