"""Read-only values read one way on every portal page: byte counts in binary units (the
count kept in the title, for auditors), times to the second in UTC, lists and mappings as
words, not raw JSON or Python dicts; titles say UTC."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accessctl.audit.models import AuditCheckpoint, AuditEvent, AuditExport
from partners import actions
from tests import factories as f
from tests.accessctl.test_portal import portal_client

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


@pytest.fixture
def world():
    partner = f.partner("aurora")
    release = f.release("v3", public_in=-DAY)
    checkpoint = f.stored_checkpoint(release, {"model.safetensors": b"\0" * 4096})
    f.window(release, partner)
    grant = f.grant(checkpoint, partner, quota_bytes=2 * 1024**2)
    actions.revoke_grant(actor=None, grant=grant, reason="r")
    member = f.partner_user(partner)
    f.token(member, scopes=("read", "download"))
    upcoming = f.release("v4", public_in=30 * DAY)
    f.window(upcoming, partner)
    request = actions.request_grant(
        actor=member, partner=partner, checkpoint=f.checkpoint(upcoming), quota_bytes=20480
    )
    staff = f.superuser()
    AuditExport.objects.create(
        requested_by=staff, requested_at=timezone.now(), filters={"partner": "aurora"}
    )
    sealed = AuditCheckpoint.objects.create(
        tree_size=5, root_hash=b"\0" * 32, sealed_at=timezone.now(), key_id="k", signature="s"
    )
    return {
        "grant": grant,
        "request": request,
        "checkpoint": checkpoint,
        "staff": staff,
        "sealed": sealed,
    }


def get(client, world, url):
    response = portal_client(client, world["staff"]).get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def test_a_grants_page_shows_its_quota_and_use_as_sizes(client, world):
    html = get(client, world, reverse("admin:partners_grant_change", args=[world["grant"].pk]))
    assert '<span title="2097152 bytes">2.0 MiB</span>' in html
    assert '<span title="0 bytes">0 B</span>' in html
    assert ">2097152<" not in html


def test_a_requests_page_shows_the_quota_asked_for_as_a_size(client, world):
    url = reverse("admin:partners_grantrequest_change", args=[world["request"].pk])
    assert '<span title="20480 bytes">20.0 KiB</span>' in get(client, world, url)


def test_a_checkpoints_artifacts_show_sizes(client, world):
    url = reverse("admin:partners_checkpoint_change", args=[world["checkpoint"].pk])
    assert '<span title="4096 bytes">4.0 KiB</span>' in get(client, world, url)


def test_the_grants_history_shows_times_and_sizes(client, world):
    url = reverse("admin:partners_grant_history", args=[world["grant"].pk])
    html = get(client, world, url)
    assert re.search(rf'<span title="&quot;[0-9T:.+-]+&quot;">{STAMP}</span>', html), html
    assert '<span title="2097152">2.0 MiB</span>' in html


def test_token_lists_show_scopes_and_export_lists_show_filters_as_words(client, world):
    tokens = get(client, world, reverse("admin:partners_accesstoken_changelist"))
    assert "download, read" in tokens and "[&quot;read&quot;" not in tokens
    exports = get(client, world, reverse("admin:audit_auditexport_changelist"))
    assert "partner: aurora" in exports and "{&#x27;partner&#x27;" not in exports


def test_audit_event_and_checkpoint_titles_say_utc(client, world):
    event = AuditEvent.objects.filter(action="grant.revoked").get()
    html = get(client, world, reverse("admin:audit_auditevent_change", args=[event.pk]))
    assert re.search(rf"<title>{STAMP} grant.revoked grant #", html)
    sealed = world["sealed"]
    html = get(client, world, reverse("admin:audit_auditcheckpoint_change", args=[sealed.pk]))
    assert re.search(rf"checkpoint 5 at {STAMP}", html)
