"""The timeline's period moves: ``?from=YYYY-MM-DD&days=N`` with earlier and later links;
a release filter shows that release's windows whenever they are (a release withdrawn
today whose windows are long past); bad input is reported on the page, never a 500."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from partners import actions
from tests import factories as f
from tests.accessctl.test_portal import portal_client

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
URL = "/admin/timeline/"


@pytest.fixture
def world():
    aurora = f.partner("aurora")
    old = f.release("v1", public_in=-300 * DAY)
    f.window(old, aurora, opens=-200 * DAY, closes=-150 * DAY)
    actions.withdraw_release(actor=None, release=old, reason="found a leak today")
    current = f.release("v4", public_in=-DAY)
    f.window(current, aurora)
    return {"old": old}


def page(client, query=""):
    response = portal_client(client, f.superuser()).get(URL + query)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def bars(html):
    return set(re.findall(r"<title>(v\d) x aurora:", html))


def test_the_url_is_the_timelines():
    assert reverse("admin:partners_embargowindow_timeline") == URL


def test_by_default_old_windows_are_out_of_the_period(client, world):
    assert bars(page(client)) == {"v4"}


def test_a_release_filter_shows_its_windows_whenever_they_are(client, world):
    html = page(client, "?release=v1")
    assert bars(html) == {"v1"}
    assert "withdrawn" in html and "No window in this period" not in html


def test_the_period_moves_with_from_and_days_and_its_links(client, world):
    start = (timezone.now() - 210 * DAY).date()
    html = page(client, f"?from={start:%Y-%m-%d}&days=90")
    assert bars(html) == {"v1"}
    assert f"90 days from {start:%Y-%m-%d}" in html
    later = re.search(r'href="([^"]+)" id="period-later"', html)
    assert later and f"from={start + 90 * DAY:%Y-%m-%d}" in later[1]
    earlier = re.search(r'href="([^"]+)" id="period-earlier"', html)
    assert earlier and f"from={start - 90 * DAY:%Y-%m-%d}" in earlier[1]
    assert 'class="tl-now"' not in html  # today is outside this period
    assert (
        bars(page(client, earlier[1].replace("&amp;", "&").split("/admin/timeline/")[1])) == set()
    )


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("?from=2026-13-40", "from: Enter a valid date."),
        ("?from=yesterday", "from: Enter a valid date."),
        ("?from=9999-12-31", "from: Choose a day from 2000-01-01 to 2100-12-31."),
        ("?days=0", "days: Ensure this value is greater than or equal to 1."),
        ("?days=100000", "days: Ensure this value is less than or equal to 366."),
        ("?days=many", "days: Enter a whole number."),
    ],
)
def test_bad_period_input_is_reported_not_a_server_error(client, world, query, said):
    html = page(client, query)
    assert said in re.sub(r"<[^>]+>", "", html)
    assert bars(html) == {"v4"}  # drawn over the default period
