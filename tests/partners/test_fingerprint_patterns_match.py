"""Fingerprinting "on" with patterns that mark nothing is refused (headers only are read),
when it is turned on, when the patterns change and when a checkpoint is registered; and a
detection against a release where nothing is marked says so."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accessctl.audit.models import AuditEvent
from partners import actions
from partners.errors import ActionError
from partners.models import Detection, Release
from tests import factories as f
from tests.partners.detection_world import int8_per_channel, marked_world, original_bytes

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)
CODE = "fingerprint_patterns_match_nothing"


@pytest.mark.parametrize("patterns", [["*.weights"], ["["], ["layers.0.norm.bias"]])
def test_turning_fingerprinting_on_with_patterns_that_mark_nothing_is_refused(patterns):
    release = f.release("v7", public_in=-DAY)
    f.stored_checkpoint(release, {"model.safetensors": original_bytes(), "config.json": b"{}"})
    with pytest.raises(ActionError) as refused:
        actions.update_release(
            actor=f.superuser(), release=release, fingerprint=True, fingerprint_patterns=patterns
        )
    assert refused.value.code == CODE
    assert "mark no tensor" in str(refused.value)
    assert Release.objects.get(pk=release.pk).fingerprint is False
    refusal = AuditEvent.objects.filter(action="release.refused").latest("pk")
    assert (refusal.reason, refusal.target_id) == (CODE, str(release.pk))
    # Patterns that match are accepted, and then changing them to a typo is refused.
    actions.update_release(
        actor=f.superuser(), release=release, fingerprint=True, fingerprint_patterns=["*.weight"]
    )
    with pytest.raises(ActionError) as refused:
        actions.update_release(actor=f.superuser(), release=release, fingerprint_patterns=patterns)
    assert refused.value.code == CODE


def test_a_release_without_safetensors_files_has_nothing_to_check():
    release = f.release("v8", public_in=-DAY)
    f.stored_checkpoint(release, {"config.json": b"{}"})
    actions.update_release(
        actor=f.superuser(), release=release, fingerprint=True, fingerprint_patterns=["*.weights"]
    )


def test_registering_a_checkpoint_no_pattern_marks_in_a_fingerprinted_release_is_refused():
    release = f.release("v9", public_in=-DAY, fingerprint=True, fingerprint_patterns=["*.weights"])
    with pytest.raises(ActionError) as refused:
        f.stored_checkpoint(release, {"model.safetensors": original_bytes()})
    assert refused.value.code == CODE
    assert not release.checkpoints.exists()
    good = f.release("v10", public_in=-DAY, fingerprint=True)
    assert f.stored_checkpoint(good, {"model.safetensors": original_bytes()})


def test_a_detection_against_a_release_where_nothing_is_marked_says_so():
    world = marked_world()
    # A release whose patterns mark nothing (as before the refusal existed).
    Release.objects.filter(pk=world.release.pk).update(fingerprint_patterns=["*.weights"])
    world.release.refresh_from_db()
    detection = actions.request_detection(
        actor=f.staff("Security officer"),
        release=world.release,
        files=[SimpleUploadedFile("leak.safetensors", int8_per_channel(world.copies["aurora"]))],
        reason="found online",
    )
    actions.run_detection(detection.pk)
    detection = Detection.objects.get(pk=detection.pk)
    assert detection.status == Detection.Status.FAILED
    assert "matches its fingerprint patterns" in detection.error
    assert "nothing was marked" in detection.error
    assert "not derived from these weights" not in detection.error


def test_the_release_form_shows_patterns_that_mark_nothing_on_their_field(client):
    from tests.accessctl.test_portal import portal_client
    from tests.partners.admin.test_portal_releases import (
        CHECKPOINTS,
        WINDOWS,
        _at_second,
        _management,
        _when,
    )

    release = f.release("v11", public_in=DAY)
    f.stored_checkpoint(release, {"model.safetensors": original_bytes()})
    manager = f.staff("Release manager")
    portal = portal_client(client, manager)
    url = reverse("admin:partners_release_change", args=[release.pk])
    data = {
        "name": release.name,
        **_when("public_release_at", _at_second(release.public_release_at)),
        "status": "planned",
        "quota_factor": str(release.quota_factor),
        "fingerprint": "on",
        "fingerprint_alpha": "0.001",
        **_management(WINDOWS, 0, 0),
        **_management(CHECKPOINTS, 0, 0),
    }
    refused = portal.post(url, {**data, "fingerprint_patterns": '["*.weights"]'})
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert "mark no tensor" in str(errors["fingerprint_patterns"])
    refusal = AuditEvent.objects.get(actor=manager, action="release.refused")
    assert refusal.reason == CODE
    release.refresh_from_db()
    assert not release.fingerprint
