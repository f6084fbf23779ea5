"""The access matrix (``/admin/access/``): what each cell says, its links, the filters and
paging, who may see it, and the fixed number of queries it is drawn in."""

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accessctl.audit.models import AuditEvent
from partners import actions
from partners.models import EmbargoWindow, Grant, Release
from partners.portal import matrix as matrix_module
from tests import factories as f
from tests.accessctl.test_portal import portal_client
from tests.partners.portal import world as big

pytestmark = pytest.mark.django_db

MATRIX = "/admin/access/"
DAY = timedelta(days=1)
GiB = 1024**3
PINS = json.loads((Path(__file__).parents[2] / "query_counts.json").read_text())


def cell(page: str, partner: str, release: str) -> str:
    """The HTML of one cell of the matrix."""
    found = re.search(
        rf'<td class="matrix-cell[^"]*" title="[^"]*" data-partner="{partner}" '
        rf'data-release="{release}">(.*?)</td>',
        page,
        re.S,
    )
    assert found, f"no cell {partner} x {release}"
    return found.group(1)


@pytest.fixture
def world():
    aurora = f.partner("aurora-gpu", jurisdiction="US")
    tessel = f.partner("tessel-accel", jurisdiction="DE")
    blocked = f.partner("kr-fab", jurisdiction="KR")
    v4 = f.release("v4", public_in=-2 * DAY)
    v5 = f.release("v5", public_in=-DAY)
    Release.objects.filter(pk=v5.pk).update(policy_jurisdictions=["KR"])
    v5.refresh_from_db()
    cp4 = f.checkpoint(v4)
    f.window(v4, aurora)
    f.window(v4, tessel, opens=5 * DAY, closes=20 * DAY)
    f.window(v5, aurora)
    grant = f.grant(cp4, aurora, quota_bytes=4 * GiB)
    Grant.objects.filter(pk=grant.pk).update(bytes_used=GiB + GiB // 2)
    grant.refresh_from_db()
    second = f.grant(f.checkpoint(v4, tag="step-2000"), aurora)
    actions.revoke_grant(actor=f.staff("Security officer"), grant=second, reason="leak")
    actions.authorize_download(
        actor=None,
        grant=grant,
        artifact=cp4.artifacts.first(),
        requested_bytes=1,
        client_address="192.0.2.1",
    )
    return {"aurora": aurora, "tessel": tessel, "kr": blocked, "v4": v4, "v5": v5, "grant": grant}


def test_each_cell_says_window_grants_quota_and_last_download(client, world):
    page = portal_client(client, f.staff("Release manager")).get(MATRIX).content.decode()
    aurora_v4 = cell(page, "aurora-gpu", "v4")
    window = EmbargoWindow.objects.get(partner=world["aurora"], release=world["v4"])
    assert f'class="mx-state mx-open" href="/admin/partners/embargowindow/{window.pk}/change/"' in (
        aurora_v4
    )
    assert (
        f'<span class="date">{window.opens_at:%Y-%m-%d}</span> to '
        f'<span class="date">{window.closes_at:%Y-%m-%d}</span>'
    ) in aurora_v4
    assert "1 active, <span" in aurora_v4 and "1 revoked</span>" in aurora_v4
    # 1.5 GiB used of the first grant's 4 GiB, plus the revoked one's (10,000 B, unused).
    assert "1.5 GiB of 4.0 GiB" in aurora_v4
    last = AuditEvent.objects.filter(action="download.authorized").get()
    assert f"last download {last.occurred_at:%Y-%m-%d %H:%M:%S} UTC" in aurora_v4
    grants = (
        f"/admin/partners/grant/?partner__id__exact={world['aurora'].pk}"
        f"&amp;checkpoint__release__id__exact={world['v4'].pk}"
    )
    assert grants in aurora_v4
    # Upcoming, no grant yet; no window at all; a window the export policy blocks.
    tessel_v4 = cell(page, "tessel-accel", "v4")
    assert "mx-upcoming" in tessel_v4 and "no grants" in tessel_v4
    assert "no window" in cell(page, "tessel-accel", "v5")
    assert "export policy blocks KR" in cell(page, "kr-fab", "v5")
    assert "export policy blocks" not in cell(page, "kr-fab", "v4")
    # Rows and columns link to the partner and the release.
    assert f'href="/admin/partners/partner/{world["aurora"].pk}/change/">aurora-gpu' in page
    assert f'href="/admin/partners/release/{world["v5"].pk}/change/">v5' in page


def test_a_withdrawn_release_shows_every_window_withdrawn(client, world):
    actions.withdraw_release(
        actor=f.staff("Security officer"), release=world["v4"], reason="weights leaked"
    )
    page = portal_client(client, f.staff("Security officer")).get(MATRIX).content.decode()
    assert "mx-withdrawn" in cell(page, "aurora-gpu", "v4")
    assert "mx-withdrawn" in cell(page, "tessel-accel", "v4")
    assert "mx-open" in cell(page, "aurora-gpu", "v5")
    assert 'class="matrix-release withdrawn"' in page


@pytest.mark.parametrize(
    ("query", "partners", "releases"),
    [
        ("", {"aurora-gpu", "tessel-accel", "kr-fab"}, {"v4", "v5"}),
        ("?release=v4", {"aurora-gpu", "tessel-accel", "kr-fab"}, {"v4"}),
        ("?partner=tessel-accel", {"tessel-accel"}, {"v4", "v5"}),
        ("?jurisdiction=DE", {"tessel-accel"}, {"v4", "v5"}),
        ("?jurisdiction=KR&release=v5", {"kr-fab"}, {"v5"}),
        # No partner there: not a choice; the form says so and the matrix is unfiltered.
        ("?jurisdiction=FR", {"aurora-gpu", "tessel-accel", "kr-fab"}, {"v4", "v5"}),
    ],
)
def test_the_filters_narrow_rows_and_columns(client, world, query, partners, releases):
    page = portal_client(client, f.staff("Release manager")).get(MATRIX + query).content.decode()
    assert set(re.findall(r'data-partner="([^"]+)"', page)) == partners
    assert set(re.findall(r'data-release="([^"]+)"', page)) == releases
    assert ("Select a valid choice" in page) == query.endswith("=FR")


def test_rows_and_columns_are_paged(client, monkeypatch, world):
    monkeypatch.setattr(matrix_module, "ROWS", 2)
    monkeypatch.setattr(matrix_module, "COLUMNS", 1)
    c = portal_client(client, f.staff("Release manager"))
    first = c.get(MATRIX).content.decode()
    assert set(re.findall(r'data-partner="([^"]+)"', first)) == {"aurora-gpu", "kr-fab"}
    assert set(re.findall(r'data-release="([^"]+)"', first)) == {"v5"}  # newest first
    assert "Partners 1&ndash;2 of 3" in first and 'href="/admin/access/?page=2"' in first
    assert 'href="/admin/access/?columns=2"' in first
    second = c.get(MATRIX + "?page=2&columns=2").content.decode()
    assert set(re.findall(r'data-partner="([^"]+)"', second)) == {"tessel-accel"}
    assert set(re.findall(r'data-release="([^"]+)"', second)) == {"v4"}
    # Out of range: the last page, not an error.
    assert c.get(MATRIX + "?page=99").status_code == 200


def test_a_partner_member_is_sent_to_sign_in_and_sees_nothing(client, world):
    member = f.partner_user(world["aurora"])
    client.force_login(member)
    before = AuditEvent.objects.count()
    for url in (MATRIX, "/admin/timeline/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert AuditEvent.objects.count() == before  # not staff: their sign-in is the record


@pytest.mark.parametrize("url", [MATRIX, "/admin/timeline/"])
def test_staff_without_the_view_permissions_are_refused_and_it_is_recorded(client, world, url):
    nobody = f.staff()  # staff, signed in with two factors, no role
    response = portal_client(client, nobody).get(url)
    assert response.status_code == 403
    assert "aurora-gpu" not in response.content.decode()
    refused = AuditEvent.objects.filter(action="window.refused").get()
    assert refused.actor == nobody and refused.outcome == "denied" and refused.reason == "forbidden"
    assert refused.changes["path"] == url and refused.changes["method"] == "GET"


def test_the_home_shows_no_matrix_to_those_without_it(client, world):
    compliance = portal_client(client, f.staff("Compliance")).get("/admin/").content.decode()
    assert 'id="access-matrix"' not in compliance  # not their home: a link away
    nobody = portal_client(client, f.staff()).get("/admin/").content.decode()
    assert 'id="access-matrix"' not in nobody and 'id="timeline"' not in nobody
    for role in ("Release manager", "Security officer", "Partner manager"):
        page = portal_client(client, f.staff(role)).get("/admin/").content.decode()
        assert 'id="access-matrix"' in page, role


# A fixed number of queries, whatever the size (100 partners x 50 releases x 5,000 grants)

PORTAL_PATHS = {
    "portal access matrix: GET /admin/access/": ("Release manager", MATRIX),
    "portal timeline: GET /admin/timeline/": ("Release manager", "/admin/timeline/"),
    "portal home, every panel (superuser): GET /admin/": (None, "/admin/"),
}


def _count(client, url: str) -> int:
    client.get(url)  # warm: sessions and permissions are read once
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("path", sorted(PORTAL_PATHS))
def test_the_portal_pages_take_the_same_queries_small_and_large(client, path):
    role, url = PORTAL_PATHS[path]
    portal_client(client, f.staff(role) if role else f.superuser())
    big.build(partners=3, releases=2, grants=10, prefix="small")
    small = _count(client, url)
    grown = big.build(partners=100, releases=50, grants=5000, prefix="large")
    assert grown.grants == 5000 and grown.windows == 5000
    large = _count(client, url)
    page = client.get(url).content.decode()
    assert "large-partner-" in page  # the grown data is on the page
    assert small == large, f"{path}: {small} queries, then {large} at 100 x 50 x 5,000 (N+1)"
    assert large == PINS.get(path), (
        f"{path}: {large} queries, pinned at {PINS.get(path)} in tests/query_counts.json"
    )


def test_an_empty_portal_draws_empty_pages(client):
    c = portal_client(client, f.staff("Security officer"))
    matrix = c.get(MATRIX).content.decode()
    assert "No partner matches." in matrix and "Partners 0&ndash;0 of 0" in matrix
    assert "No window in this period" in c.get("/admin/timeline/").content.decode()
    home = c.get("/admin/").content.decode()
    assert "No windows open or upcoming." in home and "No release withdrawn." in home
