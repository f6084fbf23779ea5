"""A form changed in one field changes that field only: the date-times the portal shows
to the second keep their stored microseconds (every change form saved unchanged:
``test_admin_matrix.test_saving_a_change_form_unchanged_changes_nothing``)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accessctl.audit.models import AuditEvent
from partners.models import EmbargoWindow, Partner
from tests import factories as f
from tests.accessctl.test_portal import portal_client
from tests.forms import form_fields

pytestmark = pytest.mark.django_db


def _post_changed(client, url, form_id, **changes):
    data = form_fields(client.get(url).content.decode(), form_id)
    data.update(changes)
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]


def test_changing_a_windows_tier_keeps_its_times_to_the_microsecond(client):
    partner, release = f.partner(), f.release(public_in=-timedelta(days=1))
    window = f.window(release, partner)
    assert window.closes_at.microsecond  # as an action stores it
    c = portal_client(client, f.staff("Release manager"))
    url = reverse("admin:partners_embargowindow_change", args=[window.pk])
    _post_changed(c, url, "embargowindow_form", tier="tier-1")
    after = EmbargoWindow.objects.get(pk=window.pk)
    assert after.tier == "tier-1"
    assert (after.opens_at, after.closes_at, after.embargo_lifts_at) == (
        window.opens_at,
        window.closes_at,
        window.embargo_lifts_at,
    )
    event = AuditEvent.objects.filter(action="window.set").latest("id")
    assert event.changes == {"tier": ["", "tier-1"]}


def test_changing_a_partners_name_sends_only_the_name(client):
    partner = f.partner(nda_expires_at=timezone.now() + timedelta(days=300))
    c = portal_client(client, f.staff("Partner manager"))
    url = reverse("admin:partners_partner_change", args=[partner.pk])
    _post_changed(c, url, "partner_form", legal_name="Renamed Inc.")
    after = Partner.objects.get(pk=partner.pk)
    assert (after.legal_name, after.nda_expires_at) == ("Renamed Inc.", partner.nda_expires_at)
    event = AuditEvent.objects.filter(action="partner.updated").latest("id")
    assert event.changes == {"legal_name": [partner.legal_name, "Renamed Inc."]}


def test_adding_a_window_names_it_in_the_message(client):
    partner, release = f.partner("aurora"), f.release("v9")
    c = portal_client(client, f.staff("Release manager"))
    url = reverse("admin:partners_embargowindow_add")
    data = form_fields(c.get(url).content.decode(), "embargowindow_form")
    at = timezone.now() + timedelta(days=2)
    data.update(
        release=release.pk,
        partner=partner.pk,
        opens_at_0=at.strftime("%Y-%m-%d"),
        opens_at_1="10:00:00",
        closes_at_0=(at + timedelta(days=10)).strftime("%Y-%m-%d"),
        closes_at_1="10:00:00",
    )
    page = c.post(url, data, follow=True).content.decode()
    assert "v9 x aurora" in page and "None x None" not in page
    assert EmbargoWindow.objects.filter(release=release, partner=partner).exists()
