"""The detection task on small synthetic checkpoints: a leak made from one partner's copy
(quantized) names that partner, in the staff API and on the portal page; the signed
report verifies offline with the lab's public key only, and a tampered one does not; an
unmarked original is inconclusive; a suspect that is no model fails, with evidence."""

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from accessctl.audit.models import AuditEvent
from accessctl.audit.sealing import seal
from accessctl.signing.keys import jwks
from accessctl_cli.main import main as cli
from partners import actions
from partners.models import Detection
from tests import factories as f
from tests.partners.detection_world import (
    SHAPES,
    four_bit_per_group,
    gguf_q8,
    int8_per_channel,
    marked_world,
)

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


def submit(world, files, actor=None):
    uploads = [SimpleUploadedFile(name, content) for name, content in files.items()]
    detection = actions.request_detection(
        actor=actor or f.staff("Security officer"),
        release=world.release,
        files=uploads,
        reason="found on a file-sharing site",
    )
    return actions.run_detection(detection.pk) or Detection.objects.get(pk=detection.pk)


@pytest.fixture
def world():
    return marked_world()


def test_a_leak_quantized_from_borealis_copy_names_borealis(world):
    seal()  # the commitments are sealed before any partner's first byte
    leak = int8_per_channel(world.copies["borealis"])
    detection = submit(world, {"leaked-model.safetensors": leak})
    assert detection.status == Detection.Status.DONE, detection.error
    assert (detection.verdict, detection.named) == ("named", ["borealis"])
    report = detection.report
    z = {p["partner"]: p["z"] for p in report["partners"]}
    assert z["borealis"] > 8 and z["aurora"] < 4, z
    assert report["detection"] == detection.pk and report["release"] == "v5"
    assert report["checkpoint"] == "step-1"
    assert {t["original"] for t in report["tensors"]} == {
        "layers.0.mlp.weight",
        "layers.1.mlp.weight",
    }
    assert report["suspect_files"] == [
        {
            "name": "leaked-model.safetensors",
            "size": len(leak),
            "sha256": detection.suspect_files[0]["sha256"],
        }
    ]
    commitments = {c["partner"]: c for c in report["commitments"]}
    assert set(commitments) == {"aurora", "borealis"}
    committed = AuditEvent.objects.get(pk=commitments["borealis"]["audit_event"])
    assert committed.action == "fingerprint.committed"
    assert committed.changes["commitment"] == commitments["borealis"]["commitment"]
    assert (
        commitments["borealis"]["sealed_in_checkpoint"]["tree_size"]
        > (commitments["borealis"]["sealed_in_checkpoint"]["leaf_index"])
    )
    (finished,) = AuditEvent.objects.filter(action="detection.finished")
    assert finished.changes["verdict"] == "named" and finished.changes["named"] == ["borealis"]
    assert finished.target_id == str(detection.pk)


def test_a_gguf_q8_re_export_with_other_names_names_the_leaker(world, tmp_path):
    """Uploaded as GGUF (Q8_0, llama.cpp's tensor names): the task reads it from storage,
    aligns the renamed tensors by shape and correlation, and names aurora."""
    leak = gguf_q8(world.copies["aurora"], tmp_path / "leak.gguf")
    detection = submit(world, {"model-q8_0.gguf": leak})
    assert detection.suspect_files[0]["format"] == "gguf"
    assert (detection.verdict, detection.named) == ("named", ["aurora"]), detection.report
    compared = {t["original"]: t["suspect"] for t in detection.report["tensors"]}
    assert set(compared) == set(SHAPES) and all(s.startswith("blk.") for s in compared.values())


def test_four_bit_leak_of_aurora_copy_is_at_least_not_pinned_on_borealis(world):
    """4-bit per group keeps less of the mark (z ~ 9 alpha sqrt N): on this small
    checkpoint it may not reach 8, but it never points at the other partner."""
    detection = submit(world, {"q4.safetensors": four_bit_per_group(world.copies["aurora"])})
    z = {p["partner"]: p["z"] for p in detection.report["partners"]}
    assert z["borealis"] < 4 and z["aurora"] > z["borealis"], z
    assert detection.named in ([], ["aurora"])


def test_an_unmarked_original_is_inconclusive_for_everyone(world):
    detection = submit(world, {"model.safetensors": int8_per_channel(world.original)})
    assert detection.status == Detection.Status.DONE
    assert (detection.verdict, detection.named) == ("inconclusive", [])
    assert all(p["z"] < 4 for p in detection.report["partners"])


def test_a_suspect_that_does_not_parse_fails_with_a_clear_error_and_evidence(world):
    # Passes the upload's magic check (a header length and '{'), but no JSON follows.
    bad = (12).to_bytes(8, "little") + b"{not json!!}" + b"\0" * 32
    detection = submit(world, {"broken.safetensors": bad})
    assert detection.status == Detection.Status.FAILED
    assert "could not be read" in detection.error
    (failed,) = AuditEvent.objects.filter(action="detection.failed")
    assert failed.outcome == "failure" and failed.target_id == str(detection.pk)


def test_a_model_unrelated_to_the_release_fails_as_nothing_aligned(world):
    from tests.partners.detection_world import original_bytes

    other = original_bytes(seed=99)
    # Same shapes, other weights: nothing correlates, but the names match; rename them.
    from safetensors.numpy import load, save

    renamed = save({f"other.{k}": v for k, v in load(other).items()})
    detection = submit(world, {"other.safetensors": renamed})
    assert detection.status == Detection.Status.FAILED
    assert "aligned" in detection.error


def test_running_a_finished_detection_again_changes_nothing(world):
    detection = submit(world, {"leak.safetensors": int8_per_channel(world.copies["aurora"])})
    before = AuditEvent.objects.count()
    assert actions.run_detection(detection.pk) is None
    assert AuditEvent.objects.count() == before
    assert Detection.objects.get(pk=detection.pk).report == detection.report


def test_the_verdict_shows_in_the_api_and_the_portal_and_the_report_verifies_offline(
    world, tmp_path, capsys
):
    detection = submit(world, {"leak.safetensors": int8_per_channel(world.copies["borealis"])})
    officer = f.staff("Security officer")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {f.token(officer, scopes=['staff'])}")
    shown = client.get(f"/api/v1/staff/detections/{detection.pk}").json()
    assert (shown["status"], shown["verdict"], shown["named"]) == ("done", "named", ["borealis"])
    assert shown["report"] == detection.report and shown["signature"]["alg"] == "EdDSA"

    # The portal page: the verdict first, the z table, commitments, the report's file.
    portal = f.portal_client(officer) if hasattr(f, "portal_client") else _portal(officer)
    page = portal.get(reverse("admin:partners_detection_change", args=[detection.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="story-verdict"' in html and "One partner named" in html
    assert "borealis" in html and 'id="story-partners"' in html
    assert 'id="story-commitments"' in html
    download = portal.get(reverse("admin:partners_detection_report", args=[detection.pk]))
    signed = json.loads(download.content)

    # Offline: the saved report and the published keys, nothing else.
    report_file, keys_file = tmp_path / "report.json", tmp_path / "jwks.json"
    report_file.write_text(json.dumps(signed))
    keys_file.write_text(json.dumps(jwks()))
    assert cli(["verify-report", str(report_file), "--jwks", str(keys_file)]) == 0
    assert "verdict named, named borealis" in capsys.readouterr().out
    # The API's answer verifies too (it holds the same report and signature).
    (tmp_path / "api.json").write_text(json.dumps(shown))
    assert cli(["verify-report", str(tmp_path / "api.json"), "--public-key", str(keys_file)]) == 0

    tampered = json.loads(json.dumps(signed))
    tampered["report"]["named"] = ["aurora"]
    report_file.write_text(json.dumps(tampered))
    assert cli(["verify-report", str(report_file), "--jwks", str(keys_file)]) == 1
    assert "does not verify" in capsys.readouterr().err
    shifted = json.loads(json.dumps(signed))
    shifted["report"]["partners"][0]["z"] += 0.01
    report_file.write_text(json.dumps(shifted))
    assert cli(["verify-report", str(report_file), "--jwks", str(keys_file)]) == 1


def _portal(user):
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    client = Client()
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def test_an_unexpected_failure_ends_the_detection_failed_not_running(world, monkeypatch):
    from partners import tasks

    detection = actions.request_detection(
        actor=f.staff("Security officer"),
        release=world.release,
        files=[SimpleUploadedFile("leak.safetensors", world.copies["aurora"])],
        reason="r",
    )

    def broken(*args, **kwargs):
        raise RuntimeError("storage said no at s3://bucket/secret-path")

    monkeypatch.setattr("partners.fingerprints.detect", broken)
    assert tasks.run_detection.run(detection.pk) == "failed"
    detection.refresh_from_db()
    assert detection.status == Detection.Status.FAILED
    assert "unexpectedly" in detection.error and "secret-path" not in detection.error
    assert AuditEvent.objects.filter(action="detection.failed").count() == 1
