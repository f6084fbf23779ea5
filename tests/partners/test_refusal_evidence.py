"""Every refusal, at every entry point, writes exactly one audit event naming its target
and its reason code (issue #12). Action refusals are recorded after their rollback;
downloads are ``download.denied`` whatever rule refused them."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accessctl.audit.events import AuditAction
from partners import actions
from partners.errors import ActionError
from partners.models import Release
from tests import factories as f
from tests.accessctl.test_portal import portal_client
from tests.evidence import last_event_id, the_refusal_since

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)
SHARD = b"x" * 5000


def test_every_public_action_records_its_refusals():
    """The wrapper is applied to every public action, from one table: a new action not in
    ``REFUSAL_EVENTS`` fails at import, one not wrapped fails here."""
    public = {name for name in actions.__all__ if name[0].islower()}
    assert set(actions.REFUSAL_EVENTS) == public
    for name in public:
        assert getattr(actions, name).refused_event == actions.REFUSAL_EVENTS[name], name
    assert all(str(e).endswith((".refused", ".denied")) for e in actions.REFUSAL_EVENTS.values())


def _staff(role):
    user = f.staff(role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {f.token(user, scopes=['staff'])}")
    return client, user


@pytest.fixture
def blocked():
    """A launched release whose export policy excludes the partner's country."""
    partner = f.partner("volga", jurisdiction="RU")
    release = f.release("v4", public_in=-DAY, policy="deny", policy_jurisdictions=["RU"])
    return partner, release, f.checkpoint(release)


def test_refused_window_over_the_staff_api_is_evidence(blocked):
    partner, release, _ = blocked
    client, manager = _staff("Release manager")
    now, before = timezone.now(), last_event_id()
    response = client.post(
        "/api/v1/staff/windows/",
        {
            "release": release.slug,
            "partner": partner.slug,
            "opens_at": now.isoformat(),
            "closes_at": (now + 9 * DAY).isoformat(),
        },
        format="json",
    )
    assert response.status_code == 403 and response.json()["code"] == "jurisdiction_blocked"
    refusal = the_refusal_since(before, "jurisdiction_blocked", "window.refused")
    assert refusal.actor == manager and refusal.partner_id == partner.pk
    assert (refusal.target_type, refusal.target_id) == ("partners.release", str(release.pk))


def test_refused_staff_grant_issue_over_the_api_is_evidence(blocked):
    partner, _release, checkpoint = blocked
    client, manager = _staff("Release manager")
    before = last_event_id()
    response = client.post(
        "/api/v1/staff/grants/",
        {"partner": partner.slug, "checkpoint": checkpoint.pk, "quota_bytes": 100},
        format="json",
    )
    assert response.status_code in (403, 404, 409), response.content
    code = response.json()["code"]
    refusal = the_refusal_since(before, code, "grant.refused")
    assert refusal.actor == manager and refusal.partner_id == partner.pk
    assert refusal.changes["checkpoint"] == str(checkpoint.pk)


def test_refused_grant_request_of_a_partner_is_evidence():
    partner = f.partner("aurora")
    release = f.release("v5", public_in=-DAY)
    checkpoint = f.checkpoint(release)  # no window for this partner
    engineer = f.partner_user(partner)
    before = last_event_id()
    with pytest.raises(ActionError) as refused:
        actions.request_grant(actor=engineer, partner=partner, checkpoint=checkpoint, quota_bytes=1)
    refusal = the_refusal_since(before, refused.value.code, "grant.refused")
    assert refusal.actor == engineer and refusal.partner_id == partner.pk
    assert refusal.target_type == "partners.checkpoint"


def test_refused_grant_issue_in_the_portal_form_is_evidence(client, blocked):
    partner, _release, checkpoint = blocked
    manager = f.staff("Release manager")
    signed_in = portal_client(client, manager)
    before = last_event_id()
    response = signed_in.post(
        reverse("admin:partners_grant_add"),
        {"partner": partner.pk, "checkpoint": checkpoint.pk, "quota_bytes": 100},
    )
    assert response.status_code == 200  # the form again, with the refusal
    refusal = the_refusal_since(before, "jurisdiction_blocked", "grant.refused")
    assert refusal.actor == manager and refusal.partner_id == partner.pk


def test_refused_admin_action_is_evidence(client):
    """A portal action refused for one object (approving a request already decided)."""
    partner = f.partner("aurora")
    release = f.release("v6", public_in=30 * DAY)
    f.window(release, partner)
    request = actions.request_grant(
        actor=f.partner_user(partner), partner=partner, checkpoint=f.checkpoint(release)
    )
    actions.reject_grant_request(actor=None, request=request, reason="no")
    officer = f.superuser()
    before = last_event_id()
    portal_client(client, officer).post(
        reverse("admin:partners_grantrequest_changelist"),
        {"action": "approve", "_selected_action": [request.pk]},
    )
    refusal = the_refusal_since(before, "request_decided", "grant_request.refused")
    assert refusal.target_id == str(request.pk) and refusal.actor == officer


def test_unknown_claim_code_is_evidence(client):
    before = last_event_id()
    response = client.post("/tokens/claim", {"code": "acxc_" + "x" * 40})
    assert response.status_code == 400
    refusal = the_refusal_since(before, "invitation_invalid", "token.refused")
    assert refusal.target_type == "partners.accesstoken"
    assert "x" * 10 not in str(refusal.changes)  # the presented code is never recorded


# -- downloads: every rule that refuses one is one download.denied ------------------------


@pytest.fixture
def dl():
    partner = f.partner("aurora-gpu", jurisdiction="US")
    release = f.release("v7", public_in=-DAY)
    checkpoint = f.stored_checkpoint(release, {"shard.bin": SHARD})
    f.window(release, partner)
    grant = f.grant(checkpoint, partner, quota_bytes=10 * len(SHARD))
    user = f.partner_user(partner)
    secret = f.token(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    token = client.get(f"/api/v1/grants/{grant.pk}").json()["token"]
    return {"partner": partner, "grant": grant, "user": user, "secret": secret, "token": token}


def _suspend(w):
    actions.suspend_partner(actor=None, partner=w["partner"], reason="incident")


def _revoke_token(w):
    from partners.models import AccessToken

    token = AccessToken.objects.get(prefix=w["secret"][:12])
    actions.revoke_token(actor=None, token=token, reason="leaked")


def _revoke_grant(w):
    actions.revoke_grant(actor=None, grant=w["grant"], reason="r")


# name -> (prepare, path, extra headers, query, expected status, reason)
DOWNLOAD_REFUSALS = {
    "token revoked": (_revoke_token, "shard.bin", {}, "", 401, "token_revoked"),
    "partner suspended": (_suspend, "shard.bin", {}, "", 403, "partner_suspended"),
    "grant revoked": (_revoke_grant, "shard.bin", {}, "", 403, "grant_revoked"),
    "no such file": (None, "nope.bin", {}, "", 404, "file_not_found"),
    "range outside the file": (
        None,
        "shard.bin",
        {"HTTP_RANGE": "bytes=99999-"},
        "",
        416,
        "range_not_satisfiable",
    ),
    "no grant token": (
        None,
        "shard.bin",
        {"HTTP_X_GRANT_TOKEN": ""},
        "",
        403,
        "grant_token_missing",
    ),
    "grant token in the URL": (
        None,
        "shard.bin",
        {},
        "?grant_token=T",
        400,
        "grant_token_in_query",
    ),
}


@pytest.mark.parametrize("name", sorted(DOWNLOAD_REFUSALS))
def test_a_refused_download_is_one_download_denied_naming_grant_file_and_range(dl, name):
    prepare, path, headers, query, status, reason = DOWNLOAD_REFUSALS[name]
    if prepare:
        prepare(dl)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {dl['secret']}")
    headers = {"HTTP_X_GRANT_TOKEN": dl["token"], "HTTP_RANGE": "bytes=0-99", **headers}
    query = query.replace("T", dl["token"])
    before = last_event_id()
    response = client.get(f"/api/v1/grants/{dl['grant'].pk}/files/{path}{query}", **headers)
    assert response.status_code == status, response.content
    refusal = the_refusal_since(before, reason, str(AuditAction.DOWNLOAD_DENIED))
    assert (refusal.target_type, refusal.target_id) == ("partners.grant", str(dl["grant"].pk))
    assert refusal.changes["artifact"] == path
    assert refusal.changes["range"] in (headers["HTTP_RANGE"], "0-99")
    assert refusal.partner_id == dl["partner"].pk
    assert dl["token"] not in str(refusal.changes) and dl["secret"] not in str(refusal.changes)


def test_a_download_hidden_by_export_control_is_one_download_denied(dl):
    # Behind the actions' back, on purpose: the actions would end the grant first.
    Release.objects.filter(pk=dl["grant"].checkpoint.release_id).update(
        policy="deny", policy_jurisdictions=["US"]
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {dl['secret']}")
    before = last_event_id()
    response = client.get(
        f"/api/v1/grants/{dl['grant'].pk}/files/shard.bin", HTTP_X_GRANT_TOKEN=dl["token"]
    )
    assert response.status_code == 404
    refusal = the_refusal_since(before, "jurisdiction_blocked", "download.denied")
    assert refusal.target_id == str(dl["grant"].pk)
