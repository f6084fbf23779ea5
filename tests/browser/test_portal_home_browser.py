"""The portal's home, access matrix and timeline in Debian's chromium at 1280 px: no
console error, no Content Security Policy violation, no horizontal overflow. Full-page
screenshots go to a folder the test prints (``ACCESSCTL_SCREENSHOTS``, else a temporary
one)."""

import os
from pathlib import Path

import pytest
from django.db import connections
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests import factories as f
from tests.browser.conftest import CHROMIUM, LAUNCH_ARGS
from tests.partners.portal import world as big

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WIDTH = 1280


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("ACCESSCTL_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


@pytest.fixture
def browser_page(monkeypatch):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        page.set_default_timeout(15_000)
        problems: list[str] = []
        page.on(
            "console",
            lambda m: (
                problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        # A response the server refused or failed (a request the browser itself gave up
        # on while navigating on, such as the icon, is none).
        page.on(
            "response",
            lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        yield page, problems
        connections.close_all()
        browser.close()


def sign_in(page, url: str, role: str) -> None:
    user = f.staff(role, username=role.lower().replace(" ", "-"))
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    page.goto(f"{url}/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "correct horse battery")
    page.fill("#id_otp_token", f"{totp(device.bin_key, step=device.step, t0=device.t0):06d}")
    page.click("input[type=submit]")
    page.wait_for_selector("#dashboard")


def overflow(page) -> list[str]:
    """What does not fit: the page, when wider than the window (horizontal scrolling),
    and each table or drawing cut off inside its box."""
    wider = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    clipped = page.evaluate(
        "Array.from(document.querySelectorAll('table, .timeline'))"
        ".filter(e => e.scrollWidth > e.clientWidth + 1)"
        ".map(e => `${e.tagName}#${e.closest('[id]')?.id}: ${e.scrollWidth} > ${e.clientWidth}`)"
    )
    return ([f"page {wider} px wider than {WIDTH}"] if wider > 0 else []) + clipped


def test_matrix_timeline_and_home_fit_1280_px_without_errors(live_server, browser_page, shots):
    page, problems = browser_page
    big.build(partners=30, releases=12, grants=400, prefix="demo")
    sign_in(page, live_server.url, "Security officer")
    for name, path, landmark in (
        ("home-security-officer", "/admin/", "#kill-switch"),
        ("matrix", "/admin/access/", "#access-matrix"),
        ("matrix-filtered", "/admin/access/?jurisdiction=DE", "#access-matrix"),
        ("timeline", "/admin/timeline/", "#timeline svg"),
    ):
        page.goto(f"{live_server.url}{path}")
        assert page.locator(landmark).first.is_visible(), name
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        page.screenshot(path=str(shots / f"{name}-top.png"))  # what the window shows first
        assert not overflow(page), f"{name}: {overflow(page)}"
    # The matrix's cells are links to the objects; the first one opens a window's page.
    page.goto(f"{live_server.url}/admin/access/")
    page.locator("#access-matrix a.mx-state").first.click()
    page.wait_for_load_state("load")  # its scripts too, before the next page aborts them
    assert "/admin/partners/embargowindow/" in page.url
    # The other roles' homes.
    for role, landmark in (("Release manager", "#pending-requests"), ("Compliance", "#audit-seal")):
        page.context.clear_cookies()
        sign_in(page, live_server.url, role)
        assert page.locator(landmark).is_visible(), role
        name = f"home-{role.lower().replace(' ', '-')}"
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        page.screenshot(path=str(shots / f"{name}-top.png"))
        assert not overflow(page), f"{name}: {overflow(page)}"
    assert problems == [], problems


WRAPPED_HEADERS = """
Array.from(document.querySelectorAll('.dash table:not(.access-matrix) th')).filter(th => {
  const range = document.createRange();
  range.selectNodeContents(th);
  const tops = new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top)));
  return tops.size > 1;
}).map(th => `${th.closest('[id]').id}: ${th.textContent.trim()}`)
"""
MARKED_COUNTS = """
Array.from(document.querySelectorAll('.counts > li'))
  .filter(li => getComputedStyle(li).listStyleType !== 'none' || getComputedStyle(li, '::marker').content !== 'normal' && getComputedStyle(li).display === 'list-item')
  .map(li => li.textContent.trim())
"""
DIAMOND_ON_TEXT = """
Array.from(document.querySelectorAll('g.tl-release')).filter(g => {
  const diamond = g.querySelector('.tl-public path');
  const text = g.querySelector('.tl-release-status');
  if (!diamond || !text) return false;
  const a = diamond.getBBox(), b = text.getBBox();
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}).map(g => g.dataset.release)
"""


def test_home_headers_counts_and_timeline_header_read_cleanly(live_server, browser_page, shots):
    """Headers never break inside a word ("Releas/e"); the kill switch's counts carry no
    list bullets; a release's public-release diamond never sits on its header text."""
    from datetime import timedelta

    from django.utils import timezone

    page, problems = browser_page
    now = timezone.now()
    aurora = f.partner("aurora-gpu")
    # Public 6 days ago: at the period's left edge, where the header text starts.
    early = f.release("v-early", public_in=-6 * timedelta(days=1))
    f.window(early, aurora)
    upcoming = f.release("v-upcoming", public_in=timedelta(days=30))
    f.window(upcoming, aurora, opens=timedelta(days=3), closes=timedelta(days=9))
    assert early.public_release_at < now
    for role, paths in (
        ("Release manager", ["/admin/"]),
        ("Security officer", ["/admin/", "/admin/timeline/"]),
    ):
        page.context.clear_cookies()
        sign_in(page, live_server.url, role)
        for path in paths:
            page.goto(f"{live_server.url}{path}")
            name = f"clean-{role.lower().replace(' ', '-')}{path.replace('/', '-')}"
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
            assert page.evaluate(WRAPPED_HEADERS) == [], name
            assert page.evaluate(MARKED_COUNTS) == [], name
            assert page.evaluate(DIAMOND_ON_TEXT) == [], name
    assert problems == [], problems


def test_a_quota_input_shows_the_size_typed_as_it_is_typed(live_server, browser_page):
    # The size beside a quota input follows what is typed, read as the server reads it
    # (partners.admin.grants.parse_size), from the portal's own script under the CSP.
    page, problems = browser_page
    sign_in(page, live_server.url, "Release manager")
    page.goto(f"{live_server.url}/admin/partners/grant/add/")
    beside = page.locator("output[data-byte-size]")
    for typed, shown in (
        ("8 GiB", "8.0 GiB"),
        ("1536 mib", "1.5 GiB"),
        ("100", "100 B"),
        ("3 GB", "not a size"),
        ("", ""),
    ):
        page.fill("#id_quota_bytes", typed)
        assert beside.inner_text() == shown, typed
    assert problems == []
