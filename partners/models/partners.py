from django.conf import settings
from django.db import models
from django.utils import timezone
from django_countries.fields import CountryField

from partners.networks import validate_networks

__all__ = ["Membership", "Partner", "PartnerContact"]


class Partner(models.Model):
    class Kind(models.TextChoices):
        GPU_VENDOR = "gpu_vendor", "GPU vendor"
        ACCELERATOR_VENDOR = "accelerator_vendor", "Accelerator vendor"
        CLOUD_PROVIDER = "cloud_provider", "Cloud provider"
        SYSTEM_INTEGRATOR = "system_integrator", "System integrator"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        TERMINATED = "terminated", "Terminated"

    slug = models.SlugField(max_length=64, unique=True)
    legal_name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    jurisdiction = CountryField(help_text="Country whose export rules apply to this partner.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.CharField(max_length=300, blank=True)
    nda_reference = models.CharField(max_length=100)
    nda_expires_at = models.DateTimeField()
    allowed_networks = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_networks],
        help_text="Address ranges (CIDR) downloads may come from; empty allows any.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["active", "suspended", "terminated"]),
                name="partner_status_valid",
            ),
        ]
        permissions = [("suspend_partner", "Can suspend, reinstate or terminate a partner")]

    def __str__(self) -> str:
        return self.slug


class PartnerContact(models.Model):
    """Someone at a partner who is told about windows and grants."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=200)
    email = models.EmailField()
    role = models.CharField(max_length=100, blank=True)
    notify = models.BooleanField(default=True)

    class Meta:
        ordering = ["partner", "name"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "email"], name="contact_unique_email"),
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


class Membership(models.Model):
    """A user who acts for a partner. A user belongs to at most one partner."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="partner_membership"
    )
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="memberships")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["partner", "user"]

    def __str__(self) -> str:
        return f"{self.user} @ {self.partner}"
