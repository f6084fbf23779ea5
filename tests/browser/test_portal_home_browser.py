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
