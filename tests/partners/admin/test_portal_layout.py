"""The partner list stays compact: the jurisdiction filter is one select of the
countries partners are in (Django's lists every country as a link, 6,000 px tall)."""

import re

import pytest
from django.urls import reverse

from tests import factories as f
from tests.accessctl.test_portal import portal_client

pytestmark = pytest.mark.django_db


def test_jurisdiction_filter_is_one_select_of_the_countries_in_use(client):
    f.partner("aurora", jurisdiction="US")
    f.partner("borealis", jurisdiction="FR")
    c = portal_client(client, f.staff("Partner manager"))
    html = c.get(reverse("admin:partners_partner_changelist")).content.decode()
    select = re.search(
        r'<select class="filter-select" id="filter-jurisdiction".*?</select>', html, re.S
    )
    assert select, "no select for the jurisdiction filter"
    options = re.findall(r"<option [^>]*>([^<]+)</option>", select[0])
    assert options == ["All", "France (FR)", "United States of America (US)"]
    filter_links = re.findall(r'<li[^>]*>\s*<a href="\?[^"]*jurisdiction', html)
    assert not filter_links  # no link per country


def test_the_jurisdiction_filter_filters(client):
    f.partner("aurora", jurisdiction="US")
    f.partner("borealis", jurisdiction="FR")
    c = portal_client(client, f.staff("Partner manager"))
    html = c.get(reverse("admin:partners_partner_changelist"), {"jurisdiction": "FR"}).content
    assert b"borealis" in html and b">aurora<" not in html


def test_a_lists_date_hierarchy_names_each_day_in_full(client):
    from django.utils import timezone

    f.partner("aurora")  # its creation is an audit event today
    now = timezone.now()
    c = portal_client(client, f.superuser())
    url = f"/admin/audit/auditevent/?occurred_at__month={now.month}&occurred_at__year={now.year}"
    html = c.get(url).content.decode()
    assert f">{now:%Y-%m-%d}</a>" in html
    assert f">{now:%m-%d}</a>" not in html
