"""A partner's quota is bounded by the release's limit; staff quotas by what the database
holds. Every path refuses with a stable code and a 400, never a 500."""

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from accessctl.audit.models import AuditEvent
from partners import actions
from partners.actions.grants import MAX_QUOTA_BYTES, quota_limit
from partners.errors import ActionError
from partners.models import Grant, GrantRequest
from tests import factories as f

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)
SIZE = 2 * 100  # two files of 100 bytes


@pytest.fixture
def world():
    partner = f.partner("aurora-gpu")
    launched = f.release("v3", public_in=-DAY, quota_factor=4)
    upcoming = f.release("v4", public_in=30 * DAY, quota_factor=4)
    cps = {}
    for release in (launched, upcoming):
        f.window(release, partner)
        cps[release.slug] = f.stored_checkpoint(release, {"a.bin": b"a" * 100, "b.bin": b"b" * 100})
    user = f.partner_user(partner)
    return {"partner": partner, "user": user, "cps": cps, "secret": f.token(user)}


def ask(world, quota, release="v3"):
    body = {"checkpoint": world["cps"][release].pk}
    if quota is not None:
        body["quota_bytes"] = quota
    return APIClient().post(
        "/api/v1/grants/", body, format="json", HTTP_AUTHORIZATION=f"Bearer {world['secret']}"
    )


def test_the_limit_is_the_factor_times_the_size(world):
    assert quota_limit(world["cps"]["v3"]) == 4 * SIZE


@pytest.mark.parametrize("quota", [4 * SIZE + 1, 10**12, MAX_QUOTA_BYTES, 2**63, 10**30])
@pytest.mark.parametrize("release", ["v3", "v4"])
def test_a_partner_cannot_ask_beyond_the_limit(world, quota, release):
    response = ask(world, quota, release)
    assert response.status_code == 400, response.content
    body = response.json()
    expected = "quota_too_large" if quota <= MAX_QUOTA_BYTES else "quota_invalid"
    assert body["code"] == expected
    if expected == "quota_too_large":
        assert f"at most {4 * SIZE} bytes" in body["detail"]
        assert body["fields"] == {"quota_bytes": [f"At most {4 * SIZE} bytes."]}
    assert not Grant.objects.exists() and not GrantRequest.objects.exists()
    # Nothing was written but the refusal itself: one event naming the reason.
    refused = AuditEvent.objects.filter(action__startswith="grant")
    assert [(e.action, e.reason) for e in refused] == [("grant.refused", expected)]


OUT_OF_RANGE = [0, -1, -5, 2**63, 10**30, "abc", "", 1.5, True, "9223372036854775808"]


def _one_refusal(expected_partner) -> None:
    events = AuditEvent.objects.filter(outcome="denied")
    assert [(e.action, e.reason) for e in events] == [("grant.refused", "quota_invalid")]
    assert events[0].partner_id == expected_partner.pk
    assert not Grant.objects.exists() and not GrantRequest.objects.exists()


@pytest.mark.parametrize("quota", OUT_OF_RANGE, ids=repr)
def test_a_partner_quota_out_of_range_is_quota_invalid(world, quota):
    """One code and one event kind for every quota no grant can have (docs/decisions.md):
    the serializer does not answer ``invalid`` for some and the action ``quota_invalid``
    for others."""
    response = ask(world, quota)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "quota_invalid"
    _one_refusal(world["partner"])


@pytest.mark.parametrize("quota", OUT_OF_RANGE, ids=repr)
def test_a_staff_quota_out_of_range_is_quota_invalid(world, quota):
    response = staff_issue(world, quota)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "quota_invalid"
    _one_refusal(world["partner"])


@pytest.mark.parametrize(
    "quota", ["9223372036854775808", "-5", "0", "abc", "1e3", "1" * 300, "1\x00"], ids=repr
)
@pytest.mark.parametrize("page", ["grant", "grantrequest"])
def test_a_portal_quota_out_of_range_is_quota_invalid(client, world, quota, page):
    from django.urls import reverse

    from tests.accessctl.test_portal import portal_client

    response = portal_client(client, f.superuser()).post(
        reverse(f"admin:partners_{page}_add"),
        {
            "partner": world["partner"].pk,
            "checkpoint": world["cps"]["v3"].pk,
            "quota_bytes": quota,
            "expires_at": "",
            "note": "",
        },
    )
    assert response.status_code in (200, 302), response.status_code
    _one_refusal(world["partner"])


def test_a_quota_at_the_limit_is_issued(world):
    response = ask(world, 4 * SIZE)
    assert response.status_code == 201, response.content
    assert response.json()["quota_bytes"] == 4 * SIZE


def test_the_default_is_twice_the_size_within_the_limit(world):
    response = ask(world, None)
    assert response.status_code == 201 and response.json()["quota_bytes"] == 2 * SIZE


def test_the_default_never_passes_a_factor_of_one(world):
    actions.update_release(actor=None, release=world["cps"]["v3"].release, quota_factor=1)
    response = ask(world, None)
    assert response.status_code == 201 and response.json()["quota_bytes"] == SIZE


def test_the_action_bounds_every_path(world):
    """Not only the view: the portal and a staff member filing a request get it too."""
    for actor in (world["user"], f.staff("Release manager")):
        with pytest.raises(ActionError) as refused:
            actions.request_grant(
                actor=actor,
                partner=world["partner"],
                checkpoint=world["cps"]["v4"],
                quota_bytes=4 * SIZE + 1,
            )
        assert refused.value.code == "quota_too_large"


def test_staff_set_the_factor_and_it_applies_at_once(world):
    release = world["cps"]["v3"].release
    actions.update_release(actor=f.staff("Release manager"), release=release, quota_factor=10)
    assert ask(world, 10 * SIZE).status_code == 201
    assert AuditEvent.objects.filter(
        action="release.updated", changes__quota_factor=[4, 10]
    ).exists()


@pytest.mark.parametrize("factor", [0, 1001])
def test_the_factor_is_validated(world, factor):
    with pytest.raises(ActionError) as refused:
        actions.update_release(actor=None, release=world["cps"]["v3"].release, quota_factor=factor)
    assert refused.value.code == "invalid" and "quota_factor" in refused.value.fields
    with pytest.raises(ActionError):
        f.release("v9", quota_factor=factor)


def staff_issue(world, quota):
    secret = f.token(f.staff("Release manager"), scopes=["staff"])
    return APIClient().post(
        "/api/v1/staff/grants/",
        {"partner": "aurora-gpu", "checkpoint": world["cps"]["v3"].pk, "quota_bytes": quota},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )


@pytest.mark.parametrize("quota", [2**63, 10**30])
def test_staff_quota_beyond_the_database_is_invalid_not_a_500(world, quota):
    response = staff_issue(world, quota)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "quota_invalid"
    assert not Grant.objects.exists()


def test_staff_may_issue_beyond_the_partner_limit(world):
    """Staff decide their quotas (a person looked at it); the database bound still holds."""
    response = staff_issue(world, MAX_QUOTA_BYTES)
    assert response.status_code == 201, response.content
    assert Grant.objects.get().quota_bytes == MAX_QUOTA_BYTES


def _release_form(release, **overrides):
    from django.utils import timezone

    at = timezone.localtime(release.public_release_at)
    data = {
        "name": release.name,
        "public_release_at_0": at.strftime("%Y-%m-%d"),
        "public_release_at_1": at.strftime("%H:%M:%S"),
        "status": release.status,
        "quota_factor": release.quota_factor,
    }
    for prefix in ("windows", "checkpoints"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    data.update(overrides)
    return data


@pytest.mark.parametrize(("factor", "saved"), [(8, 8), (0, 4), (5000, 4)])
def test_staff_edit_the_factor_in_the_portal_and_it_is_validated(client, world, factor, saved):
    from django.urls import reverse

    from partners.models import Release
    from tests.accessctl.test_portal import portal_client

    release = world["cps"]["v3"].release
    c = portal_client(client, f.staff("Release manager"))
    url = reverse("admin:partners_release_change", args=[release.pk])
    assert 'name="quota_factor"' in c.get(url).content.decode()
    response = c.post(url, _release_form(release, quota_factor=factor))
    assert Release.objects.get(pk=release.pk).quota_factor == saved
    if saved != factor:
        assert response.status_code == 200  # the form again, with the error
        assert "quota_factor" in response.context["adminform"].form.errors
    else:
        assert response.status_code == 302
