from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

__all__ = ["Revocation"]


class Revocation(models.Model):
    """One revocation and its cascade.

    The action that creates it changes the root row (token, grant, partner, checkpoint or
    release) in the same transaction, so downloads are refused from the moment it commits.
    The fan-out (``partners.actions.revocations.cascade_revocation``, run by Celery) then
    revokes the dependent grants issued up to ``effective_at``, rejects pending requests,
    queues the notifications and marks the revocation ``done`` with its counts. Every step
    only touches rows still in the old state, so a cascade that is interrupted, or run
    twice, finishes with each row changed and audited once.
    """

    class Scope(models.TextChoices):
        TOKEN = "token", "API token"
        GRANT = "grant", "Grant"
        PARTNER = "partner", "Partner"
        CHECKPOINT = "checkpoint", "Checkpoint"
        RELEASE = "release", "Release (kill switch)"

    class Status(models.TextChoices):
        PENDING = "pending", "Fan-out pending"
        DONE = "done", "Done"

    scope = models.CharField(max_length=16, choices=Scope.choices)
    token = models.ForeignKey(
        "partners.AccessToken", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    grant = models.ForeignKey(
        "partners.Grant", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    partner = models.ForeignKey(
        "partners.Partner", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    checkpoint = models.ForeignKey(
        "partners.Checkpoint", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    release = models.ForeignKey(
        "partners.Release", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=300)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    effective_at = models.DateTimeField(
        default=timezone.now, help_text="When downloads stopped: the root change committed."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="How many times a worker started the fan-out."
    )
    grants_revoked = models.PositiveIntegerField(default=0)
    requests_rejected = models.PositiveIntegerField(default=0)
    tokens_revoked = models.PositiveIntegerField(default=0)
    notifications_queued = models.PositiveIntegerField(default=0)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-effective_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status="done", completed_at__isnull=False)
                | models.Q(status="pending", completed_at__isnull=True),
                name="revocation_done_has_time",
            ),
            models.CheckConstraint(
                condition=models.Q(scope="token", token__isnull=False)
                | models.Q(scope="grant", grant__isnull=False)
                | models.Q(scope="partner", partner__isnull=False)
                | models.Q(scope="checkpoint", checkpoint__isnull=False)
                | models.Q(scope="release", release__isnull=False),
                name="revocation_has_target",
            ),
        ]
        indexes = [models.Index(fields=["status", "effective_at"])]

    def __str__(self) -> str:
        return f"revocation #{self.pk} ({self.scope})"

    @property
    def target(self) -> models.Model:
        return getattr(self, self.scope)

    @property
    def target_label(self) -> str:
        """What was revoked, named once by its kind: ``grant #2``, ``partner aurora``,
        ``checkpoint v3:step-1``, ``release v3``, ``API token acx_ab12… (ci)`` (a grant
        names its kind itself; "Grant grant #2" said it twice)."""
        target = str(self.target)
        if self.scope == self.Scope.GRANT:
            return target
        kind = "API token" if self.scope == self.Scope.TOKEN else str(self.scope)
        return f"{kind} {target}"

    # The root a revoking action changed itself, counted by its kind: revoking one grant
    # is one grant revoked (the cascade only counts the dependents it ends).
    ROOT_COUNTERS: ClassVar[dict[str, str]] = {"grant": "grants_revoked", "token": "tokens_revoked"}
