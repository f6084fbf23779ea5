"""A partner polling for its copy (503 variant_not_ready with Retry-After) is a decision,
not a server error: Django logs it once, as a warning, never at ERROR, so polling clients
page nobody (red team of issue 17, finding 9). A real server error still logs at ERROR."""

import logging

import pytest

from .test_serving import download
from .world import MARKED, World

pytestmark = pytest.mark.django_db


def test_a_copy_not_written_yet_is_logged_as_a_warning_once(caplog):
    world = World()
    partner = world.partners[0]
    grant = world.grant(partner)
    with caplog.at_level(logging.INFO, logger="django.request"):
        refused = download(world, partner, grant, MARKED)
    assert refused.status_code == 503 and refused["Retry-After"]
    records = [r for r in caplog.records if r.name == "django.request"]
    assert [r.levelno for r in records] == [logging.WARNING], records
    assert "variant_not_ready" in records[0].getMessage()
