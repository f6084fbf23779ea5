from django.conf import settings
from django.db import models
from django.utils import timezone

from partners.networks import validate_networks

__all__ = ["AccessToken"]


class AccessToken(models.Model):
    """An API token. Only a keyed digest of the secret is stored; the secret is shown
    once, when the token is made. ``prefix`` (the first characters) identifies a token in
    lists and logs without revealing it."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="access_tokens"
    )
    partner = models.ForeignKey(
        "partners.Partner",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="access_tokens",
        help_text="Empty for staff automation tokens.",
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, db_index=True)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    pepper_id = models.CharField(max_length=16, editable=False)
    scopes = models.JSONField(default=list)
    allowed_networks = models.JSONField(default=list, blank=True, validators=[validate_networks])
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("created_at")),
                name="token_expires_after_creation",
            ),
        ]
        permissions = [("revoke_accesstoken", "Can revoke API tokens")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def is_staff_token(self) -> bool:
        return self.partner_id is None
