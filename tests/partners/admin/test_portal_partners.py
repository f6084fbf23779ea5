"""Editing a partner's contacts and members in the portal: the real change form, submitted
as a browser would, by a Partner manager; every change goes through an action."""

import re

import pytest
from django.urls import reverse

from accessctl.audit.models import AuditEvent
from partners.models import AccessToken, Membership, Partner, PartnerContact
from tests import factories as f
from tests.accessctl.test_portal import portal_client
from tests.forms import form_fields

pytestmark = pytest.mark.django_db

FORM = "partner_form"


def change_page(c, partner):
    response = c.get(reverse("admin:partners_partner_change", args=[partner.pk]))
    assert response.status_code == 200
    return form_fields(response.content.decode(), FORM)


def submit(c, url, data):
    response = c.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    return response


@pytest.fixture
def manager(client):
    return portal_client(client, f.staff("Partner manager"))


def test_new_partner_with_a_contact_and_a_member(manager):
    member = f.UserFactory()
    url = reverse("admin:partners_partner_add")
    data = form_fields(manager.get(url).content.decode(), FORM)
    data.update(
        {
            "slug": "nova",
            "legal_name": "Nova Chips",
            "kind": "gpu_vendor",
            "jurisdiction": "FR",
            "nda_reference": "NDA-9",
            "nda_expires_at_0": "2099-01-01",
            "nda_expires_at_1": "00:00:00",
            "allowed_networks": "[]",
            "contacts-TOTAL_FORMS": "1",
            "contacts-0-name": "Nadia",
            "contacts-0-email": "nadia@nova.example",
            "contacts-0-role": "lead",
            "contacts-0-notify": "on",
            "memberships-TOTAL_FORMS": "1",
            "memberships-0-user": str(member.pk),
        }
    )
    submit(manager, url, data)
    partner = Partner.objects.get(slug="nova")
    assert list(partner.contacts.values_list("email", flat=True)) == ["nadia@nova.example"]
    assert Membership.objects.get(user=member).partner == partner
    page = manager.get(reverse("admin:partners_partner_change", args=[partner.pk]))
    assert "nadia@nova.example" in page.content.decode()
    assert member.username in page.content.decode()
    actions = set(AuditEvent.objects.filter(partner_id=partner.pk).values_list("action", flat=True))
    assert {"partner.created", "contact.added", "member.added"} <= actions


def test_existing_partner_add_change_and_remove_contacts_and_members(manager):
    partner = f.partner("aurora")
    kept = f.contact(partner, "kept@aurora.example")
    gone = f.contact(partner, "gone@aurora.example")
    leaving = f.partner_user(partner)
    secret = f.token(leaving)
    newcomer = f.UserFactory()
    url = reverse("admin:partners_partner_change", args=[partner.pk])
    data = change_page(manager, partner)
    index = {data[f"contacts-{i}-id"]: i for i in range(int(data["contacts-TOTAL_FORMS"]))}
    data[f"contacts-{index[str(kept.pk)]}-role"] = "CTO"
    data[f"contacts-{index[str(gone.pk)]}-DELETE"] = "on"
    n = int(data["contacts-TOTAL_FORMS"])
    data.update(
        {
            "contacts-TOTAL_FORMS": str(n + 1),
            f"contacts-{n}-name": "New",
            f"contacts-{n}-email": "new@aurora.example",
            f"contacts-{n}-notify": "on",
            "memberships-0-DELETE": "on",
            "memberships-TOTAL_FORMS": "2",
            "memberships-1-user": str(newcomer.pk),
        }
    )
    assert data["memberships-0-id"] == str(leaving.partner_membership.pk)
    submit(manager, url, data)

    assert set(partner.contacts.values_list("email", "role")) == {
        ("kept@aurora.example", "CTO"),
        ("new@aurora.example", ""),
    }
    assert list(Membership.objects.filter(partner=partner).values_list("user", flat=True)) == [
        newcomer.pk
    ]
    token = AccessToken.objects.get(user=leaving)
    assert token.revoked_at is not None
    page = manager.get(url).content.decode()
    assert "new@aurora.example" in page and "gone@aurora.example" not in page
    assert newcomer.username in page
    actions = list(
        AuditEvent.objects.filter(partner_id=partner.pk).values_list("action", flat=True)
    )
    for action in ("contact.added", "contact.changed", "contact.removed", "member.added"):
        assert action in actions
    assert "member.removed" in actions and "token.revoked" in actions
    assert secret not in page


def test_partner_manager_picks_a_new_member_from_the_form_itself(manager):
    """No user autocomplete (it needs auth.view_user, which a Partner manager lacks): the
    form offers exactly the users add_member accepts, and submitting it adds one."""
    partner, other = f.partner("aurora"), f.partner("borealis")
    current = f.partner_user(partner)
    free = f.UserFactory()
    excluded = [f.partner_user(other), f.staff(), f.UserFactory(is_active=False)]
    url = reverse("admin:partners_partner_change", args=[partner.pk])
    page = manager.get(url).content.decode()
    select = _select(page, "memberships-__prefix__-user")
    assert "admin-autocomplete" not in select
    offered = set(re.findall(r'<option value="([^"]*)"', select))
    assert offered == {"", str(current.pk), str(free.pk)}
    assert not offered & {str(u.pk) for u in excluded}
    data = change_page(manager, partner)
    n = int(data["memberships-TOTAL_FORMS"])
    data.update({"memberships-TOTAL_FORMS": str(n + 1), f"memberships-{n}-user": str(free.pk)})
    submit(manager, url, data)
    assert Membership.objects.get(user=free).partner == partner
    assert AuditEvent.objects.filter(action="member.added", partner_id=partner.pk).count() == 2


def _select(page: str, name: str) -> str:
    start = page.rindex("<select", 0, page.index(f'name="{name}"'))
    return page[start : page.index("</select>", start)]


def test_member_of_another_partner_cannot_be_added(manager):
    partner, other = f.partner(), f.partner()
    taken = f.partner_user(other)
    url = reverse("admin:partners_partner_change", args=[partner.pk])
    data = change_page(manager, partner)
    data.update({"memberships-TOTAL_FORMS": "1", "memberships-0-user": str(taken.pk)})
    response = manager.post(url, data)
    assert response.status_code == 200
    assert Membership.objects.get(user=taken).partner == other
    assert not PartnerContact.objects.filter(partner=partner).exists()


def test_compliance_cannot_edit_members(client):
    partner = f.partner()
    c = portal_client(client, f.staff("Compliance"))
    url = reverse("admin:partners_partner_change", args=[partner.pk])
    response = c.post(url, {"memberships-TOTAL_FORMS": "1", "memberships-0-user": "1"})
    assert response.status_code == 403
    assert not Membership.objects.filter(partner=partner).exists()
