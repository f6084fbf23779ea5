"""No one person can let a partner fetch bytes before a release's public time.

Issue #11: a Release manager moved the public time into the past, issued a grant
directly, and moved the public time back. Each step is now refused, or needs the
early-access approvals (ACCESSCTL_EARLY_ACCESS_APPROVALS distinct approvers, the
requester excluded).
"""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accessctl.audit.models import AuditEvent
from partners import actions
from partners.actions._common import early_access_approvals
from partners.actions.grants import _issue
from partners.errors import ActionError
from partners.models import Grant, GrantRequest, Notification
from tests import factories as f
from tests.evidence import last_event_id, the_refusal_since

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


@pytest.fixture
def embargoed():
    """A release a month from launch, a partner with an open window, one checkpoint."""
    partner = f.partner("aurora-gpu")
    release = f.release("v5", public_in=30 * DAY)
    checkpoint = f.checkpoint(release)
    f.window(release, partner, closes=60 * DAY)
    return partner, release, checkpoint


def refused(code: str, call, *args, **kwargs) -> ActionError:
    """``call`` is refused with ``code`` and leaves only the evidence of the refusal."""
    before = last_event_id()
    with pytest.raises(ActionError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value.message
    if hasattr(call, "refused_event"):  # a public action; a private step records nothing
        the_refusal_since(before, code, str(call.refused_event))
    else:
        assert last_event_id() == before
    return caught.value


def test_one_release_manager_cannot_give_early_access_by_moving_the_public_time(embargoed):
    partner, release, checkpoint = embargoed
    manager = f.staff("Release manager")
    public_at = release.public_release_at
    refused(
        "public_time_earlier",
        actions.update_release,
        actor=manager,
        release=release,
        public_release_at=timezone.now() - DAY,
    )
    release.refresh_from_db()
    assert release.public_release_at == public_at
    refused(
        "approval_required",
        actions.issue_grant,
        actor=manager,
        partner=partner,
        checkpoint=checkpoint,
        quota_bytes=100,
    )
    assert not Grant.objects.exists()
    assert not Notification.objects.exists()
    assert mail.outbox == []


@pytest.mark.parametrize(
    "delta",
    [-timedelta(seconds=1), -DAY, -60 * DAY],
    ids=["a-second", "a-day", "into-the-past"],
)
def test_public_time_never_moves_earlier(delta):
    release = f.release(public_in=30 * DAY)
    refused(
        "public_time_earlier",
        actions.update_release,
        actor=f.staff("Release manager"),
        release=release,
        public_release_at=release.public_release_at + delta,
    )


def test_public_time_of_a_launched_release_never_moves_earlier_either():
    release = f.release(public_in=-DAY)
    refused(
        "public_time_earlier",
        actions.update_release,
        actor=None,
        release=release,
        public_release_at=release.public_release_at - DAY,
    )


def test_public_time_moves_later_and_the_change_is_audited(embargoed):
    _, release, _ = embargoed
    manager = f.staff("Release manager")
    later = release.public_release_at + 7 * DAY
    actions.update_release(actor=manager, release=release, public_release_at=later)
    release.refresh_from_db()
    assert release.public_release_at == later
    event = AuditEvent.objects.get(action="release.updated", actor=manager)
    assert event.changes["public_release_at"][1] == later.isoformat()


@pytest.fixture
def launched_with_direct_grant():
    partner = f.partner()
    release = f.release(public_in=-DAY)
    checkpoint = f.checkpoint(release)
    f.window(release, partner, opens=-10 * DAY, closes=60 * DAY)
    grant = f.grant(checkpoint, partner)  # direct: the release is public
    assert grant.request is None
    return release, grant


@pytest.mark.parametrize("status", ["active", "exhausted"])
def test_public_time_cannot_move_later_past_a_grant_without_approvals(
    launched_with_direct_grant, status
):
    release, grant = launched_with_direct_grant
    Grant.objects.filter(pk=grant.pk).update(status=status)
    error = refused(
        "early_access_unapproved",
        actions.update_release,
        actor=f.staff("Release manager"),
        release=release,
        public_release_at=timezone.now() + 30 * DAY,
    )
    assert f"#{grant.pk}" in error.message
    release.refresh_from_db()
    assert release.public_release_at < timezone.now()


def test_public_time_moves_later_once_the_unapproved_grant_is_revoked(launched_with_direct_grant):
    release, grant = launched_with_direct_grant
    manager = f.staff("Release manager")
    actions.revoke_grant(actor=manager, grant=grant, reason="launch postponed")
    later = timezone.now() + 30 * DAY
    actions.update_release(actor=manager, release=release, public_release_at=later)
    release.refresh_from_db()
    assert release.public_release_at == later


def test_public_time_moves_later_when_every_grant_holds_its_approvals(embargoed):
    partner, release, checkpoint = embargoed
    f.grant(checkpoint, partner)  # a request and two approvals
    later = release.public_release_at + 7 * DAY
    actions.update_release(actor=None, release=release, public_release_at=later)
    release.refresh_from_db()
    assert release.public_release_at == later


def test_grant_requested_after_launch_holds_no_approvals_and_pins_the_public_time():
    partner = f.partner()
    release = f.release(public_in=-DAY)
    checkpoint = f.checkpoint(release)
    f.window(release, partner)
    request = actions.request_grant(
        actor=f.partner_user(partner), partner=partner, checkpoint=checkpoint, quota_bytes=10
    )
    assert request.status == GrantRequest.Status.APPROVED and request.approvals_required == 0
    refused(
        "early_access_unapproved",
        actions.update_release,
        actor=None,
        release=release,
        public_release_at=timezone.now() + DAY,
    )


def test_issuing_before_the_public_time_is_refused_at_the_last_step_too(embargoed):
    """Defence in depth: the function every grant goes through checks the approvals."""
    partner, _release, checkpoint = embargoed
    refused(
        "early_access_unapproved",
        _issue,
        actor=None,
        partner=partner,
        checkpoint=checkpoint,
        quota_bytes=10,
        expires_at=None,
        request=None,
        at=timezone.now(),
    )
    request = actions.request_grant(
        actor=f.partner_user(partner), partner=partner, checkpoint=checkpoint, quota_bytes=10
    )
    actions.approve_grant_request(actor=f.staff("Release manager"), request=request)
    request.refresh_from_db()
    assert request.status == GrantRequest.Status.PENDING
    refused(
        "early_access_unapproved",
        _issue,
        actor=None,
        partner=partner,
        checkpoint=checkpoint,
        quota_bytes=10,
        expires_at=None,
        request=request,
        at=timezone.now(),
    )
    assert not Grant.objects.exists()


@pytest.mark.parametrize(("setting", "needed"), [(0, 1), (1, 1), (2, 2), (3, 3)])
def test_early_access_needs_the_configured_number_of_distinct_approvers(
    settings, embargoed, setting, needed
):
    settings.ACCESSCTL_EARLY_ACCESS_APPROVALS = setting
    assert early_access_approvals() == needed
    partner, _, checkpoint = embargoed
    request = actions.request_grant(
        actor=f.partner_user(partner), partner=partner, checkpoint=checkpoint, quota_bytes=10
    )
    assert request.approvals_required == needed
    for _ in range(needed - 1):
        actions.approve_grant_request(actor=f.staff("Release manager"), request=request)
    assert not Grant.objects.exists()
    actions.approve_grant_request(actor=f.staff("Release manager"), request=request)
    assert Grant.objects.get().request == request


def test_raising_the_setting_holds_pending_requests_to_the_new_number(settings, embargoed):
    partner, _, checkpoint = embargoed
    request = actions.request_grant(
        actor=f.partner_user(partner), partner=partner, checkpoint=checkpoint, quota_bytes=10
    )
    assert request.approvals_required == 2
    settings.ACCESSCTL_EARLY_ACCESS_APPROVALS = 3
    for _ in range(2):
        actions.approve_grant_request(actor=f.staff("Release manager"), request=request)
    assert not Grant.objects.exists()
    actions.approve_grant_request(actor=f.staff("Release manager"), request=request)
    assert Grant.objects.get().request == request


def test_staff_requester_cannot_count_as_an_approver(embargoed):
    partner, _, checkpoint = embargoed
    manager = f.staff("Release manager")
    request = actions.request_grant(
        actor=manager, partner=partner, checkpoint=checkpoint, quota_bytes=10
    )
    refused("self_approval", actions.approve_grant_request, actor=manager, request=request)
    actions.approve_grant_request(actor=f.staff("Release manager"), request=request)
    assert not Grant.objects.exists()


def test_widening_a_window_does_not_let_a_direct_grant_serve_before_the_public_time(
    launched_with_direct_grant,
):
    """Grants are clipped to their window, and a grant issued without approvals was
    issued after the public time: opening its window earlier serves nothing early, and the
    public time cannot then be moved past it."""
    release, grant = launched_with_direct_grant
    window = grant.window
    manager = f.staff("Release manager")
    actions.set_window(
        actor=manager,
        release=release,
        partner=grant.partner,
        opens_at=window.opens_at - 300 * DAY,
        closes_at=window.closes_at + 30 * DAY,
        window=window,
    )
    grant.refresh_from_db()
    assert grant.issued_at >= release.public_release_at
    assert grant.expires_at <= grant.window.closes_at
    refused(
        "early_access_unapproved",
        actions.update_release,
        actor=manager,
        release=release,
        public_release_at=timezone.now() + DAY,
    )


def test_window_opened_before_the_public_time_still_needs_approvals(embargoed):
    _partner, release, checkpoint = embargoed
    manager = f.staff("Release manager")
    other = f.partner()
    actions.set_window(
        actor=manager,
        release=release,
        partner=other,
        opens_at=timezone.now() - 30 * DAY,
        closes_at=release.public_release_at + 30 * DAY,
    )
    refused(
        "approval_required",
        actions.issue_grant,
        actor=manager,
        partner=other,
        checkpoint=checkpoint,
        quota_bytes=10,
    )
    request = actions.request_grant(
        actor=manager, partner=other, checkpoint=checkpoint, quota_bytes=10
    )
    assert request.status == GrantRequest.Status.PENDING
    assert not Grant.objects.filter(partner=other).exists()


def test_approvals_setting_is_read_in_one_place():
    from pathlib import Path

    import partners

    root = Path(partners.__file__).parent
    readers = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "settings.ACCESSCTL_EARLY_ACCESS_APPROVALS" in p.read_text()
    ]
    assert readers == ["rules/approvals.py"]
