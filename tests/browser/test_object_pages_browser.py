"""A security officer suspends a partner from the partner's own page, in a real browser:
the page tells the partner's story, the confirmation restates the grants that end, and
the suspension is done with the reason given.

Debian's chromium, driven by Playwright, against a live server on loopback, at 1280 px.
Fails on any console error (a Content Security Policy violation is one), any page error,
or a page wider than the window. Full-page screenshots go to a folder the test prints
(``ACCESSCTL_SCREENSHOTS`` if set, else a temporary one).
"""

import os
from pathlib import Path

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from partners.models import Partner
from tests import factories as f

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WIDTH = 1280


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("ACCESSCTL_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


class Watch:
    """Console errors (CSP violations are reported as such), page errors, and width."""

    def __init__(self, page) -> None:
        self.problems: list[str] = []
        page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text} {m.location}")
                if m.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on(
            "response",
            lambda r: self.problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )

    def check(self, page, name: str, shots: Path) -> None:
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= WIDTH, f"{name}: {width} px wide at {WIDTH} px (horizontal overflow)"
        clipped = page.evaluate(
            "Array.from(document.querySelectorAll('.results, table'))"
            ".filter(e => e.scrollWidth > e.clientWidth + 1).length"
        )
        assert not clipped, f"{name}: {clipped} table(s) wider than their box"
        assert not self.problems, self.problems


def _sign_in(page, url: str, username: str, device) -> None:
    code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=6):06d}"
    page.goto(f"{url}/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", "correct horse battery")
    page.fill("#id_otp_token", code)
    page.click("input[type=submit]")


def test_security_officer_suspends_a_partner_from_its_page(live_server, page, shots):
    page.set_viewport_size({"width": WIDTH, "height": 900})
    partner = f.partner("aurora-gpu", legal_name="Aurora GPU Incorporated, a very long name")
    grants = []
    for tag in ("step-1000", "step-2000-with-a-long-tag-name"):
        release = f.release(f"frontier-{tag[:9]}")
        f.window(release, partner)
        grants.append(f.grant(f.checkpoint(release, tag=tag), partner, quota_bytes=48 * 1024))
    f.authorize(grants[0], requested_bytes=16 * 1024)
    f.token(f.partner_user(partner))
    officer = f.staff("Security officer", username="sec-dan")
    device = TOTPDevice.objects.create(user=officer, name="phone", confirmed=True)
    watch = Watch(page)

    _sign_in(page, live_server.url, "sec-dan", device)
    page.goto(f"{live_server.url}/admin/partners/partner/{partner.pk}/change/")
    assert "16.0 KiB of 48.0 KiB" in page.locator("#story-grants").inner_text()
    watch.check(page, "1-partner-page", shots)

    page.click("#button-suspend")
    ending = page.locator("#impact-grants").inner_text()
    assert all(f"grant #{g.pk}" in ending for g in grants)
    assert "Grants that will be revoked\n2" in page.locator("#impact-facts").inner_text()
    watch.check(page, "2-confirm-suspend", shots)

    page.fill("#id_reason", "Weights seen on a public bucket")
    page.click("#confirm-form input[type=submit]")
    assert "suspended; revocation #" in page.locator(".messagelist").inner_text()
    watch.check(page, "3-suspended", shots)
    # The lists with the most columns fit too (long cells wrap).
    for name, path in [
        ("4-grants", "partners/grant/"),
        ("5-audit-events", "audit/auditevent/"),
        ("6-revocations", "partners/revocation/"),
        ("7-partners", "partners/partner/"),
    ]:
        page.goto(f"{live_server.url}/admin/{path}")
        watch.check(page, name, shots)
    partner.refresh_from_db()
    assert (partner.status, partner.status_reason) == (
        Partner.Status.SUSPENDED,
        "Weights seen on a public bucket",
    )
