"""Liveness and readiness: the database decides readiness; a broker outage degrades."""

import pytest

from tests.workers import use_broker

pytestmark = pytest.mark.django_db


def test_healthz_and_readyz_when_all_is_well(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok",
        "broker": "ok",
        "storage": "ok",
    }


def test_a_broker_outage_degrades_but_does_not_take_web_out_of_service(client):
    with use_broker("redis://127.0.0.1:9/0"):  # nothing listens there
        ready = client.get("/readyz")
        strict = client.get("/readyz?strict=1")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["broker"]["status"] == "failed"
    assert ready.json()["checks"]["database"]["status"] == "ok"
    assert strict.status_code == 503 and strict.json()["status"] == "failed"


def test_metrics_count_decisions_by_reason_and_are_not_public(client):
    from datetime import timedelta

    from accessctl.audit.sealing import seal
    from partners import actions
    from tests import factories as f

    release = f.release(public_in=-timedelta(days=1))
    partner = f.partner()
    f.window(release, partner)
    grant = f.grant(f.checkpoint(release), partner, quota_bytes=10)

    def value(text, name):
        line = next(
            (x for x in text.splitlines() if x.startswith(name + " ") or x.startswith(name + "{")),
            None,
        )
        return float(line.rsplit(" ", 1)[1]) if line else 0.0

    before = client.get("/metrics").content.decode()
    f.authorize(grant, requested_bytes=4)
    actions.revoke_grant(actor=None, grant=grant, reason="metrics")
    f.authorize(grant, requested_bytes=4)
    after = client.get("/metrics").content.decode()
    allowed = 'accessctl_download_decisions_total{outcome="allowed",reason=""}'
    revoked = 'accessctl_download_decisions_total{outcome="denied",reason="grant_revoked"}'
    assert value(after, allowed) - value(before, allowed) == 1
    assert value(after, revoked) - value(before, revoked) == 1
    assert (
        value(after, "accessctl_quota_debited_bytes_total")
        - value(before, "accessctl_quota_debited_bytes_total")
        == 4
    )
    assert "django_http_requests_total_by_method_total" in after
    assert value(after, "accessctl_audit_seal_delay_seconds") > 0  # events await sealing
    seal()
    assert value(client.get("/metrics").content.decode(), "accessctl_audit_seal_delay_seconds") == 0
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 404


def test_pages_carry_a_content_security_policy_without_inline_scripts(client):
    policy = client.get("/admin/login/")["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert "Content-Security-Policy" not in client.get("/api/docs/")  # inline viewer bootstrap
