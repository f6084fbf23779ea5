"""A suspended partner's open window does not read as plain "open": every surface that
shows a window's state says access is blocked (``partners.states.access_held``)."""

from datetime import timedelta

import pytest
from django.urls import reverse

from partners import actions, states
from partners.models import EmbargoWindow
from tests import factories as f
from tests.accessctl.test_portal import portal_client

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
HELD = "open · partner suspended"


@pytest.fixture
def world():
    tessel = f.partner("tessel-accel")
    v4 = f.release("v4", public_in=-DAY)
    window = f.window(v4, tessel)
    actions.suspend_partner(actor=None, partner=tessel, reason="audit")
    return {"partner": tessel, "release": v4, "window": window}


@pytest.mark.parametrize(
    "page",
    ["home", "matrix", "timeline", "partner", "release", "windows", "window-filtered"],
)
def test_every_window_state_says_a_suspended_partner_is_blocked(client, world, page):
    c = portal_client(client, f.superuser())
    url = {
        "home": reverse("admin:index"),
        "matrix": reverse("admin:partners_embargowindow_matrix"),
        "timeline": reverse("admin:partners_embargowindow_timeline"),
        "partner": reverse("admin:partners_partner_change", args=[world["partner"].pk]),
        "release": reverse("admin:partners_release_change", args=[world["release"].pk]),
        "windows": reverse("admin:partners_embargowindow_changelist"),
        "window-filtered": reverse("admin:partners_embargowindow_changelist") + "?state=open",
    }[page]
    html = c.get(url).content.decode().lower()
    assert HELD in html, page


def test_the_rule_holds_only_for_open_and_upcoming_windows_of_an_inactive_partner():
    for state in EmbargoWindow.State:
        for status in ("active", "suspended", "terminated"):
            held = states.access_held(state, status)
            blocked = status != "active" and state in {"open", "upcoming"}
            assert held == (f"partner {status}" if blocked else "")
