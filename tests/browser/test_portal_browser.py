"""A security officer signs in to the portal in a real browser and revokes a grant; a
partner member collects their token from the emailed link (and by pasting the code).

Debian's chromium, driven by Playwright, against a live server on loopback.
"""

import re

import pytest
from django.core import mail
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from partners.models import AccessToken, Grant
from tests import factories as f

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_security_officer_signs_in_and_revokes_a_grant(live_server, page):
    partner = f.partner("aurora-gpu")
    release = f.release("v4")
    checkpoint = f.checkpoint(release)
    f.window(release, partner)
    grant = f.grant(checkpoint, partner)
    officer = f.staff("Security officer", username="sec-dan")
    device = TOTPDevice.objects.create(user=officer, name="phone", confirmed=True)
    code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=6):06d}"

    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "sec-dan")
    page.fill("#id_password", "correct horse battery")
    page.fill("#id_otp_token", code)
    page.click("input[type=submit]")
    assert page.locator("#dashboard").is_visible()
    assert "aurora-gpu" in page.locator("#timeline").inner_text()

    page.goto(f"{live_server.url}/admin/partners/grant/")
    page.check(f"input[name=_selected_action][value='{grant.pk}']")
    page.select_option("select[name=action]", "revoke")
    page.click("button[name=index]")
    page.fill("#id_reason", "Leaked presigned URL")
    page.click("#reason-form input[type=submit]")

    assert "Revoke selected grants: 1 done." in page.locator(".messagelist").inner_text()
    grant.refresh_from_db()
    assert grant.status == Grant.Status.REVOKED
    assert grant.revoked_by == officer
    assert grant.revoke_reason == "Leaked presigned URL"


# A partner member collects the token a staff member asked for (issue #11, finding 2).


def watch(page):
    """Console errors (a CSP violation is one) and page errors, as a function returning
    those seen so far; a failed load of the page itself is not one (a refusal sets its
    status, and chromium logs it as a failed load), a failed file it asks for is (the
    favicon the token pages once lacked: ``/favicon.ico``, 404)."""
    problems: list[tuple[str, str]] = []
    documents: set[str] = set()

    def console(m) -> None:
        if m.type == "error":
            url = m.location.get("url", "")
            problems.append((f"console: {m.text} {url}", url))

    def response(r) -> None:
        if r.request.resource_type == "document":
            documents.add(r.url)

    page.on("console", console)
    page.on("pageerror", lambda e: problems.append((f"page error: {e}", "")))
    page.on("response", response)
    return lambda: [text for text, url in problems if not url or url not in documents]


@pytest.fixture
def invited_member(live_server, settings):
    """A partner member with a token invitation emailed to them, its link on this server."""
    settings.ACCESSCTL_PUBLIC_URL = live_server.url
    member = f.partner_user(f.partner("aurora-gpu"))
    code = f.invite(member)
    link = next(m for m in mail.outbox if m.to == [member.email])
    return member, code, re.search(r"(http\S+/tokens/claim#\S+)", link.body).group(1)


def test_member_opens_the_emailed_link_and_sees_the_token_once(live_server, page, invited_member):
    member, _code, link = invited_member
    problems = watch(page)
    page.goto(link)
    secret = page.locator("#token-secret").input_value()
    assert secret.startswith("acx_")
    assert "#" not in page.url  # the code left the address bar before it was posted
    token = AccessToken.objects.get(user=member)
    assert token.prefix == secret[:12]
    # Once: the same link, opened again from the email, shows no secret.
    page.goto("about:blank")
    page.goto(link)
    assert page.locator("#claim-error").get_attribute("data-code") == "invitation_used"
    assert page.locator("#token-secret").count() == 0
    assert AccessToken.objects.filter(user=member).count() == 1
    page.wait_for_load_state("networkidle")
    assert not problems(), problems()


def test_member_pastes_the_code_into_the_form(live_server, page, invited_member):
    member, code, _link = invited_member
    problems = watch(page)
    page.goto(f"{live_server.url}/tokens/claim")
    page.wait_for_load_state("networkidle")
    page.fill("#id_code", code)
    page.click("#claim-form input[type=submit]")
    secret = page.locator("#token-secret").input_value()
    assert AccessToken.objects.get(user=member).prefix == secret[:12]
    page.wait_for_load_state("networkidle")
    assert not problems(), problems()
