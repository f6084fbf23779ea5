"""Moving a partner to a jurisdiction a release blocks: shown, confirmed, then ended at
once (windows closed, grants revoked through the revocation machinery, evidence)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accessctl.audit.models import AuditEvent
from partners import actions, queries
from partners.errors import ActionError
from partners.models import EmbargoWindow, Grant, Notification, Partner, Revocation
from tests import factories as f
from tests.accessctl.test_portal import portal_client
from tests.evidence import last_event_id, the_refusal_since

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


@pytest.fixture
def world():
    partner = f.partner("aurora", jurisdiction="US")
    f.contact(partner, "eng@aurora.example")
    member = f.partner_user(partner, username="ana")
    blocks_ru = f.release("v4", public_in=-DAY, policy="deny", policy_jurisdictions=["RU"])
    also_blocks = f.release(
        "v5", public_in=10 * DAY, policy="allow", policy_jurisdictions=["US", "CA"]
    )
    allows_ru = f.release("v6", public_in=-DAY)
    open_window = f.window(blocks_ru, partner)
    upcoming = f.window(also_blocks, partner, opens=2 * DAY, closes=20 * DAY)
    kept = f.window(allows_ru, partner)
    grant = f.grant(f.checkpoint(blocks_ru), partner)
    early = f.grant(f.checkpoint(also_blocks), partner)  # early access, upcoming window
    kept_grant = f.grant(f.checkpoint(allows_ru), partner)
    past = f.window(blocks_ru, partner, opens=-10 * DAY, closes=-5 * DAY)
    return {
        "partner": partner,
        "member": member,
        "open": open_window,
        "upcoming": upcoming,
        "kept": kept,
        "past": past,
        "grant": grant,
        "early": early,
        "kept_grant": kept_grant,
    }


def test_the_selector_lists_what_a_move_ends(world):
    ended = queries.access_ended_by_move(world["partner"], "RU", timezone.now())
    assert ended.window_ids == [world["open"].pk, world["upcoming"].pk]
    assert [g.pk for g in ended.grants] == [world["grant"].pk, world["early"].pk]
    assert "ana" in ended.members and ended.contacts[0].endswith("<eng@aurora.example>")
    assert not queries.access_ended_by_move(world["partner"], "US", timezone.now()).windows
    assert not queries.access_ended_by_move(world["partner"], "CA", timezone.now()).windows


@pytest.mark.parametrize("confirm", [None, [], "partial", "extra"])
def test_the_action_refuses_without_the_exact_confirmation(world, confirm):
    ids = [world["open"].pk, world["upcoming"].pk]
    if confirm in ("partial", "extra"):
        confirm = {"partial": ids[:1], "extra": [*ids, world["kept"].pk]}[confirm]
    before = last_event_id()
    with pytest.raises(ActionError) as refused:
        actions.update_partner(
            actor=f.staff("Partner manager"),
            partner=world["partner"],
            jurisdiction="RU",
            confirm_ended_windows=confirm,
        )
    assert refused.value.code == "confirmation_required"
    assert f"#{ids[0]}" in refused.value.message and f"#{ids[1]}" in refused.value.message
    assert Partner.objects.get(pk=world["partner"].pk).jurisdiction == "US"
    assert Grant.objects.filter(status="active").count() == 3
    the_refusal_since(before, "confirmation_required", action="partner.refused")


def test_a_move_that_ends_nothing_needs_no_confirmation(world):
    actions.update_partner(actor=None, partner=world["partner"], jurisdiction="CA")
    assert Partner.objects.get(pk=world["partner"].pk).jurisdiction == "CA"
    assert not AuditEvent.objects.filter(action="window.ended").exists()


def test_confirmed_the_access_ends_in_the_same_transaction(world):
    officer = f.staff("Partner manager")
    before = timezone.now()
    actions.update_partner(
        actor=officer,
        partner=world["partner"],
        jurisdiction="RU",
        confirm_ended_windows=[world["upcoming"].pk, world["open"].pk],
    )
    after = timezone.now()
    open_window = EmbargoWindow.objects.get(pk=world["open"].pk)
    assert before <= open_window.closes_at <= after and open_window.state_at(after) == "closed"
    upcoming = EmbargoWindow.objects.get(pk=world["upcoming"].pk)
    assert upcoming.closes_at - upcoming.opens_at == timedelta(microseconds=1)
    assert upcoming.opened_at and upcoming.closed_at  # the lifecycle will not announce it
    for name in ("grant", "early"):
        grant = Grant.objects.get(pk=world[name].pk)
        assert grant.status == "revoked" and grant.revocation.scope == "grant"
        assert "export control" in grant.revoke_reason
        assert grant.expires_at <= grant.window.closes_at
    assert Grant.objects.get(pk=world["kept_grant"].pk).status == "active"
    assert EmbargoWindow.objects.get(pk=world["kept"].pk).closes_at > after
    assert EmbargoWindow.objects.get(pk=world["past"].pk).closed_at is None  # untouched
    assert Revocation.objects.filter(scope="grant").count() == 2
    ended = AuditEvent.objects.filter(action="window.ended").order_by("target_id")
    assert [e.target_id for e in ended] == sorted(
        [str(world["open"].pk), str(world["upcoming"].pk)]
    )
    assert {e.reason for e in ended} == {"jurisdiction_blocked"}
    assert all(e.actor_label == officer.username for e in ended)
    by_window = {e.target_id: e.changes for e in ended}
    assert by_window[str(world["open"].pk)]["grants_revoked"] == [world["grant"].pk]
    assert by_window[str(world["open"].pk)]["release"] == "v4"
    updated = AuditEvent.objects.get(action="partner.updated")
    assert updated.changes["jurisdiction"] == ["US", "RU"]
    assert updated.changes["ended"] == {
        "windows": [world["open"].pk, world["upcoming"].pk],
        "grants": [world["grant"].pk, world["early"].pk],
    }
    assert AuditEvent.objects.filter(action="grant.revoked").count() == 2
    told = Notification.objects.filter(kind="window_closed", email="eng@aurora.example")
    assert told.count() == 2
    # The next download is refused, whatever the tasks have done.
    assert not f.authorize(Grant.objects.get(pk=world["grant"].pk))
    # And no lifecycle task records or announces the ended windows again.
    assert actions.close_windows() == 0
    assert not AuditEvent.objects.filter(action="window.closed").exists()


def _change_form(partner, **overrides):
    data = {
        "legal_name": partner.legal_name,
        "kind": partner.kind,
        "jurisdiction": str(partner.jurisdiction),
        "nda_reference": partner.nda_reference,
        "nda_expires_at_0": timezone.localtime(partner.nda_expires_at).strftime("%Y-%m-%d"),
        "nda_expires_at_1": timezone.localtime(partner.nda_expires_at).strftime("%H:%M:%S"),
        "allowed_networks": "[]",
    }
    for prefix in ("contacts", "memberships", "windows"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    data.update(overrides)
    return data


def test_the_portal_shows_what_ends_and_asks_first(client, world):
    c = portal_client(client, f.staff("Partner manager"))
    url = reverse("admin:partners_partner_change", args=[world["partner"].pk])
    page = c.post(url, _change_form(world["partner"], jurisdiction="RU"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="confirm-access-ends"' in html, html[:2000]
    assert f"#{world['open'].pk}" in html and f"#{world['upcoming'].pk}" in html
    assert f"#{world['grant'].pk}" in html and f"#{world['early'].pk}" in html
    assert "ana" in html and "eng@aurora.example" in html
    assert f"#{world['kept'].pk}" not in html
    # Nothing happened yet.
    assert Partner.objects.get(pk=world["partner"].pk).jurisdiction == "US"
    assert Grant.objects.filter(status="active").count() == 3
    confirm = page.context["confirm_value"]
    done = c.post(
        url,
        _change_form(world["partner"], jurisdiction="RU", _confirm_ended_windows=confirm),
    )
    assert done.status_code == 302, done.content.decode()[:2000]
    assert Partner.objects.get(pk=world["partner"].pk).jurisdiction == "RU"
    assert Grant.objects.filter(status="active").count() == 1
    assert AuditEvent.objects.filter(action="window.ended").count() == 2


def test_the_portal_refuses_a_stale_confirmation(client, world):
    c = portal_client(client, f.staff("Partner manager"))
    url = reverse("admin:partners_partner_change", args=[world["partner"].pk])
    stale = str(world["open"].pk)  # the upcoming window was set after the page was shown
    response = c.post(
        url, _change_form(world["partner"], jurisdiction="RU", _confirm_ended_windows=stale)
    )
    assert response.status_code == 302
    assert Partner.objects.get(pk=world["partner"].pk).jurisdiction == "US"
    assert Grant.objects.filter(status="active").count() == 3
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("confirm exactly these windows" in m for m in messages)


def test_a_change_that_ends_nothing_saves_directly_in_the_portal(client, world):
    c = portal_client(client, f.staff("Partner manager"))
    url = reverse("admin:partners_partner_change", args=[world["partner"].pk])
    response = c.post(url, _change_form(world["partner"], jurisdiction="CA"))
    assert response.status_code == 302
    assert Partner.objects.get(pk=world["partner"].pk).jurisdiction == "CA"


def test_a_grant_request_for_a_blocked_release_is_404_with_its_refusal(world):
    """After the move, the release is invisible (404, like another partner's), but the
    request for it is a refusal and leaves one ``grant.refused`` naming the checkpoint."""
    from tests.partners.api.test_api import client_for

    checkpoint = world["grant"].checkpoint
    actions.update_partner(
        actor=f.staff("Partner manager"),
        partner=world["partner"],
        jurisdiction="RU",
        confirm_ended_windows=[world["upcoming"].pk, world["open"].pk],
    )
    client = client_for(f.token(world["member"]))
    before = last_event_id()
    response = client.post("/api/v1/grants/", {"checkpoint": checkpoint.pk}, format="json")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    refusal = the_refusal_since(before, "jurisdiction_blocked", "grant.refused")
    assert refusal.changes["checkpoint"] == str(checkpoint.pk)
    assert refusal.partner_id == world["partner"].pk


def test_a_checkpoint_no_window_ever_named_is_a_plain_404(world):
    other = f.checkpoint(f.release("v9", public_in=-DAY))
    client = client_for_member(world)
    before = last_event_id()
    response = client.post("/api/v1/grants/", {"checkpoint": other.pk}, format="json")
    assert response.status_code == 404
    # Evidence like any 404 under /api/ (one api.denied naming what was asked for), not a
    # refused grant: nothing was given that could be refused.
    refusal = the_refusal_since(before, "not_found", "api.denied")
    assert (refusal.target_type, refusal.target_id) == ("partners.checkpoint", str(other.pk))


def client_for_member(world):
    from tests.partners.api.test_api import client_for

    return client_for(f.token(world["member"]))
