from django.db import models
from django.utils import timezone

__all__ = ["Notification"]


class Notification(models.Model):
    """One email to one person, written in the transaction of the change it announces.

    ``key`` names the occasion (``grant.issued:42``); with ``email`` it is unique, so a
    transition or cascade that runs twice queues nothing twice. The sender task renders
    ``templates/email/<kind>.txt`` and ``.html`` from ``context`` (plain values, never a
    secret), retries with backoff and gives up after a few attempts, saying why.
    """

    class Kind(models.TextChoices):
        WINDOW_OPENED = "window_opened", "Window opened"
        WINDOW_CLOSING = "window_closing", "Window closing soon"
        WINDOW_CLOSED = "window_closed", "Window closed"
        EMBARGO_LIFTED = "embargo_lifted", "Embargo lifted"
        GRANT_ISSUED = "grant_issued", "Grant issued"
        GRANT_EXPIRING = "grant_expiring", "Grant expiring soon"
        GRANT_REVOKED = "grant_revoked", "Access revoked"
        REQUEST_APPROVED = "request_approved", "Request approved"
        REQUEST_REJECTED = "request_rejected", "Request rejected"
        PARTNER_SUSPENDED = "partner_suspended", "Partner suspended"
        REQUEST_PENDING = "request_pending", "Request waiting for approval (staff)"
        REVOCATION_SUMMARY = "revocation_summary", "Revocation summary (staff)"
        STAFF_DIGEST = "staff_digest", "Daily digest (staff)"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    key = models.CharField(max_length=120)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    email = models.EmailField()
    partner = models.ForeignKey(
        "partners.Partner", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    context = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["key", "email"], name="notification_once_per_key"),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.kind} to {self.email}"
