"""Saving releases in the portal: the real add and change forms, windows inline."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accessctl.audit.models import AuditEvent
from partners.models import EmbargoWindow, Release
from tests import factories as f
from tests.accessctl.test_portal import portal_client
from tests.forms import form_fields

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)

WINDOWS = "windows"  # the inline's prefix (the related name)
CHECKPOINTS = "checkpoints"


def _when(name: str, at) -> dict[str, str]:
    return {f"{name}_0": at.strftime("%Y-%m-%d"), f"{name}_1": at.strftime("%H:%M:%S")}


def _management(prefix: str, total: int, initial: int) -> dict[str, str]:
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def _window_row(i: int, partner, opens, closes, window=None, release=None) -> dict[str, str]:
    row = {
        f"{WINDOWS}-{i}-partner": str(partner.pk),
        f"{WINDOWS}-{i}-tier": "tier-1",
        **{f"{WINDOWS}-{i}-{k}": v for k, v in _when("opens_at", opens).items()},
        **{f"{WINDOWS}-{i}-{k}": v for k, v in _when("closes_at", closes).items()},
        f"{WINDOWS}-{i}-embargo_lifts_at_0": "",
        f"{WINDOWS}-{i}-embargo_lifts_at_1": "",
    }
    if window is not None:
        row[f"{WINDOWS}-{i}-id"] = str(window.pk)
        row[f"{WINDOWS}-{i}-release"] = str(release.pk)
    return row


def _audited(user) -> list[str]:
    """What ``user`` changed, in order (signing in is not a change)."""
    events = AuditEvent.objects.filter(actor=user).exclude(action="staff.signed_in")
    return list(events.order_by("id").values_list("action", flat=True))


def _at_second(at):
    return at.replace(microsecond=0)


def test_release_manager_adds_a_release_with_a_window_in_the_portal(client):
    partner = f.partner()
    manager = f.staff("Release manager")
    now = _at_second(timezone.now())
    data = {
        "slug": "v9",
        "name": "Model v9",
        **_when("public_release_at", now + 30 * DAY),
        "status": "planned",
        "quota_factor": "4",
        "policy": "deny",
        **_management(WINDOWS, 1, 0),
        **_window_row(0, partner, now + DAY, now + 40 * DAY),
        **_management(CHECKPOINTS, 0, 0),
    }
    response = portal_client(client, manager).post(reverse("admin:partners_release_add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    release = Release.objects.get(slug="v9")
    assert release.public_release_at == now + 30 * DAY
    window = EmbargoWindow.objects.get(release=release)
    assert (window.partner, window.tier) == (partner, "tier-1")
    assert (window.opens_at, window.closes_at) == (now + DAY, now + 40 * DAY)
    assert window.embargo_lifts_at == release.public_release_at
    assert _audited(manager) == ["release.created", "window.set"]


def test_release_manager_changes_a_release_and_its_windows_in_the_portal(client):
    partner, other = f.partner(), f.partner()
    release = f.release("v8")
    window = f.window(release, partner)
    manager = f.staff("Release manager")
    now = _at_second(timezone.now())
    later = _at_second(release.public_release_at) + DAY
    data = {
        "name": "Model v8 (renamed)",
        **_when("public_release_at", later),
        "status": "planned",
        "quota_factor": str(release.quota_factor),
        **_management(WINDOWS, 2, 1),
        **_window_row(0, partner, _at_second(window.opens_at), now + 25 * DAY, window, release),
        **_window_row(1, other, now + DAY, now + 10 * DAY),
        **_management(CHECKPOINTS, 0, 0),
    }
    response = portal_client(client, manager).post(
        reverse("admin:partners_release_change", args=[release.pk]), data
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    release.refresh_from_db()
    assert (release.name, release.public_release_at) == ("Model v8 (renamed)", later)
    window.refresh_from_db()
    assert window.closes_at == now + 25 * DAY
    assert EmbargoWindow.objects.get(release=release, partner=other).closes_at == now + 10 * DAY
    assert _audited(manager) == ["release.updated", "window.set", "window.set"]
    updated = AuditEvent.objects.get(actor=manager, action="release.updated")
    assert set(updated.changes) == {"name", "public_release_at"}


def test_refused_window_in_the_release_form_is_shown_not_a_server_error(client):
    partner = f.partner()
    release = f.release("v7")
    now = _at_second(timezone.now())
    data = {
        "name": release.name,
        **_when("public_release_at", _at_second(release.public_release_at)),
        "status": "planned",
        "quota_factor": str(release.quota_factor),
        **_management(WINDOWS, 1, 0),
        **_window_row(0, partner, now + 5 * DAY, now + DAY),
        **_management(CHECKPOINTS, 0, 0),
    }
    response = portal_client(client, f.staff("Release manager")).post(
        reverse("admin:partners_release_change", args=[release.pk]), data
    )
    assert response.status_code == 200
    assert "The window must open before it closes." in response.content.decode()
    assert not EmbargoWindow.objects.filter(release=release).exists()


def test_new_release_without_a_public_time_shows_its_error_with_a_window_inline(client):
    partner = f.partner()
    now = _at_second(timezone.now())
    data = {
        "slug": "v6",
        "name": "Model v6",
        "public_release_at_0": "",
        "public_release_at_1": "",
        "status": "planned",
        "quota_factor": "4",
        "policy": "deny",
        **_management(WINDOWS, 1, 0),
        **_window_row(0, partner, now + DAY, now + 40 * DAY),
        **_management(CHECKPOINTS, 0, 0),
    }
    response = portal_client(client, f.staff("Release manager")).post(
        reverse("admin:partners_release_add"), data
    )
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not Release.objects.filter(slug="v6").exists()


def test_overlapping_windows_in_a_new_release_are_refused_and_nothing_is_saved(client):
    partner = f.partner()
    manager = f.staff("Release manager")
    now = _at_second(timezone.now())
    data = {
        "slug": "v5",
        "name": "Model v5",
        **_when("public_release_at", now + 30 * DAY),
        "status": "planned",
        "quota_factor": "4",
        "policy": "deny",
        **_management(WINDOWS, 2, 0),
        **_window_row(0, partner, now + DAY, now + 40 * DAY),
        **_window_row(1, partner, now + 2 * DAY, now + 20 * DAY),
        **_management(CHECKPOINTS, 0, 0),
    }
    response = portal_client(client, manager).post(
        reverse("admin:partners_release_add"), data, follow=True
    )
    assert response.status_code == 200
    assert "overlaps these times" in response.content.decode()
    assert not Release.objects.filter(slug="v5").exists()
    assert _audited(manager) == ["window.refused"]  # the refusal is the only evidence


def test_moving_the_public_time_earlier_in_the_portal_is_refused(client):
    release = f.release("v4")
    public_at = release.public_release_at
    manager = f.staff("Release manager")
    data = {
        "name": release.name,
        **_when("public_release_at", _at_second(timezone.now()) - DAY),
        "status": "planned",
        "quota_factor": str(release.quota_factor),
        **_management(WINDOWS, 0, 0),
        **_management(CHECKPOINTS, 0, 0),
    }
    response = portal_client(client, manager).post(
        reverse("admin:partners_release_change", args=[release.pk]), data, follow=True
    )
    assert "never moves earlier" in response.content.decode()
    release.refresh_from_db()
    assert release.public_release_at == public_at
    assert _audited(manager) == ["release.refused"]  # the refusal is the only evidence


def test_renaming_a_release_whose_public_time_has_microseconds(client):
    """The page shows times to the second; the untouched public time is not sent back
    (it would be earlier than the stored one, and refused)."""
    release = f.release("v3", public_in=-DAY)  # made by an action: microseconds kept
    assert release.public_release_at.microsecond
    manager = f.staff("Release manager")
    c = portal_client(client, manager)
    url = reverse("admin:partners_release_change", args=[release.pk])
    data = form_fields(c.get(url).content.decode(), "release_form")
    data["name"] = "Model v3, renamed"
    response = c.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    release.refresh_from_db()
    assert release.name == "Model v3, renamed"
    assert _audited(manager) == ["release.updated"]


def test_the_checkpoint_page_only_reads_and_refuses_a_posted_form(client):
    release = f.release("v3")
    checkpoint = f.checkpoint(release)
    manager = f.staff("Release manager")  # holds partners.change_checkpoint
    portal = portal_client(client, manager)
    url = reverse("admin:partners_checkpoint_change", args=[checkpoint.pk])
    page = portal.get(url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    data = {
        **_management("artifacts", checkpoint.artifacts.count(), checkpoint.artifacts.count()),
        **{
            f"artifacts-{i}-id": str(a.pk)
            for i, a in enumerate(checkpoint.artifacts.order_by("path"))
        },
        "_save": "Save",
    }
    assert portal.post(url, data).status_code == 403
    assert _audited(manager) == ["checkpoint.refused"]  # the refusal's evidence, no change


def test_moving_a_window_on_its_own_page_is_saved_and_audited(client):
    partner = f.partner()
    release = f.release("v2")
    window = f.window(release, partner)
    manager = f.staff("Release manager")
    now = _at_second(timezone.now())
    data = {
        "tier": "tier-2",
        **_when("opens_at", _at_second(window.opens_at)),
        **_when("closes_at", now + 50 * DAY),
        "embargo_lifts_at_0": "",
        "embargo_lifts_at_1": "",
    }
    response = portal_client(client, manager).post(
        reverse("admin:partners_embargowindow_change", args=[window.pk]), data
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    window.refresh_from_db()
    assert (window.tier, window.closes_at) == ("tier-2", now + 50 * DAY)
    assert _audited(manager) == ["window.set"]


def test_the_release_form_offers_no_withdrawal_and_the_action_says_how(client):
    from partners import actions
    from partners.errors import ActionError

    release = f.release("v9")
    url = reverse("admin:partners_release_change", args=[release.pk])
    c = portal_client(client, f.staff("Release manager"))
    html = c.get(url).content.decode()
    status = html.split('name="status"')[1].split("</select>")[0]
    assert 'value="planned"' in status and 'value="withdrawn"' not in status
    assert "Withdrawn (kill switch)" not in status
    data = dict(form_fields(html, "release_form"))
    data["status"] = "withdrawn"
    refused = c.post(url, data)
    assert refused.status_code == 200
    assert "Select a valid choice. withdrawn is not one of the available choices." in (
        refused.content.decode()
    )
    assert Release.objects.get(pk=release.pk).status == Release.Status.PLANNED
    with pytest.raises(ActionError) as caught:
        actions.update_release(actor=None, release=release, status="withdrawn")
    assert caught.value.message == (
        "A release is withdrawn only by the kill switch (its Kill switch button, with a "
        "reason), not by setting its status."
    )
    # A withdrawn release's status is shown, not offered.
    actions.withdraw_release(actor=None, release=release, reason="leak")
    html = c.get(url).content.decode()
    assert 'name="status"' not in html and "Withdrawn (kill switch)" in html


def test_release_manager_turns_fingerprinting_on_and_bad_patterns_are_refused(client):
    """The fingerprint settings (docs/fingerprints.md) in the release form: bad patterns
    are an error on the field with the release's refusal event; good ones are saved."""
    release = f.release("v7")
    manager = f.staff("Release manager")
    portal = portal_client(client, manager)
    url = reverse("admin:partners_release_change", args=[release.pk])
    data = {
        "name": release.name,
        **_when("public_release_at", _at_second(release.public_release_at) + DAY),
        "status": "planned",
        "quota_factor": str(release.quota_factor),
        "fingerprint": "on",
        "fingerprint_alpha": "0.002",
        **_management(WINDOWS, 0, 0),
        **_management(CHECKPOINTS, 0, 0),
    }
    refused = portal.post(url, {**data, "fingerprint_patterns": '["*.weight", ""]'})
    assert refused.status_code == 200
    assert "fingerprint_patterns" in refused.context["adminform"].form.errors
    assert _audited(manager) == ["release.refused"]
    refusal = AuditEvent.objects.get(actor=manager, action="release.refused")
    assert refusal.reason == "fingerprint_patterns_invalid"
    assert (refusal.target_type, refusal.target_id) == ("partners.release", str(release.pk))
    release.refresh_from_db()
    assert not release.fingerprint

    saved = portal.post(url, {**data, "fingerprint_patterns": '["*.mlp.*.weight"]'})
    assert saved.status_code == 302
    release.refresh_from_db()
    assert release.fingerprint and release.fingerprint_patterns == ["*.mlp.*.weight"]
    assert release.fingerprint_alpha == 0.002
    updated = AuditEvent.objects.filter(actor=manager, action="release.updated").get()
    assert updated.changes["fingerprint"] == [False, True]
