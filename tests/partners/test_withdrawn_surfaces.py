"""After the kill switch, every surface says the release is withdrawn: the partner API,
the dashboard and the emails (the CLI: tests/cli/test_cli.py)."""

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accessctl.audit.models import AuditEvent
from partners import actions, notify
from partners.models import Checkpoint, EmbargoWindow, Notification, Revocation
from tests import factories as f
from tests.accessctl.test_portal import portal_client

pytestmark = pytest.mark.django_db
DAY, HOUR = timedelta(days=1), timedelta(hours=1)


@pytest.fixture
def world():
    holder = f.partner("aurora")  # an open window and a grant
    waiting = f.partner("tessel")  # an upcoming window, no grant
    for p in (holder, waiting):
        f.contact(p, f"eng@{p.slug}.example")
    release = f.release("v4", public_in=-DAY)
    checkpoint = f.checkpoint(release)
    f.window(release, holder)
    f.window(release, waiting, opens=2 * DAY, closes=20 * DAY)
    grant = f.grant(checkpoint, holder)
    kept = f.release("v5", public_in=-DAY)
    f.window(kept, holder)
    f.checkpoint(kept)
    return {"holder": holder, "waiting": waiting, "release": release, "grant": grant}


def withdraw(world):
    actions.withdraw_release(actor=None, release=world["release"], reason="weights leaked")


def api(partner, path):
    secret = f.token(f.partner_user(partner))
    response = APIClient().get(path, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_the_release_list_says_withdrawn_for_every_window(world):
    before = {r["slug"]: r for r in api(world["holder"], "/api/v1/releases/")}
    assert before["v4"]["status"] == "planned" and before["v4"]["window"]["state"] == "open"
    assert before["v4"]["withdrawn_at"] is None
    withdraw(world)
    for partner in (world["holder"], world["waiting"]):
        rows = {r["slug"]: r for r in api(partner, "/api/v1/releases/")}
        assert rows["v4"]["status"] == "withdrawn"
        assert rows["v4"]["window"]["state"] == "withdrawn"
        assert rows["v4"]["withdrawn_at"] is not None
    kept = {r["slug"]: r for r in api(world["holder"], "/api/v1/releases/")}["v5"]
    assert kept["status"] == "planned" and kept["window"]["state"] == "open"


def test_checkpoints_of_a_withdrawn_release_are_pulled(world):
    assert [c["status"] for c in api(world["holder"], "/api/v1/releases/v4/checkpoints/")] == [
        "available"
    ]
    withdraw(world)
    assert [c["status"] for c in api(world["holder"], "/api/v1/releases/v4/checkpoints/")] == [
        "pulled"
    ]
    assert [c["status"] for c in api(world["holder"], "/api/v1/releases/v5/checkpoints/")] == [
        "available"
    ]


def test_the_schema_lists_the_states():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    enums = {name: c.get("enum") for name, c in components.items() if "enum" in c}
    assert ["upcoming", "open", "closed", "withdrawn"] in enums.values()
    assert ["available", "pulled"] in enums.values()
    assert ["planned", "launched", "cancelled", "withdrawn"] in enums.values()


def test_the_dashboard_draws_withdrawn_windows_as_withdrawn(client, world):
    c = portal_client(client, f.staff("Release manager"))
    page = timeline_of(c.get(reverse("admin:index")).content.decode())
    assert page.count('class="tl-window tl-open"') == 2 and "tl-window tl-withdrawn" not in page
    withdraw(world)
    page = timeline_of(c.get(reverse("admin:index")).content.decode())
    # v4's two windows (open, upcoming) are withdrawn; v5's stays open.
    assert page.count('class="tl-window tl-withdrawn"') == 2
    assert page.count('class="tl-window tl-open"') == 1 and "tl-window tl-upcoming" not in page
    assert ">withdrawn " in page and "WITHDRAWN " in page


def timeline_of(page: str) -> str:
    return page.split('id="timeline"')[1].split("</section>")[0]


def test_the_withdrawal_email_says_withdrawn_to_every_partner_with_a_window(world):
    withdraw(world)
    actions.cascade_revocation(Revocation.objects.get().pk)
    told = Notification.objects.filter(kind="grant_revoked")
    assert sorted(told.values_list("email", flat=True)) == [
        "eng@aurora.example",
        "eng@tessel.example",
    ]
    mail.outbox.clear()
    notify.send_due()
    partner_mail = {m.to[0]: m for m in mail.outbox if m.to[0].startswith("eng@")}
    for address, message in partner_mail.items():
        assert message.subject == "Release v4 withdrawn: access ended", address
        assert "The lab withdrew release v4" in message.body
        assert "no grant can be issued for it again" in message.body
        assert "request a new" not in message.body and "new grant" not in message.body
        html = message.alternatives[0][0]
        assert "Release v4 withdrawn" in html
    assert "1 grant ended, for: v4:step-1000" in partner_mail["eng@aurora.example"].body
    assert "grant ended" not in partner_mail["eng@tessel.example"].body


def test_a_pulled_checkpoint_email_says_pulled(world):
    actions.pull_checkpoint(actor=None, checkpoint=world["grant"].checkpoint, reason="bad")
    actions.cascade_revocation(Revocation.objects.get().pk)
    notify.send_due()
    (message,) = [m for m in mail.outbox if "pulled" in m.subject]
    assert message.to == ["eng@aurora.example"]
    assert message.subject == "Checkpoint v4:step-1000 pulled: access ended"
    assert "no grant can be issued for it again" in message.body


def test_a_withdrawn_release_announces_no_window_moments(world):
    withdraw(world)
    now = timezone.now()
    waiting = EmbargoWindow.objects.get(partner=world["waiting"])
    EmbargoWindow.objects.filter(pk=waiting.pk).update(
        opens_at=now - HOUR, embargo_lifts_at=now - HOUR
    )
    assert actions.open_windows() >= 1  # marked, not due again ...
    waiting.refresh_from_db()
    assert waiting.opened_at is not None
    # ... with no "window.opened" after the withdrawal: the window never opened.
    assert not AuditEvent.objects.filter(action="window.opened", target_id=str(waiting.pk)).exists()
    assert actions.announce_deadlines(at=now + 19 * DAY) == 1  # only v5's window is due
    assert not Notification.objects.filter(  # ... and nothing announced
        kind="window_opened", context__release_slug="v4"
    ).exists()
    assert not Notification.objects.filter(
        kind="window_closing", context__release_slug="v4"
    ).exists()


def test_the_manifest_of_a_withdrawn_release_is_refused(world):
    checkpoint = world["grant"].checkpoint
    secret = f.token(f.partner_user(world["holder"]))
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}")
    path = f"/api/v1/checkpoints/{checkpoint.pk}/manifest"
    assert client.get(path).status_code == 200
    withdraw(world)
    response = client.get(path)
    assert response.status_code == 403 and response.json()["code"] == "release_withdrawn"


def test_the_manifest_of_a_pulled_checkpoint_is_refused(world):
    checkpoint = world["grant"].checkpoint
    secret = f.token(f.partner_user(world["holder"]))
    actions.pull_checkpoint(actor=None, checkpoint=checkpoint, reason="bad")
    response = APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}").get(
        f"/api/v1/checkpoints/{checkpoint.pk}/manifest"
    )
    assert response.status_code == 403 and response.json()["code"] == "checkpoint_pulled"


def _column(page: str, header: str) -> list[str]:
    """The cells of one column of the portal's change list, in row order."""
    import re

    cells = re.findall(rf'<td class="field-{header}">(.*?)</td>', page)
    return [re.sub(r"<[^>]+>", "", c).strip() for c in cells]


def _changelist(c, model: str, **query) -> str:
    return c.get(reverse(f"admin:partners_{model}_changelist"), query).content.decode()


def test_portal_window_list_and_filter_say_withdrawn(client, world):
    c = portal_client(client, f.staff("Release manager"))
    withdraw(world)
    page = _changelist(c, "embargowindow", release__id__exact=world["release"].pk)
    assert _column(page, "window_state") == ["Withdrawn", "Withdrawn"]
    for state, expected in [("open", 1), ("upcoming", 0), ("withdrawn", 2), ("closed", 0)]:
        page = _changelist(c, "embargowindow", state=state)
        assert len(_column(page, "window_state")) == expected, state
    assert "?state=withdrawn" in page  # offered as a choice


def test_portal_checkpoint_list_and_filter_say_pulled(client, world):
    c = portal_client(client, f.staff("Release manager"))
    withdraw(world)
    pulled = _changelist(c, "checkpoint", state="pulled")
    assert _column(pulled, "checkpoint_state") == ["Pulled"]
    assert "v4:" in pulled and "v5:" not in pulled
    available = _changelist(c, "checkpoint", state="available")
    assert _column(available, "checkpoint_state") == ["Available"]
    assert "v5:" in available and "v4:" not in available
    release_page = c.get(
        reverse("admin:partners_release_change", args=[world["release"].pk])
    ).content.decode()
    checkpoints = release_page.split('id="story-checkpoints"')[1].split("</table>")[0]
    assert "Pulled" in checkpoints and "Available" not in checkpoints
    assert Checkpoint.objects.filter(release=world["release"], status="available").exists()
