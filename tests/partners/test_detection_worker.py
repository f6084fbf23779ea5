"""A detection submitted through the staff API runs on a real ``celery worker`` (Redis,
the ``slow`` queue, not eager mode), in another process that reads the suspect and the
originals from artifact storage and signs the report with the lab's key."""

import json
import os

import pytest
import redis
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from accessctl.signing.keys import verify_detached
from accessctl_wire import canonical_json
from partners.models import Detection
from tests import factories as f
from tests.partners.detection_world import int8_per_channel, marked_world
from tests.workers import use_broker, wait_for, workers

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def broker():
    redis.Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL


def test_a_worker_runs_the_detection_and_names_the_leaker(broker, settings, _artifact_root):
    world = marked_world()
    leak = int8_per_channel(world.copies["borealis"])
    client = APIClient()
    officer = f.staff("Security officer")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {f.token(officer, scopes=['staff'])}")
    env = {
        "ACCESSCTL_ARTIFACT_ROOT": str(_artifact_root),
        "ACCESSCTL_KEY_ENCRYPTION_KEY": settings.ACCESSCTL_KEY_ENCRYPTION_KEY,
    }
    with use_broker(broker), workers(broker, env) as start:
        start()
        answer = client.post(
            "/api/v1/staff/releases/v5/detections",
            {"files": [SimpleUploadedFile("leak.safetensors", leak)], "reason": "found"},
            format="multipart",
        )
        assert answer.status_code == 202, answer.content
        detection_id = answer.json()["id"]
        wait_for(
            lambda: Detection.objects.get(pk=detection_id).status in ("done", "failed"),
            what="the worker to run the detection",
            timeout=120,
        )
    shown = client.get(f"/api/v1/staff/detections/{detection_id}").json()
    assert (shown["status"], shown["verdict"], shown["named"]) == ("done", "named", ["borealis"])
    verify_detached(canonical_json(shown["report"]), shown["signature"])
    assert json.loads(json.dumps(shown["report"]))["suspect_files"][0]["size"] == len(leak)
