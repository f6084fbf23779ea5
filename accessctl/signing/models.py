from django.db import models
from django.utils import timezone

__all__ = ["SigningKey"]


class SigningKey(models.Model):
    """An Ed25519 key pair. The private half is stored encrypted (AES-256-GCM under the
    key-encryption key from settings, the key id as associated data).

    One key is active and signs; retired keys still verify what they signed, so rotating
    never breaks outstanding grants; revoked keys verify nothing.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"
        REVOKED = "revoked", "Revoked"

    kid = models.CharField("key id", max_length=64, unique=True)
    public_key = models.BinaryField(max_length=32)
    private_key_encrypted = models.BinaryField(editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"],
                condition=models.Q(status="active"),
                name="signing_one_active_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kid} ({self.status})"
