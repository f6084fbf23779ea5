"""Submitting a suspect file set: who may, what is refused (with its evidence), and what a
submission stores, records and queues. The detection task itself: test_detection_task.py."""

import hashlib
import struct
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase
from rest_framework.test import APIClient

from accessctl.audit.models import AuditEvent
from partners import actions
from partners.errors import ActionError, ActionForbidden
from partners.models import Detection, Release
from partners.roles import ROLES
from partners.storage import artifact_storage
from tests import factories as f
from tests.partners.detection_world import keyed_release

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


def safetensors_bytes(payload: bytes = b"\0" * 16) -> bytes:
    header = b'{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}'
    return struct.pack("<Q", len(header)) + header + payload


GGUF = b"GGUF" + struct.pack("<I", 3) + b"\0" * 32


def upload(name: str = "leak.safetensors", content: bytes | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, safetensors_bytes() if content is None else content)


@pytest.fixture
def release():
    """A fingerprinted release whose partner holds a committed key."""
    return keyed_release("v5", f.partner("aurora"))


def officer():
    return f.staff("Security officer")


def test_a_security_officer_submits_a_suspect_and_it_is_stored_audited_and_queued(release):
    actor = officer()
    files = [upload("model-00001.safetensors"), upload("leak.gguf", GGUF)]
    with TestCase.captureOnCommitCallbacks() as queued:
        detection = actions.request_detection(
            actor=actor, release=release, files=files, reason="found on a torrent site"
        )
    assert detection.status == Detection.Status.PENDING
    assert [(s["name"], s["format"]) for s in detection.suspect_files] == [
        ("model-00001.safetensors", "safetensors"),
        ("leak.gguf", "gguf"),
    ]
    storage = artifact_storage()
    for n, (meta, content) in enumerate(
        zip(detection.suspect_files, [safetensors_bytes(), GGUF], strict=True)
    ):
        assert meta["storage_key"] == f"accessctl.detections/{detection.pk}/{n}"
        with storage.open(meta["storage_key"]) as stored:
            assert stored.read() == content
        assert meta["sha256"] == hashlib.sha256(content).hexdigest()
        assert meta["size"] == len(content)
    (event,) = AuditEvent.objects.filter(action="detection.requested")
    assert event.actor == actor and event.target_id == str(detection.pk)
    assert event.changes["release"] == "v5"
    assert event.changes["reason"] == "found on a torrent site"
    assert "storage_key" not in str(event.changes)
    assert len(queued) == 1  # run_detection, on the slow queue, after the commit


def test_the_detection_task_is_routed_to_the_slow_queue(settings):
    assert settings.CELERY_TASK_ROUTES["partners.tasks.run_detection"] == {"queue": "slow"}


@pytest.mark.parametrize("role", [*ROLES, None])
def test_only_roles_holding_run_detection_may_submit(release, role):
    actor = f.staff(role)
    holds = role is not None and ("partners", "run_detection") in ROLES[role]
    if holds:
        actions.request_detection(actor=actor, release=release, files=[upload()], reason="r")
        assert Detection.objects.count() == 1
        return
    with pytest.raises(ActionForbidden):
        actions.request_detection(actor=actor, release=release, files=[upload()], reason="r")
    assert not Detection.objects.exists()
    (refused,) = AuditEvent.objects.filter(action="detection.refused")
    assert refused.reason == "forbidden" and refused.changes["operation"] == "detection.run"
    assert refused.target_type == "partners.release" and refused.target_id == str(release.pk)


def test_a_partner_member_may_not_submit(release):
    member = f.partner_user(f.partner("borealis"))
    with pytest.raises(ActionForbidden):
        actions.request_detection(actor=member, release=release, files=[upload()], reason="r")


HOSTILE = {
    "not a model file": (
        lambda: [upload("notes.txt", b"just some text, not weights")],
        "suspect_file_invalid",
    ),
    "empty": (lambda: [upload("empty.safetensors", b"")], "suspect_file_invalid"),
    "header past the end": (
        lambda: [upload("cut.safetensors", struct.pack("<Q", 10**6) + b'{"a":1}')],
        "suspect_file_invalid",
    ),
    "none": (lambda: [], "suspect_files_count"),
    "too many": (lambda: [upload(f"s{i}.safetensors") for i in range(17)], "suspect_files_count"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_uploads_are_refused_with_a_stable_code_and_evidence(release, case):
    make, code = HOSTILE[case]
    with pytest.raises(ActionError) as refused:
        actions.request_detection(actor=officer(), release=release, files=make(), reason="r")
    assert refused.value.code == code and refused.value.status == 400
    assert not Detection.objects.exists()
    (event,) = AuditEvent.objects.filter(action="detection.refused")
    assert event.reason == code


def test_too_many_bytes_together_are_refused(release, settings):
    settings.ACCESSCTL_DETECTION_MAX_BYTES = 100
    files = [upload("a.safetensors"), upload("b.safetensors")]  # 74 bytes each
    with pytest.raises(ActionError) as refused:
        actions.request_detection(actor=officer(), release=release, files=files, reason="r")
    assert refused.value.code == "suspect_too_large" and refused.value.status == 413


def test_a_release_without_fingerprinting_has_nothing_to_attribute(release):
    Release.objects.filter(pk=release.pk).update(fingerprint=False)
    with pytest.raises(ActionError) as refused:
        actions.request_detection(actor=officer(), release=release, files=[upload()], reason="r")
    assert refused.value.code == "fingerprint_off"


def test_a_release_no_partner_holds_a_key_for_is_refused():
    bare = f.release("v6", public_in=-DAY)
    Release.objects.filter(pk=bare.pk).update(fingerprint=True)
    with pytest.raises(ActionError) as refused:
        actions.request_detection(actor=officer(), release=bare, files=[upload()], reason="r")
    assert refused.value.code == "no_fingerprint_keys"


def test_a_reason_is_required(release):
    with pytest.raises(ActionError) as refused:
        actions.request_detection(actor=officer(), release=release, files=[upload()], reason=" ")
    assert refused.value.code == "reason_required"


# -- the staff API -------------------------------------------------------------------------


def api_client(role="Security officer"):
    user = f.staff(role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {f.token(user, scopes=['staff'])}")
    return client


def test_the_staff_api_takes_multipart_files_and_answers_202(release):
    client = api_client()
    response = client.post(
        "/api/v1/staff/releases/v5/detections",
        {"files": [upload("a.safetensors"), upload("b.gguf", GGUF)], "reason": "leak"},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending" and body["release"] == "v5"
    assert [s["name"] for s in body["suspect_files"]] == ["a.safetensors", "b.gguf"]
    assert "storage_key" not in response.content.decode()
    shown = client.get(f"/api/v1/staff/detections/{body['id']}")
    assert shown.status_code == 200 and shown.json()["id"] == body["id"]
    assert shown.json()["report"] is None and shown.json()["signature"] is None
    listed = client.get("/api/v1/staff/detections/", {"release": "v5"})
    assert [d["id"] for d in listed.json()["results"]] == [body["id"]]
    # Release managers see detections (view_detection) but may not submit one.
    manager = api_client("Release manager")
    assert manager.get(f"/api/v1/staff/detections/{body['id']}").status_code == 200
    refused = manager.post(
        "/api/v1/staff/releases/v5/detections",
        {"files": [upload()], "reason": "leak"},
        format="multipart",
    )
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"


API_HOSTILE = {
    "not a model file": (
        {"files": [upload("x.bin", b"MZ\x90\0" * 8)], "reason": "r"},
        400,
        "suspect_file_invalid",
    ),
    "empty file": (
        {"files": [upload("e.safetensors", b"")], "reason": "r"},
        400,
        "suspect_file_invalid",
    ),
    "no files": ({"reason": "r"}, 400, "suspect_files_count"),
    "no reason": ({"files": [upload()]}, 400, "invalid"),
    "too many": (
        {"files": [upload(f"{i}.safetensors") for i in range(17)], "reason": "r"},
        400,
        "suspect_files_count",
    ),
    # A text part named 'files' is no file: none was sent.
    "a field, not a file": ({"files": "not a file", "reason": "r"}, 400, "suspect_files_count"),
}


@pytest.mark.parametrize("case", sorted(API_HOSTILE))
def test_hostile_api_uploads_are_400_problems_never_500(release, case):
    data, status, code = API_HOSTILE[case]
    response = api_client().post("/api/v1/staff/releases/v5/detections", data, format="multipart")
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert not Detection.objects.exists()


def test_an_unknown_release_is_a_404_problem(release):
    response = api_client().post(
        "/api/v1/staff/releases/nope/detections",
        {"files": [upload()], "reason": "r"},
        format="multipart",
    )
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_a_json_body_is_refused_as_unsupported(release):
    response = api_client().post(
        "/api/v1/staff/releases/v5/detections", {"reason": "r"}, format="json"
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_an_upload_too_large_for_the_server_is_413_at_the_edge(release, settings):
    settings.ACCESSCTL_DETECTION_MAX_BYTES = 10
    response = api_client().post(
        "/api/v1/staff/releases/v5/detections",
        {"files": [upload("a.safetensors", safetensors_bytes(b"\0" * (2 << 20)))], "reason": "r"},
        format="multipart",
    )
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"


def test_the_detection_route_accepts_bodies_larger_than_other_routes(release, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api_client().post(
        "/api/v1/staff/releases/v5/detections",
        {"files": [upload("a.safetensors", safetensors_bytes(b"\0" * 4000))], "reason": "r"},
        format="multipart",
    )
    assert response.status_code == 202, response.content
