from django.conf import settings
from django.db import models
from django.utils import timezone

__all__ = ["DownloadLease", "Grant", "GrantApproval", "GrantRequest"]


class GrantRequest(models.Model):
    """A partner's ask for a checkpoint, decided by staff.

    Early access (before the release's public time) needs ``approvals_required`` distinct
    staff approvals, fixed when the request is made.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    partner = models.ForeignKey(
        "partners.Partner", on_delete=models.PROTECT, related_name="grant_requests"
    )
    checkpoint = models.ForeignKey(
        "partners.Checkpoint", on_delete=models.PROTECT, related_name="grant_requests"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    quota_bytes = models.PositiveBigIntegerField()
    note = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    approvals_required = models.PositiveSmallIntegerField(default=1)
    decided_at = models.DateTimeField(null=True, blank=True)
    rejected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    rejection_reason = models.CharField(max_length=300, blank=True)
    reminded_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When staff were last reminded."
    )

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "checkpoint"],
                condition=models.Q(status="pending"),
                name="grant_request_one_pending",
                violation_error_message=(
                    "This partner already has a pending request for this checkpoint."
                ),
            ),
        ]
        permissions = [("approve_grantrequest", "Can approve or reject grant requests")]

    def __str__(self) -> str:
        return f"request #{self.pk}"


class GrantApproval(models.Model):
    request = models.ForeignKey(GrantRequest, on_delete=models.PROTECT, related_name="approvals")
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["approved_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "approver"], name="grant_approval_distinct_approvers"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.approver} approved request #{self.request_id}"


class Grant(models.Model):
    """Permission for one partner to download one checkpoint, inside one window.

    The database keeps ``bytes_used`` within ``quota_bytes``, one active grant per partner
    and checkpoint, and (by trigger, ``partners.db_rules``) the expiry inside the window
    and the grant's partner and release equal to its window's.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"
        EXHAUSTED = "exhausted", "Exhausted"

    partner = models.ForeignKey("partners.Partner", on_delete=models.PROTECT, related_name="grants")
    checkpoint = models.ForeignKey(
        "partners.Checkpoint", on_delete=models.PROTECT, related_name="grants"
    )
    window = models.ForeignKey(
        "partners.EmbargoWindow", on_delete=models.PROTECT, related_name="grants"
    )
    request = models.OneToOneField(
        GrantRequest, on_delete=models.PROTECT, null=True, blank=True, related_name="grant"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    issued_at = models.DateTimeField(default=timezone.now)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    expires_at = models.DateTimeField()
    quota_bytes = models.PositiveBigIntegerField()
    bytes_used = models.PositiveBigIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    revoke_reason = models.CharField(max_length=300, blank=True)
    revocation = models.ForeignKey(
        "partners.Revocation",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="grants",
        help_text="The revocation that ended this grant.",
    )

    class Meta:
        ordering = ["-issued_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(bytes_used__lte=models.F("quota_bytes")),
                name="grant_within_quota",
            ),
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("issued_at")),
                name="grant_expires_after_issue",
                violation_error_message="A grant must expire after it is issued.",
            ),
            models.CheckConstraint(
                condition=models.Q(status="revoked", revoked_at__isnull=False)
                | (~models.Q(status="revoked") & models.Q(revoked_at__isnull=True)),
                name="grant_revoked_has_time",
            ),
            models.UniqueConstraint(
                fields=["partner", "checkpoint"],
                condition=models.Q(status="active"),
                name="grant_one_active_per_checkpoint",
                violation_error_message=(
                    "This partner already has an active grant for this checkpoint."
                ),
            ),
        ]
        indexes = [models.Index(fields=["status", "expires_at"])]
        permissions = [
            ("issue_grant", "Can issue grants"),
            ("revoke_grant", "Can revoke grants"),
        ]

    def __str__(self) -> str:
        return f"grant #{self.pk}"

    @property
    def bytes_left(self) -> int:
        return max(self.quota_bytes - self.bytes_used, 0)


class DownloadLease(models.Model):
    """The byte intervals of one file a grant has paid for, and until when that counts.

    Written only by ``partners.actions.downloads`` under the row's lock; the rule is
    ``partners.rules.leases.lease_charge`` (docs/decisions.md, *Fair quota*).
    """

    grant = models.ForeignKey(Grant, on_delete=models.CASCADE, related_name="leases")
    artifact = models.ForeignKey(
        "partners.Artifact", on_delete=models.CASCADE, related_name="leases"
    )
    opened_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    # [[start, end), ...]: sorted, disjoint, merged; bytes start..end-1 are paid for.
    covered = models.JSONField(default=list)
    reauthorizations = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["grant", "artifact"], name="lease_one_per_file"),
        ]

    def __str__(self) -> str:
        return f"lease of {self.artifact_id} for grant #{self.grant_id}"
