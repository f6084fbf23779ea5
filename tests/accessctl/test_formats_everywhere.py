"""Sizes and times read the same in the portal, the emails and the CLI: binary units,
labelled (``48.0 KiB``), and ``2026-11-29 16:40:05 UTC``."""

import re

import pytest
from django.core import mail
from django.template import engines
from django.utils import timezone

from accessctl_cli.main import human, when
from partners import notify
from tests import factories as f

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


@pytest.mark.django_db
def test_emails_show_binary_sizes_and_times_to_the_second_in_utc():
    partner = f.partner("aurora")
    f.contact(partner, "cto@aurora.example")
    release = f.release("v3")
    f.window(release, partner)
    f.grant(f.checkpoint(release), partner, quota_bytes=24 * 1024)
    notify.send_due()
    issued = next(m for m in mail.outbox if "cto@aurora.example" in m.to and "24.0 KiB" in m.body)
    assert re.search(rf"until {STAMP}, up to 24\.0 KiB", issued.body), issued.body
    assert "KB" not in issued.body and "MB" not in issued.body


def test_templates_have_the_filters_built_in():
    template = engines["django"].from_string("{{ n|size }} {{ at|moment }} {{ none|moment }}")
    at = timezone.now()
    shown = template.render({"n": 10 * 1024**3, "at": at, "none": None})
    assert shown == f"10.0 GiB {at:%Y-%m-%d %H:%M:%S} UTC -"


def test_the_cli_shows_the_apis_times_and_sizes_the_same_way():
    assert when("2026-11-29T16:40:05.123456Z") == "2026-11-29 16:40:05 UTC"
    assert when("2026-11-29T17:40:05+01:00") == "2026-11-29 16:40:05 UTC"
    assert when(None) == "" and when("not a time") == "not a time"
    assert human(80 * 1024**2) == "80.0 MiB"


@pytest.mark.django_db
def test_the_token_invitation_says_until_when_to_the_second():
    member = f.partner_user(f.partner("aurora"), email="dev@aurora.example")
    f.invite(member)
    (message,) = [m for m in mail.outbox if "dev@aurora.example" in m.to]
    assert re.search(rf"until {STAMP}\)", message.body), message.body
