"""The portal's home per role: what each role sees, and what it does not; the home lists
no plumbing apps and no empty "Recent actions"; nobody adds a Celery task result."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from accessctl.audit.models import AuditCheckpoint, AuditExport
from partners import actions
from partners.models import Grant
from tests import factories as f
from tests.accessctl.test_portal import portal_client

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
PANELS = {
    "Release manager": {
        "release-manager",
        "pending-requests",
        "upcoming-windows",
        "expiring-grants",
        "home-matrix",
        "timeline",
    },
    "Security officer": {
        "security-officer",
        "revocations-in-progress",
        "kill-switch",
        "denials-by-reason",
        "disabled-controls",
        "recent-denials",
        "home-matrix",
        "timeline",
    },
    "Compliance": {"compliance", "audit-seal", "exports", "sensitive-actions", "timeline"},
    "Partner manager": {"home-matrix", "timeline"},
}
EVERY_PANEL = set().union(*PANELS.values())


def panels(page: str) -> set[str]:
    found = set(re.findall(r'<(?:section|h2)[^>]* id="([a-z-]+)"', page))
    return found & EVERY_PANEL


@pytest.fixture
def world():
    now = timezone.now()
    aurora = f.partner("aurora-gpu")
    tessel = f.partner("tessel-accel", jurisdiction="DE")
    v4 = f.release("v4", public_in=-DAY)
    checkpoint = f.checkpoint(v4)
    f.window(v4, aurora)
    f.window(v4, tessel, opens=3 * DAY, closes=9 * DAY)  # opens within 14 days
    grant = f.grant(checkpoint, aurora)
    Grant.objects.filter(pk=grant.pk).update(expires_at=now + 2 * DAY)
    actions.authorize_download(
        actor=None,
        grant=grant,
        artifact=checkpoint.artifacts.first(),
        requested_bytes=10**9,  # over quota: a denial
        client_address="192.0.2.1",
    )
    v5 = f.release("v5", public_in=-DAY)
    f.window(v5, aurora)
    officer = f.staff("Security officer", username="sofia")
    # The kill switch: its revocation's fan-out is still to run (no worker in this test).
    actions.withdraw_release(actor=officer, release=v5, reason="weights leaked")
    return {"grant": grant, "officer": officer}


@pytest.mark.parametrize("role", sorted(PANELS))
def test_each_role_sees_its_panels_and_no_other(client, world, role):
    page = portal_client(client, f.staff(role)).get("/admin/").content.decode()
    assert panels(page) == PANELS[role]
    assert f"Signed in as {role}." in page


def test_a_superuser_sees_every_panel(client, world):
    page = portal_client(client, f.superuser()).get("/admin/").content.decode()
    assert panels(page) == EVERY_PANEL


def test_staff_without_a_role_see_no_panel(client, world):
    page = portal_client(client, f.staff()).get("/admin/").content.decode()
    assert panels(page) == set()
    assert "You hold no staff role" in page
    assert "aurora-gpu" not in page and "weights leaked" not in page


def section(page: str, name: str) -> str:
    return page.split(f'id="{name}"')[1].split("</section>")[0]


def test_the_release_manager_sees_approvals_upcoming_windows_and_expiring_grants(client, world):
    early = f.release("v6", public_in=30 * DAY)  # before its public release: approvals
    kr = f.partner("kr-fab", jurisdiction="KR")
    f.window(early, kr)
    actions.request_grant(
        actor=f.partner_user(kr), partner=kr, checkpoint=f.checkpoint(early), quota_bytes=5
    )
    page = portal_client(client, f.staff("Release manager")).get("/admin/").content.decode()
    assert "kr-fab" in section(page, "pending-requests")
    assert "tessel-accel" in section(page, "upcoming-windows")
    assert "aurora-gpu" not in section(page, "upcoming-windows")  # already open
    assert f"#{world['grant'].pk}" in section(page, "expiring-grants")


def test_the_security_officer_sees_revocations_kill_switch_denials_and_controls(client, world):
    PeriodicTask.objects.filter(task="partners.tasks.expire_grants").update(enabled=False)
    page = portal_client(client, f.staff("Security officer")).get("/admin/").content.decode()
    running = section(page, "revocations-in-progress")
    assert "Release (kill switch) v5" in running and "0 grants revoked" in running
    kill = section(page, "kill-switch")
    assert "weights leaked" in kill and ">v5</a>" in kill
    assert re.search(r"<strong>1</strong> release live", kill)
    assert re.search(r'<strong class="denied">1</strong> withdrawn', kill)
    denials = section(page, "denials-by-reason")
    assert re.search(r"quota_exhausted</td><td>1</td>", denials)
    assert "1 lifecycle schedule off" in section(page, "disabled-controls")


def test_the_revocation_leaves_the_panel_when_its_fan_out_finishes(client, world):
    from partners.models import Revocation

    actions.cascade_revocation(Revocation.objects.get().pk)
    page = portal_client(client, f.staff("Security officer")).get("/admin/").content.decode()
    assert "None: every revocation has finished." in section(page, "revocations-in-progress")


def test_compliance_sees_the_seal_its_age_exports_and_sensitive_actions(client, world):
    viewer = f.staff("Compliance")
    c = portal_client(client, viewer)
    page = c.get("/admin/").content.decode()
    assert "No signed checkpoint yet" in section(page, "audit-seal")
    sealed = timezone.now() - timedelta(minutes=3)
    AuditCheckpoint.objects.create(
        tree_size=42, root_hash=b"\0" * 32, sealed_at=sealed, key_id="k1", signature="s"
    )
    AuditExport.objects.create(requested_by=viewer, requested_at=timezone.now(), events=7)
    page = c.get("/admin/").content.decode()
    seal = section(page, "audit-seal")
    assert "<strong>42</strong> events" in seal and f"{sealed:%Y-%m-%d %H:%M:%S} UTC" in seal
    assert 'class="ok">3 min ago' in seal and "the sealer is not running" not in seal
    assert "pending" in section(page, "exports")
    sensitive = section(page, "sensitive-actions")
    assert "release.withdrawn" in sensitive and "sofia" in sensitive
    assert "download.denied" not in sensitive  # a decision, not an action by staff
    # The checkpoints are append-only: a later one sealed two hours ago says it is stale.
    AuditCheckpoint.objects.create(
        tree_size=43,
        root_hash=b"\0" * 32,
        sealed_at=sealed - timedelta(hours=2),
        key_id="k1",
        signature="s",
    )
    seal = section(c.get("/admin/").content.decode(), "audit-seal")
    assert 'class="denied">2 h ago' in seal and "the sealer is not running" in seal


def test_the_home_lists_no_plumbing_apps_and_no_recent_actions(client, world):
    page = portal_client(client, f.superuser()).get("/admin/").content.decode()
    nav = section(page, "home-nav")
    for hidden in (
        "/admin/axes/",
        "/admin/otp_static/",
        "/admin/otp_totp/",
        "/admin/django_celery_results/",
    ):
        assert hidden not in nav, hidden
    for kept in ("/admin/partners/partner/", "/admin/partners/grant/", "/admin/audit/auditevent/"):
        assert kept in nav, kept
    assert "recent-actions-module" not in page and "Recent actions" not in page
    assert 'id="content-related"' not in page


def test_nobody_adds_a_celery_task_result(client):
    c = portal_client(client, f.superuser())
    assert c.get("/admin/django_celery_results/taskresult/add/").status_code == 403
    assert c.get("/admin/django_celery_results/groupresult/add/").status_code == 403
    listing = c.get("/admin/django_celery_results/taskresult/").content.decode()
    assert "/admin/django_celery_results/taskresult/add/" not in listing


def test_sensitive_actions_show_the_operators_reason(client, world):
    page = portal_client(client, f.staff("Compliance")).get("/admin/").content.decode()
    sensitive = section(page, "sensitive-actions")
    row = next(r for r in sensitive.split("<tr>") if "release.withdrawn" in r)
    assert row.rstrip().endswith("<td>weights leaked</td></tr>"), row
