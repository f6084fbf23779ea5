"""The page that shows a new token once says whose it is, what it may do and when it
expires (to the second, in UTC), and its click-to-select works under the CSP: an
own-origin script file, no inline script or handler."""

import re

import pytest
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from tests import factories as f
from tests.accessctl.test_portal import current_code, portal_client

pytestmark = pytest.mark.django_db

SENTENCE = re.compile(
    r"Token <strong>(?P<name>[^<]+)</strong> for <strong>(?P<owner>[^<]+)</strong>"
    r"(?: at\s+<strong>(?P<partner>[^<]+)</strong>)?\s+\((?P<scopes>[^)]+)\), expires "
    r"(?P<expires>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC)\."
)


def _no_inline_script(html: str) -> None:
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script"
    assert not re.search(r"\son[a-z]+=", html), "an inline event handler"
    assert "partners/portal.js" in html


def test_staff_token_page_says_everything_and_selects_by_script(client):
    user = f.staff("Release manager", username="rm-ana")
    c = portal_client(client, user)
    device = TOTPDevice.objects.get(user=user)
    response = c.post(
        reverse("admin:partners_accesstoken_add"),
        {"name": "ci", "second_factor": current_code(device), "allowed_networks": "[]"},
    )
    html = response.content.decode()
    shown = SENTENCE.search(html)
    assert shown, re.search(r'id="token-facts">.*?</p>', html, re.S)[0]
    assert (shown["name"], shown["owner"], shown["scopes"]) == ("ci", "rm-ana", "staff")
    _no_inline_script(html)
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_member_token_page_says_everything_and_selects_by_script():
    member = f.partner_user(f.partner("aurora-gpu"))
    code = f.invite(member)
    response = APIClient().post(reverse("token-claim"), {"code": code}, HTTP_ORIGIN="null")
    html = response.content.decode()
    shown = SENTENCE.search(html)
    assert shown, re.search(r'id="token-facts">.*?</p>', html, re.S)[0]
    assert (shown["owner"], shown["partner"]) == (member.username, "aurora-gpu")
    assert shown["scopes"] == "download, grants:request, read"
    _no_inline_script(html)


def test_the_select_script_is_served_from_this_origin(client):
    from pathlib import Path

    from django.contrib.staticfiles import finders

    script = Path(finders.find("partners/portal.js")).read_text()
    assert 'getElementById("token-secret")' in script and ".select()" in script
