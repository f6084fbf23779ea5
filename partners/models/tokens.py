from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from partners.networks import validate_networks

__all__ = ["AccessToken", "TokenInvitation"]


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


class TokenInvitation(models.Model):
    """Staff asked for a partner member's token; the member claims it with a one-time code
    sent to their own address, and only then is the token (and its secret) made.

    Only a keyed digest of the claim code is stored, so neither the database nor the staff
    member who asked can claim it; the code works once, until ``claim_by``."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="token_invitations"
    )
    partner = models.ForeignKey(
        "partners.Partner", on_delete=models.PROTECT, related_name="token_invitations"
    )
    name = models.CharField(max_length=100)
    scopes = models.JSONField(default=list)
    allowed_networks = models.JSONField(default=list, blank=True, validators=[validate_networks])
    token_expires_at = models.DateTimeField(help_text="When the token, once claimed, expires.")
    code_digest = models.CharField(max_length=64, unique=True, editable=False)
    pepper_id = models.CharField(max_length=16, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    claim_by = models.DateTimeField(help_text="The emailed link works until then, once.")
    claimed_at = models.DateTimeField(null=True, blank=True)
    token = models.OneToOneField(
        AccessToken, on_delete=models.PROTECT, null=True, blank=True, related_name="invitation"
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(claim_by__gt=models.F("created_at")),
                name="invitation_claim_by_after_creation",
            ),
            models.CheckConstraint(
                condition=models.Q(claimed_at__isnull=True) | models.Q(token__isnull=False),
                name="invitation_claimed_has_token",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} for {self.user}"

    def state_at(self, at: datetime) -> str:
        if self.claimed_at is not None:
            return "claimed"
        if self.cancelled_at is not None:
            return "cancelled"
        return "expired" if self.claim_by <= at else "pending"
