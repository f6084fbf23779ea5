"""The report's commitment evidence verifies offline: each commitment's sealed leaf, its
inclusion proof in a signed checkpoint, and the partner's first download leaf after that
checkpoint. Tampering with a proof, a leaf or a checkpoint (even re-signed by the lab)
fails ``accessctl verify-report`` with one line."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accessctl.audit.events import AuditAction, record
from accessctl.audit.sealing import seal
from accessctl.signing.keys import jwks, sign_detached
from accessctl_cli.main import main as cli
from accessctl_wire import b64, canonical_json, unb64
from partners import actions
from partners.models import Detection, Grant
from tests import factories as f
from tests.partners.detection_world import int8_per_channel, marked_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed(tmp_path):
    """A done detection's signed report: borealis downloaded after its commitment was
    sealed; aurora never downloaded."""
    world = marked_world()
    borealis = world.partners["borealis"]
    grant = Grant.objects.get(partner=borealis, checkpoint__release=world.release)
    record(
        AuditAction.DOWNLOAD_AUTHORIZED,
        actor=None,
        target=grant,
        partner=borealis,
        changes={"artifact": "model.safetensors", "bytes": 10},
    )
    seal()
    detection = actions.request_detection(
        actor=f.staff("Security officer"),
        release=world.release,
        files=[SimpleUploadedFile("leak.safetensors", int8_per_channel(world.copies["borealis"]))],
        reason="found online",
    )
    actions.run_detection(detection.pk)
    detection = Detection.objects.get(pk=detection.pk)
    assert detection.status == Detection.Status.DONE, detection.error
    (tmp_path / "jwks.json").write_text(json.dumps(jwks()))
    return {"report": detection.report, "signature": detection.signature}


def check(tmp_path, signed, resign=True):
    if resign:  # the lab itself signing a false report: the proofs must still catch it
        signed = {
            "report": signed["report"],
            "signature": sign_detached(canonical_json(signed["report"])),
        }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(signed))
    return cli(["verify-report", str(path), "--jwks", str(tmp_path / "jwks.json")])


def evidence(signed, partner):
    return next(c for c in signed["report"]["commitments"] if c["partner"] == partner)["evidence"]


def test_a_genuine_report_proves_each_commitment_sealed_before_the_first_download(
    signed, tmp_path, capsys
):
    assert check(tmp_path, signed, resign=False) == 0
    out = capsys.readouterr().out
    borealis = evidence(signed, "borealis")
    n = borealis["sealed"]["tree_size"]
    m = borealis["first_download"]["leaf_index"]
    assert m >= n
    assert (
        f"OK borealis: commitment sealed in checkpoint {n} ({borealis['sealed']['sealed_at']}), "
        f"before its first download at leaf {m}"
    ) in out
    assert "OK aurora: commitment sealed in checkpoint" in out
    assert (
        "aurora: commitment sealed" in out and "no download of the release by this partner" in out
    )
    assert evidence(signed, "aurora")["first_download"] is None


def _tamper(signed, change):
    copy = json.loads(json.dumps(signed))
    change(evidence(copy, "borealis"))
    return copy


def _flip(text):
    raw = bytearray(unb64(text))
    raw[0] ^= 1
    return b64(bytes(raw))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            lambda e: e["commitment"]["proof"].__setitem__(0, _flip(e["commitment"]["proof"][0])),
            "commitment's inclusion proof does not lead",
        ),
        (
            lambda e: e["commitment"]["event"].__setitem__(
                "occurred_at", "2020-01-01T00:00:00.000000Z"
            ),
            "commitment's inclusion proof does not lead",
        ),
        (
            lambda e: e["commitment"].__setitem__("leaf_index", e["commitment"]["leaf_index"] + 1),
            "commitment's inclusion proof does not lead",
        ),
        (
            lambda e: e["first_download"]["proof"].__setitem__(
                0, _flip(e["first_download"]["proof"][0])
            ),
            "first download's inclusion proof does not lead",
        ),
        (
            lambda e: e["first_download"].__setitem__("leaf_index", 1),
            "first download's inclusion proof does not lead",
        ),
        (
            lambda e: e["sealed"].__setitem__("sealed_at", "2020-01-01T00:00:00.000000Z"),
            "sealing checkpoint",
        ),
        (
            lambda e: e["sealed"].__setitem__("root_hash", _flip(e["sealed"]["root_hash"])),
            "sealing checkpoint",
        ),
        (
            lambda e: e["latest"]["signature"].__setitem__(
                "signature", _flip(e["latest"]["signature"]["signature"])
            ),
            "newest checkpoint",
        ),
        (lambda e: e.__setitem__("consistency", []), "consistency proof fails"),
    ],
    ids=[
        "commitment-proof",
        "commitment-leaf",
        "commitment-index",
        "download-proof",
        "download-index",
        "checkpoint-time",
        "checkpoint-root",
        "checkpoint-signature",
        "consistency",
    ],
)
def test_tampering_with_a_proof_a_leaf_or_a_checkpoint_fails_with_one_line(
    signed, tmp_path, capsys, change, says
):
    capsys.readouterr()
    assert check(tmp_path, _tamper(signed, change)) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: partner borealis:"), err
    assert says in err, err


def test_a_tampered_report_not_re_signed_fails_its_signature(signed, tmp_path, capsys):
    tampered = _tamper(signed, lambda e: e["commitment"]["event"].__setitem__("id", 1))
    assert check(tmp_path, tampered, resign=False) == 1
    assert "does not verify" in capsys.readouterr().err


def test_a_commitment_leaf_passed_off_as_the_first_download_fails(signed, tmp_path, capsys):
    # A real leaf with a real proof, but in the sealing checkpoint, not the newest one the
    # first download must be proved in.
    copy = json.loads(json.dumps(signed))
    e = evidence(copy, "borealis")
    e["first_download"] = json.loads(json.dumps(e["commitment"]))
    e["first_download"]["event"]["action"] = "fingerprint.committed"
    assert check(tmp_path, copy) == 1
    assert "inclusion proof does not lead" in capsys.readouterr().err


def test_a_download_logged_before_the_commitment_was_sealed_fails_the_order(tmp_path, capsys):
    """Red team's case: a byte served (download.authorized) before the sealer ran. The
    report carries the truth and verify-report says the order is not proven."""
    from datetime import timedelta

    from tests.partners.detection_world import original_bytes

    release = f.release("v6", public_in=-timedelta(days=1), fingerprint=True)
    original = original_bytes()
    checkpoint = f.stored_checkpoint(release, {"model.safetensors": original})
    partner = f.partner("aurora")
    f.window(release, partner)
    grant = f.grant(checkpoint, partner)  # commits the key; the sealer has not run yet
    record(
        AuditAction.DOWNLOAD_AUTHORIZED,
        actor=None,
        target=grant,
        partner=partner,
        changes={"artifact": "model.safetensors", "bytes": 10},
    )
    actions.write_variants(None)  # seals: both events fall in the same checkpoint
    detection = actions.request_detection(
        actor=f.staff("Security officer"),
        release=release,
        files=[SimpleUploadedFile("leak.safetensors", original)],
        reason="found online",
    )
    actions.run_detection(detection.pk)
    detection = Detection.objects.get(pk=detection.pk)
    assert detection.status == Detection.Status.DONE, detection.error
    (tmp_path / "jwks.json").write_text(json.dumps(jwks()))
    assert check(tmp_path, {"report": detection.report, "signature": detection.signature}) == 1
    err = capsys.readouterr().err
    assert "error: partner aurora: its first download (leaf" in err
    assert "was logged before checkpoint" in err


def test_a_report_without_evidence_says_so(signed, tmp_path, capsys):
    copy = json.loads(json.dumps(signed))
    for entry in copy["report"]["commitments"]:
        del entry["evidence"]
    assert check(tmp_path, copy) == 1
    assert "carries no commitment evidence" in capsys.readouterr().err
