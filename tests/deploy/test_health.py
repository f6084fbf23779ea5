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
