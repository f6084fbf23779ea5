from datetime import datetime

from django.db import models
from django.utils import timezone

__all__ = ["EmbargoWindow"]


class EmbargoWindow(models.Model):
    """When one partner may download one release's checkpoints, and may publish results.

    The database refuses ``opens_at >= closes_at`` (a check constraint) and two windows of
    the same release and partner that overlap (an exclusion constraint on PostgreSQL, a
    trigger on SQLite; see ``partners.db_rules``).
    """

    class State(models.TextChoices):
        UPCOMING = "upcoming", "Upcoming"
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"
        # The kill switch ended every window of the release, whatever the times say.
        WITHDRAWN = "withdrawn", "Withdrawn"

    release = models.ForeignKey(
        "partners.Release", on_delete=models.PROTECT, related_name="windows"
    )
    partner = models.ForeignKey(
        "partners.Partner", on_delete=models.PROTECT, related_name="windows"
    )
    tier = models.CharField(max_length=32, blank=True, help_text="Partner tier, e.g. tier-1.")
    opens_at = models.DateTimeField()
    closes_at = models.DateTimeField()
    embargo_lifts_at = models.DateTimeField(
        help_text="When the partner may publish results obtained with this release."
    )
    # When the lifecycle tasks recorded (audited, announced) each moment; empty until then.
    opened_at = models.DateTimeField(null=True, blank=True, editable=False)
    closed_at = models.DateTimeField(null=True, blank=True, editable=False)
    embargo_lifted_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["release", "opens_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(opens_at__lt=models.F("closes_at")),
                name="window_opens_before_closes",
                violation_error_message="The window must open before it closes.",
            ),
            models.CheckConstraint(
                condition=models.Q(embargo_lifts_at__gte=models.F("opens_at")),
                name="window_embargo_after_open",
                violation_error_message="The embargo cannot lift before the window opens.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.release_id and self.release.slug} x {self.partner_id and self.partner.slug}"

    def state_at(self, now: datetime) -> "EmbargoWindow.State":
        """From the times alone; what a surface shows is ``partners.states.window_state``,
        which knows about withdrawal."""
        if now < self.opens_at:
            return self.State.UPCOMING
        if now < self.closes_at:
            return self.State.OPEN
        return self.State.CLOSED
