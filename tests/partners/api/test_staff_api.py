"""The staff API: same conventions, and no more power than the token's owner has."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accessctl.audit.models import AuditEvent
from partners import actions
from partners.models import EmbargoWindow, Grant, Partner, Revocation
from tests import factories as f

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


def staff_client(role):
    user = f.staff(role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {f.token(user, scopes=['staff'])}")
    return client, user


@pytest.fixture
def world():
    partner = f.partner("aurora-gpu")
    launched = f.release("v3", public_in=-DAY)
    checkpoint = f.checkpoint(launched)
    f.window(launched, partner)
    return partner, launched, checkpoint


def test_release_pipeline_registers_sets_a_window_and_issues(world):
    _partner, _launched, _ = world
    client, manager = staff_client("Release manager")
    spec = f.stored_spec(_launched, "step-9", "w.bin", b"weights")
    artifact = {"path": spec.path, "size": spec.size, "sha256": spec.sha256}
    body = {"tag": "step-9", "training_step": 9, "artifacts": [artifact]}
    registered = client.post("/api/v1/staff/releases/v3/checkpoints/", body, format="json")
    assert registered.status_code == 201
    assert (
        client.post("/api/v1/staff/releases/v3/checkpoints/", body, format="json").status_code
        == 200
    )
    other = f.partner("tessel-accel", jurisdiction="DE")
    now = timezone.now()
    window = client.post(
        "/api/v1/staff/windows/",
        {
            "release": "v3",
            "partner": "tessel-accel",
            "opens_at": now.isoformat(),
            "closes_at": (now + 9 * DAY).isoformat(),
        },
        format="json",
    )
    assert window.status_code == 201
    issued = client.post(
        "/api/v1/staff/grants/",
        {"partner": "tessel-accel", "checkpoint": registered.json()["id"], "quota_bytes": 100},
        format="json",
    )
    assert issued.status_code == 201
    grant = Grant.objects.get(pk=issued.json()["id"])
    assert grant.partner == other and grant.issued_by == manager
    revoked = client.post(
        f"/api/v1/staff/grants/{grant.pk}/revoke", {"reason": "rotation"}, format="json"
    )
    assert revoked.json()["status"] == "revoked"
    assert AuditEvent.objects.filter(actor=manager, action="grant.revoked").exists()


def test_overlapping_window_is_a_409_problem(world):
    partner, _launched, _ = world
    client, _ = staff_client("Release manager")
    window = EmbargoWindow.objects.get(partner=partner)
    response = client.post(
        "/api/v1/staff/windows/",
        {
            "release": "v3",
            "partner": "aurora-gpu",
            "opens_at": window.opens_at.isoformat(),
            "closes_at": window.closes_at.isoformat(),
        },
        format="json",
    )
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "window_overlap"


def test_token_has_no_more_power_than_its_owner(world):
    _, _, checkpoint = world
    client, _ = staff_client("Partner manager")
    response = client.post(
        "/api/v1/staff/grants/",
        {"partner": "aurora-gpu", "checkpoint": checkpoint.pk, "quota_bytes": 1},
        format="json",
    )
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert not Grant.objects.exists()


def test_security_officer_suspends_in_an_incident(world):
    partner, _, checkpoint = world
    grant = f.grant(checkpoint, partner)
    client, _ = staff_client("Security officer")
    response = client.post(
        "/api/v1/staff/partners/aurora-gpu/suspend", {"reason": "leak"}, format="json"
    )
    assert response.status_code == 200 and response.json()["status"] == "suspended"
    assert f.authorize(grant).reason == "partner_suspended"
    actions.cascade_revocation(Revocation.objects.get(partner=partner).pk)
    grant.refresh_from_db()
    assert grant.status == Grant.Status.REVOKED
    missing_reason = client.post(
        f"/api/v1/staff/checkpoints/{checkpoint.pk}/pull", {}, format="json"
    )
    assert missing_reason.status_code == 400
    assert missing_reason.json()["code"] == "invalid"
    pulled = client.post(
        f"/api/v1/staff/checkpoints/{checkpoint.pk}/pull", {"reason": "bad"}, format="json"
    )
    assert pulled.json()["status"] == "pulled"
    assert Partner.objects.get(pk=partner.pk).status == "suspended"


def test_partner_token_cannot_use_the_staff_api(world):
    partner, *_ = world
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {f.token(f.partner_user(partner))}")
    response = client.post(
        "/api/v1/staff/partners/aurora-gpu/suspend", {"reason": "x"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "staff_token_required"
    assert Partner.objects.get(pk=partner.pk).status == "active"


def test_two_staff_tokens_approve_early_access(world):
    partner, _, _ = world
    early = f.release("v4")
    cp = f.checkpoint(early)
    f.window(early, partner)
    from partners import actions

    request = actions.request_grant(
        actor=f.partner_user(partner), partner=partner, checkpoint=cp, quota_bytes=5
    )
    first, _ = staff_client("Release manager")
    second, _ = staff_client("Release manager")
    one = first.post(f"/api/v1/staff/grant-requests/{request.pk}/approve", format="json").json()
    assert one["status"] == "pending" and one["approvals"] == 1 and one["grant"] is None
    again = first.post(f"/api/v1/staff/grant-requests/{request.pk}/approve", format="json")
    assert again.status_code == 409 and again.json()["code"] == "already_approved"
    two = second.post(f"/api/v1/staff/grant-requests/{request.pk}/approve", format="json").json()
    assert two["status"] == "approved" and two["grant"] is not None


def test_kill_switch_over_the_api_and_following_its_fan_out(world):
    partner, launched, checkpoint = world
    grant = f.grant(checkpoint, partner)
    manager, _ = staff_client("Release manager")
    refused = manager.post(
        f"/api/v1/staff/releases/{launched.slug}/withdraw", {"reason": "x"}, format="json"
    )
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"

    officer, _ = staff_client("Security officer")
    response = officer.post(
        f"/api/v1/staff/releases/{launched.slug}/withdraw", {"reason": "leak"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "withdrawn" and body["withdrawn_reason"] == "leak"
    assert f.authorize(grant).reason == "release_withdrawn"

    follow = f"/api/v1/staff/revocations/{body['revocation']}"
    pending = officer.get(follow).json()
    assert (pending["scope"], pending["status"], pending["grants_revoked"]) == (
        "release",
        "pending",
        0,
    )
    actions.cascade_revocation(body["revocation"])
    done = officer.get(follow).json()
    assert (done["status"], done["grants_revoked"], done["target"]) == ("done", 1, "v3")
    assert Grant.objects.get(pk=grant.pk).status == Grant.Status.REVOKED


def test_revocation_status_needs_the_view_permission(world):
    partner = world[0]
    actions.suspend_partner(actor=None, partner=partner, reason="x")
    revocation = Revocation.objects.get(partner=partner)
    nobody, _ = staff_client(None)
    response = nobody.get(f"/api/v1/staff/revocations/{revocation.pk}")
    assert response.status_code == 403
    assert "grants_revoked" not in response.json()


def test_audit_export_over_the_staff_api(world, tmp_path):
    import json

    from accessctl.audit.exports import write_export
    from accessctl.signing import keys
    from accessctl_wire import verify_export

    partner, _, checkpoint = world
    f.grant(checkpoint, partner)
    manager, _ = staff_client("Release manager")
    refused = manager.post("/api/v1/staff/audit-exports/", {"partner": "aurora-gpu"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"

    officer, _ = staff_client("Compliance")
    response = officer.post(
        "/api/v1/staff/audit-exports/",
        {"partner": "aurora-gpu", "action": "grant.*"},
        format="json",
    )
    assert response.status_code == 202 and response.json()["status"] == "pending"
    export_id = response.json()["id"]
    bad = officer.post("/api/v1/staff/audit-exports/", {"outcome": "maybe"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"

    write_export(export_id)  # the Celery task
    ready = officer.get(f"/api/v1/staff/audit-exports/{export_id}").json()
    assert ready["status"] == "ready" and ready["events"] >= 1
    download = officer.get(ready["files"]["jsonl"]["url"])
    assert download.status_code == 200
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"".join(download.streaming_content))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(keys.jwks()))
    report = verify_export.verify(path, verify_export.load_public_keys(jwks))
    assert report.ok and report.events == ready["events"]
