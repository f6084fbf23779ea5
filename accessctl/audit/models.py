from django.conf import settings
from django.db import models

from accessctl_wire import formats

__all__ = ["AuditEvent", "Outcome"]


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    DENIED = "denied", "Denied"
    FAILURE = "failure", "Failure"


class AuditEvent(models.Model):
    """An immutable record of one change or decision.

    Actor and partner are references without database constraints: evidence must outlive
    the rows it talks about, and it is never cascaded or nulled. ``actor_label`` keeps a
    readable name for the day the user is gone.
    """

    occurred_at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=64, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    reason = models.CharField(max_length=64, blank=True)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    target_label = models.CharField(max_length=300, blank=True)
    partner = models.ForeignKey(
        "partners.Partner",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    client_address = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["target_type", "target_id"]),
            models.Index(fields=["partner", "occurred_at"]),
            models.Index(fields=["outcome", "occurred_at"]),
        ]
        permissions = [("export_auditevent", "Can export the audit trail")]

    def __str__(self) -> str:
        return f"{formats.moment(self.occurred_at)} {self.action} {self.target_label}".rstrip()

    @property
    def stated_reason(self) -> str:
        """Why, as a reviewer reads it: the reason the operator typed (``changes["reason"]``,
        or an approver's ``note``), else the refusal code of a denial or failure, else ``""``.
        (``reason`` alone is the refusal code, empty for every change.)"""
        changes = self.changes if isinstance(self.changes, dict) else {}
        typed = changes.get("reason") or changes.get("note")
        if isinstance(typed, str) and typed.strip():
            return typed
        return self.reason


# Leaves and nodes are shown nowhere (no admin, no message): no __str__ to keep tested.
class AuditLeaf(models.Model):  # noqa: DJ008
    """Leaf ``index`` of the sealed log: the hash of event ``event_id``'s canonical form.

    Leaves are appended by the sealer in the order it finds committed events (not by id:
    a transaction that commits late is sealed late), never changed, and kept when
    retention deletes old events, so proofs for later events still work.
    """

    index = models.BigIntegerField(primary_key=True)
    event_id = models.BigIntegerField(unique=True)
    hash = models.BinaryField()


class AuditNode(models.Model):  # noqa: DJ008 (as AuditLeaf)
    """The hash of a perfect subtree: ``2**level`` leaves from ``index * 2**level``
    (level >= 1; level 0 is ``AuditLeaf``)."""

    pk = models.CompositePrimaryKey("level", "index")
    level = models.PositiveSmallIntegerField()
    index = models.BigIntegerField()
    hash = models.BinaryField()


class AuditCheckpoint(models.Model):
    """A signed statement of the log: its size and root hash at ``sealed_at``."""

    tree_size = models.BigIntegerField(unique=True)
    root_hash = models.BinaryField()
    sealed_at = models.DateTimeField()
    key_id = models.CharField(max_length=64)
    signature = models.CharField(max_length=200)

    class Meta:
        ordering = ["-tree_size"]
        get_latest_by = "tree_size"

    def __str__(self) -> str:
        return f"checkpoint {self.tree_size} at {formats.moment(self.sealed_at)}"


class AuditRetention(models.Model):
    """One application of the retention procedure: events of leaves below
    ``purged_below`` were deleted (their leaves and the tree stay)."""

    purged_below = models.BigIntegerField()
    cutoff = models.DateTimeField()
    events_deleted = models.BigIntegerField()
    applied_at = models.DateTimeField()
    applied_by = models.CharField(max_length=200)

    class Meta:
        ordering = ["-applied_at"]

    def __str__(self) -> str:
        return f"retention below leaf {self.purged_below}"


class AuditExport(models.Model):
    """A compliance export: filters chosen by staff, written by a Celery task."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField()
    filters = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    events = models.BigIntegerField(default=0)
    tree_size = models.BigIntegerField(null=True, blank=True)
    files = models.JSONField(default=dict, help_text="format -> {name, size, sha256}")
    error = models.CharField(max_length=300, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"export #{self.pk}"
