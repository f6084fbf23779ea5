"""What state a window or checkpoint is in, as every surface shows it.

The kill switch withdraws a release without touching its windows' times or its
checkpoints' rows: a withdrawn release's windows are ``withdrawn`` whatever their times,
and its checkpoints ``pulled``. These functions are the one place that says so; the
partner API, the portal's lists and filters, the dashboard and the lifecycle tasks all ask
them, so no surface can show a withdrawn release's window as open.
"""

from datetime import datetime

from django.db.models import Q, QuerySet

from partners.models import Checkpoint, EmbargoWindow, Partner, Release

__all__ = [
    "access_held",
    "checkpoint_state",
    "checkpoints_in_state",
    "window_state",
    "windows_in_state",
]

WITHDRAWN = Release.Status.WITHDRAWN


def window_state(window: EmbargoWindow, at: datetime) -> EmbargoWindow.State:
    """``withdrawn`` if the kill switch withdrew the window's release, else what its times
    say at ``at`` (``upcoming``, ``open``, ``closed``)."""
    if window.release.status == WITHDRAWN:
        return EmbargoWindow.State.WITHDRAWN
    return window.state_at(at)


def access_held(state: str, partner_status: str) -> str:
    """Why an ``open`` or ``upcoming`` window gives its partner nothing, whatever its times
    say: ``"partner suspended"`` or ``"partner terminated"``; ``""`` when it does (or the
    window is over anyway). Every surface that shows a window's state shows this beside it."""
    if state in {EmbargoWindow.State.OPEN, EmbargoWindow.State.UPCOMING} and (
        partner_status != Partner.Status.ACTIVE
    ):
        return f"partner {partner_status}"
    return ""


def windows_in_state(
    windows: QuerySet[EmbargoWindow], state: str, at: datetime
) -> QuerySet[EmbargoWindow]:
    """``windows`` whose ``window_state`` at ``at`` is ``state``, in SQL."""
    live = ~Q(release__status=WITHDRAWN)
    match state:
        case EmbargoWindow.State.WITHDRAWN:
            return windows.filter(release__status=WITHDRAWN)
        case EmbargoWindow.State.UPCOMING:
            return windows.filter(live, opens_at__gt=at)
        case EmbargoWindow.State.OPEN:
            return windows.filter(live, opens_at__lte=at, closes_at__gt=at)
        case EmbargoWindow.State.CLOSED:
            return windows.filter(live, closes_at__lte=at)
    return windows.none()


def checkpoint_state(checkpoint: Checkpoint) -> Checkpoint.Status:
    """``pulled`` if the checkpoint was pulled or its release withdrawn, else its status."""
    if checkpoint.release.status == WITHDRAWN:
        return Checkpoint.Status.PULLED
    return Checkpoint.Status(checkpoint.status)


def checkpoints_in_state(checkpoints: QuerySet[Checkpoint], state: str) -> QuerySet[Checkpoint]:
    """``checkpoints`` whose ``checkpoint_state`` is ``state``, in SQL."""
    withdrawn = Q(release__status=WITHDRAWN)
    match state:
        case Checkpoint.Status.PULLED:
            return checkpoints.filter(withdrawn | Q(status=Checkpoint.Status.PULLED))
        case Checkpoint.Status.AVAILABLE:
            return checkpoints.filter(~withdrawn, status=Checkpoint.Status.AVAILABLE)
    return checkpoints.none()
