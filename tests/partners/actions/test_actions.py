from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from accessctl.audit.models import AuditEvent
from partners import actions
from partners.errors import ActionError
from partners.models import EmbargoWindow, Grant, GrantRequest, Partner, Revocation
from tests import factories as f

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def events(action):
    return AuditEvent.objects.filter(action=action)


@pytest.fixture
def setup():
    partner = f.partner("nvidia-like", jurisdiction="US")
    release = f.release("v4", public_in=30 * DAY)
    checkpoint = f.checkpoint(release)
    window = f.window(release, partner)
    return partner, release, checkpoint, window


# Partners


def test_create_partner_is_audited():
    partner = f.partner("acme")
    event = events("partner.created").get(target_id=str(partner.pk))
    assert event.partner_id == partner.pk
    assert event.actor_label == "system"


def test_duplicate_partner_slug_is_refused():
    f.partner("acme")
    with pytest.raises(ActionError) as exc:
        f.partner("acme")
    assert exc.value.code == "partner_exists"


def test_update_partner_records_only_changed_fields():
    partner = f.partner("acme")
    manager = f.staff("Partner manager")
    actions.update_partner(actor=manager, partner=partner, legal_name="Acme Chips GmbH")
    event = events("partner.updated").get()
    assert event.changes == {"legal_name": [partner.legal_name, "Acme Chips GmbH"]}
    assert event.actor_id == manager.pk


def test_update_partner_rejects_bad_networks_and_writes_nothing():
    partner = f.partner("acme")
    with pytest.raises(ActionError, match="not an address range") as exc:
        actions.update_partner(actor=None, partner=partner, allowed_networks=["10.0.0.300/8"])
    assert exc.value.code == "invalid"
    assert list(exc.value.fields) == ["allowed_networks"]
    partner.refresh_from_db()
    assert partner.allowed_networks == []
    assert not events("partner.updated").exists()


def test_suspend_partner_refuses_at_once_and_its_cascade_revokes_the_grants(setup):
    partner, release, checkpoint, _ = setup
    grant = f.grant(checkpoint, partner)
    other = f.partner(jurisdiction="DE")
    f.window(release, other)
    other_grant = f.grant(checkpoint, other)

    actions.suspend_partner(actor=f.staff("Security officer"), partner=partner, reason="leak")

    decision = f.authorize(grant)
    assert decision.reason == "partner_suspended"
    revocation = Revocation.objects.get(partner=partner)
    assert events("partner.suspended").get().changes["revocation"] == revocation.pk

    actions.cascade_revocation(revocation.pk)
    grant.refresh_from_db()
    other_grant.refresh_from_db()
    assert grant.status == Grant.Status.REVOKED
    assert grant.revocation == revocation
    assert grant.revoke_reason == f"revocation #{revocation.pk} (partner): leak"
    assert other_grant.status == Grant.Status.ACTIVE
    revocation.refresh_from_db()
    assert (revocation.status, revocation.grants_revoked) == ("done", 1)
    assert events("grant.revoked").get().target_id == str(grant.pk)


def test_suspend_needs_a_reason(setup):
    partner = setup[0]
    with pytest.raises(ActionError) as exc:
        actions.suspend_partner(actor=None, partner=partner, reason="  ")
    assert exc.value.code == "reason_required"
    partner.refresh_from_db()
    assert partner.status == Partner.Status.ACTIVE


def test_reinstate_only_a_suspended_partner(setup):
    partner = setup[0]
    with pytest.raises(ActionError) as exc:
        actions.reinstate_partner(actor=None, partner=partner, reason="fine")
    assert exc.value.code == "partner_status_conflict"
    actions.suspend_partner(actor=None, partner=partner, reason="audit")
    with pytest.raises(ActionError) as exc:
        actions.reinstate_partner(actor=None, partner=partner, reason="too soon")
    assert exc.value.code == "revocation_in_progress"
    actions.cascade_revocation(Revocation.objects.get(partner=partner).pk)
    actions.reinstate_partner(actor=None, partner=partner, reason="audit passed")
    partner.refresh_from_db()
    assert partner.status == Partner.Status.ACTIVE


def test_terminated_partner_cannot_come_back(setup):
    partner = setup[0]
    actions.terminate_partner(actor=None, partner=partner, reason="contract ended")
    for action in (actions.reinstate_partner, actions.suspend_partner):
        with pytest.raises(ActionError) as exc:
            action(actor=None, partner=partner, reason="try")
        assert exc.value.code == "partner_status_conflict"


# Windows


def test_inverted_window_is_refused_by_the_action(setup):
    _partner, release, _, _ = setup
    now = timezone.now()
    with pytest.raises(ActionError) as exc:
        actions.set_window(
            actor=None, release=release, partner=f.partner(), opens_at=now, closes_at=now - DAY
        )
    assert exc.value.code == "window_invalid"


def test_overlapping_window_is_refused_by_the_action(setup):
    partner, release, _, window = setup
    with pytest.raises(ActionError) as exc:
        actions.set_window(
            actor=None,
            release=release,
            partner=partner,
            opens_at=window.closes_at - DAY,
            closes_at=window.closes_at + DAY,
        )
    assert exc.value.code == "window_overlap"
    assert EmbargoWindow.objects.filter(partner=partner).count() == 1


def test_adjacent_windows_are_allowed(setup):
    partner, release, _, window = setup
    later = actions.set_window(
        actor=None,
        release=release,
        partner=partner,
        opens_at=window.closes_at,
        closes_at=window.closes_at + DAY,
    )
    assert later.pk != window.pk


def test_database_refuses_inverted_window_even_without_the_action(setup):
    _partner, release, _, _ = setup
    now = timezone.now()
    with pytest.raises(IntegrityError, match="window_opens_before_closes"), transaction.atomic():
        EmbargoWindow.objects.create(
            release=release, partner=f.partner(), opens_at=now, closes_at=now, embargo_lifts_at=now
        )


def test_database_refuses_overlapping_window_even_without_the_action(setup):
    partner, release, _, window = setup
    with pytest.raises(IntegrityError, match="window_no_overlap"), transaction.atomic():
        EmbargoWindow.objects.create(
            release=release,
            partner=partner,
            opens_at=window.opens_at + DAY,
            closes_at=window.closes_at + DAY,
            embargo_lifts_at=window.closes_at,
        )


def test_window_for_blocked_jurisdiction_is_refused():
    release = f.release(policy="deny", policy_jurisdictions=["CN"])
    with pytest.raises(ActionError) as exc:
        f.window(release, f.partner(jurisdiction="CN"))
    assert exc.value.code == "jurisdiction_blocked"


def test_shortening_a_window_clips_its_grants(setup):
    partner, release, checkpoint, window = setup
    grant = f.grant(checkpoint, partner)
    new_close = timezone.now() + 2 * DAY
    assert grant.expires_at > new_close
    actions.set_window(
        actor=None,
        release=release,
        partner=partner,
        opens_at=window.opens_at,
        closes_at=new_close,
        window=window,
    )
    grant.refresh_from_db()
    assert grant.expires_at == new_close
    assert events("window.set").filter(target_id=str(window.pk)).count() == 2


# Grants


def test_early_access_cannot_be_issued_directly(setup):
    partner, _, checkpoint, _ = setup
    with pytest.raises(ActionError) as exc:
        actions.issue_grant(
            actor=f.staff("Release manager"), partner=partner, checkpoint=checkpoint, quota_bytes=1
        )
    assert exc.value.code == "approval_required"
    assert not Grant.objects.exists()


def test_early_access_needs_two_different_approvers(setup):
    partner, _, checkpoint, _ = setup
    request = actions.request_grant(
        actor=f.partner_user(partner), partner=partner, checkpoint=checkpoint, quota_bytes=500
    )
    assert request.status == GrantRequest.Status.PENDING
    assert request.approvals_required == 2
    first = f.staff("Release manager")
    actions.approve_grant_request(actor=first, request=request)
    assert not Grant.objects.exists()

    with pytest.raises(ActionError) as exc:
        actions.approve_grant_request(actor=first, request=request)
    assert exc.value.code == "already_approved"
    assert not Grant.objects.exists()

    actions.approve_grant_request(actor=f.staff("Release manager"), request=request)
    request.refresh_from_db()
    assert request.status == GrantRequest.Status.APPROVED
    grant = Grant.objects.get(request=request)
    assert grant.quota_bytes == 500
    assert events("grant_request.approved").count() == 2
    assert events("grant.issued").count() == 1


def test_requester_cannot_approve_their_own_request(setup):
    partner, _, checkpoint, _ = setup
    manager = f.staff("Release manager")
    request = actions.request_grant(
        actor=manager, partner=partner, checkpoint=checkpoint, quota_bytes=500
    )
    with pytest.raises(ActionError) as exc:
        actions.approve_grant_request(actor=manager, request=request)
    assert exc.value.code == "self_approval"


def test_after_public_release_a_request_is_issued_at_once():
    partner = f.partner()
    release = f.release(public_in=-DAY)
    checkpoint = f.checkpoint(release)
    f.window(release, partner)
    request = actions.request_grant(
        actor=f.partner_user(partner), partner=partner, checkpoint=checkpoint, quota_bytes=9
    )
    assert request.status == GrantRequest.Status.APPROVED
    assert request.grant.status == Grant.Status.ACTIVE


def test_request_from_blocked_jurisdiction_is_refused():
    release = f.release(policy="allow", policy_jurisdictions=["US", "DE"])
    checkpoint = f.checkpoint(release)
    ok = f.partner(jurisdiction="DE")
    f.window(release, ok)
    blocked = f.partner(jurisdiction="CN")
    with pytest.raises(ActionError) as exc:
        actions.request_grant(
            actor=f.partner_user(blocked), partner=blocked, checkpoint=checkpoint, quota_bytes=1
        )
    assert exc.value.code == "jurisdiction_blocked"
    assert not GrantRequest.objects.filter(partner=blocked).exists()


def test_partner_user_cannot_request_for_another_partner(setup):
    partner, _, checkpoint, _ = setup
    intruder = f.partner_user(f.partner())
    with pytest.raises(ActionError) as exc:
        actions.request_grant(actor=intruder, partner=partner, checkpoint=checkpoint, quota_bytes=1)
    assert exc.value.code == "forbidden"


def test_request_without_window_is_refused(setup):
    _, _, checkpoint, _ = setup
    lonely = f.partner()
    with pytest.raises(ActionError) as exc:
        actions.request_grant(
            actor=f.partner_user(lonely), partner=lonely, checkpoint=checkpoint, quota_bytes=1
        )
    assert exc.value.code == "no_window"


def test_second_pending_request_is_refused(setup):
    partner, _, checkpoint, _ = setup
    user = f.partner_user(partner)
    actions.request_grant(actor=user, partner=partner, checkpoint=checkpoint, quota_bytes=1)
    with pytest.raises(ActionError) as exc:
        actions.request_grant(actor=user, partner=partner, checkpoint=checkpoint, quota_bytes=1)
    assert exc.value.code == "request_exists"
    assert events("grant.requested").count() == 1


def test_rejected_request_cannot_be_approved(setup):
    partner, _, checkpoint, _ = setup
    request = actions.request_grant(
        actor=f.partner_user(partner), partner=partner, checkpoint=checkpoint, quota_bytes=1
    )
    actions.reject_grant_request(actor=f.staff("Release manager"), request=request, reason="no")
    with pytest.raises(ActionError) as exc:
        actions.approve_grant_request(actor=f.staff("Release manager"), request=request)
    assert exc.value.code == "request_decided"


def test_grant_expiry_past_window_is_refused():
    partner = f.partner()
    release = f.release(public_in=-DAY)
    checkpoint = f.checkpoint(release)
    window = f.window(release, partner, closes=3 * DAY)
    with pytest.raises(ActionError) as exc:
        actions.issue_grant(
            actor=None,
            partner=partner,
            checkpoint=checkpoint,
            quota_bytes=1,
            expires_at=window.closes_at + timedelta(seconds=1),
        )
    assert exc.value.code == "grant_outlives_window"


def test_default_grant_expiry_is_clipped_to_the_window():
    partner = f.partner()
    release = f.release(public_in=-DAY)
    checkpoint = f.checkpoint(release)
    window = f.window(release, partner, closes=3 * DAY)
    grant = actions.issue_grant(actor=None, partner=partner, checkpoint=checkpoint, quota_bytes=1)
    assert grant.expires_at == window.closes_at


def test_database_refuses_grant_outliving_its_window(setup):
    partner, _, checkpoint, window = setup
    grant = f.grant(checkpoint, partner)
    with pytest.raises(IntegrityError, match="grant_outlives_window"), transaction.atomic():
        Grant.objects.filter(pk=grant.pk).update(expires_at=window.closes_at + DAY)


def test_database_refuses_grant_in_another_partners_window(setup):
    _partner, _release, checkpoint, window = setup
    other = f.partner()
    with pytest.raises(IntegrityError, match="grant_window_mismatch"), transaction.atomic():
        Grant.objects.create(
            partner=other,
            checkpoint=checkpoint,
            window=window,
            expires_at=window.closes_at,
            quota_bytes=1,
        )


def test_database_keeps_usage_within_quota(setup):
    partner, _, checkpoint, _ = setup
    grant = f.grant(checkpoint, partner, quota_bytes=10)
    with pytest.raises(IntegrityError, match="grant_within_quota"), transaction.atomic():
        Grant.objects.filter(pk=grant.pk).update(bytes_used=11)


def test_revoke_grant_is_immediate_and_idempotent(setup):
    partner, _, checkpoint, _ = setup
    grant = f.grant(checkpoint, partner)
    officer = f.staff("Security officer")
    actions.revoke_grant(actor=officer, grant=grant, reason="leaked URL")
    actions.revoke_grant(actor=officer, grant=grant, reason="again")
    grant.refresh_from_db()
    assert grant.status == Grant.Status.REVOKED
    assert grant.revoked_by == officer
    assert grant.revoke_reason == "leaked URL"
    assert events("grant.revoked").count() == 1


def test_pull_checkpoint_revokes_its_grants(setup):
    partner, _, checkpoint, _ = setup
    grant = f.grant(checkpoint, partner)
    actions.pull_checkpoint(actor=f.staff("Security officer"), checkpoint=checkpoint, reason="bad")
    assert f.authorize(grant).reason == "checkpoint_pulled"
    actions.cascade_revocation(Revocation.objects.get(checkpoint=checkpoint).pk)
    grant.refresh_from_db()
    assert grant.status == Grant.Status.REVOKED
    with pytest.raises(ActionError) as exc:
        actions.request_grant(
            actor=f.partner_user(partner), partner=partner, checkpoint=checkpoint, quota_bytes=1
        )
    assert exc.value.code == "checkpoint_pulled"


def test_suspended_partner_cannot_get_a_grant(setup):
    partner, _, checkpoint, _ = setup
    actions.suspend_partner(actor=None, partner=partner, reason="audit")
    with pytest.raises(ActionError) as exc:
        actions.request_grant(
            actor=f.partner_user(partner), partner=partner, checkpoint=checkpoint, quota_bytes=1
        )
    assert exc.value.code == "partner_suspended"


def test_expired_nda_blocks_a_grant(setup):
    partner, _, checkpoint, _ = setup
    actions.update_partner(actor=None, partner=partner, nda_expires_at=timezone.now() - DAY)
    with pytest.raises(ActionError) as exc:
        actions.request_grant(
            actor=f.partner_user(partner), partner=partner, checkpoint=checkpoint, quota_bytes=1
        )
    assert exc.value.code == "nda_expired"


# Checkpoints


def test_register_checkpoint_is_idempotent():
    release = f.release()
    specs = [
        f.stored_spec(release, "t", "a.bin", b"aaa"),
        f.stored_spec(release, "t", "b.bin", b"bbb"),
    ]
    first = actions.register_checkpoint(actor=None, release=release, tag="t", artifacts=specs)
    again = actions.register_checkpoint(actor=None, release=release, tag="t", artifacts=specs)
    assert first.added == ["a.bin", "b.bin"]
    assert again.added == []
    assert again.unchanged == ["a.bin", "b.bin"]
    assert first.checkpoint.artifacts.count() == 2
    assert events("checkpoint.registered").count() == 1


def test_register_checkpoint_refuses_a_changed_file_and_writes_nothing():
    release = f.release()
    actions.register_checkpoint(
        actor=None,
        release=release,
        tag="t",
        artifacts=[f.stored_spec(release, "t", "a.bin", b"aaa")],
    )
    changed = [f.artifact_spec("a.bin", b"AAA"), f.stored_spec(release, "t", "new.bin", b"n")]
    with pytest.raises(ActionError) as exc:
        actions.register_checkpoint(actor=None, release=release, tag="t", artifacts=changed)
    assert exc.value.code == "artifact_changed"
    assert "a.bin" in exc.value.message
    checkpoint = release.checkpoints.get()
    assert list(checkpoint.artifacts.values_list("path", flat=True)) == ["a.bin"]
