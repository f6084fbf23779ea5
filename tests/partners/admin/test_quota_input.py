"""Staff type a quota as bytes or as a size in binary units, and see what they typed as a
size beside the input (issue 15's "left": quota inputs showed bare bytes). What is no size
(a decimal unit, a fraction of a byte, words) is refused by the action as any bad quota
is, with its event; nothing is issued."""

from datetime import timedelta

import pytest
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from accessctl.audit.models import AuditEvent
from partners.admin.grants import ByteSizeInput, QuotaFormField, parse_size
from partners.models import Grant
from tests import factories as f
from tests.accessctl.test_portal import portal_client

DAY = timedelta(days=1)

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("100", 100),
        ("  100  ", 100),
        ("8 GiB", 8 * GiB),
        ("8gib", 8 * GiB),
        ("8GIB", 8 * GiB),
        ("512 MiB", 512 * MiB),
        ("1.5 TiB", 3 * TiB // 2),
        ("0.5 KiB", 512),
        ("7 B", 7),
        ("0", 0),
    ],
)
def test_sizes_are_read_in_binary_units(typed, expected):
    assert parse_size(typed) == expected


@pytest.mark.parametrize(
    "typed",
    ["8 GB", "8 MB", "1.3 B", "0.1 KiB", "-5", "1e9", "eight", "8 GiB 2", "", "0x10", "½ GiB"],
)
def test_what_is_no_size_is_not_read_as_one(typed):
    assert parse_size(typed) is None


@given(st.text(max_size=40))
def test_any_text_is_a_whole_number_of_bytes_or_none(text):
    value = parse_size(text)
    assert value is None or (isinstance(value, int) and value >= 0)


def test_a_quota_that_is_no_size_reaches_the_action_as_zero():
    # The action refuses 0 (quota_invalid) and records it: the form never refuses silently.
    assert QuotaFormField().clean("8 GB") == 0
    assert QuotaFormField().clean("2 GiB") == 2 * GiB


def test_the_input_shows_its_value_as_a_size_beside_it():
    html = ByteSizeInput().render("quota_bytes", "2147483648", attrs={"id": "id_quota_bytes"})
    assert 'value="2147483648"' in html
    assert '<output class="byte-size" for="id_quota_bytes" data-byte-size>2.0 GiB</output>' in html
    empty = ByteSizeInput().render("quota_bytes", None, attrs={"id": "id_quota_bytes"})
    assert "data-byte-size></output>" in empty


@pytest.mark.django_db
def test_a_release_manager_issues_a_grant_of_a_typed_size(client):
    partner = f.partner()
    release = f.release(public_in=-DAY)
    checkpoint = f.checkpoint(release)
    f.window(release, partner)
    staff = portal_client(client, f.staff("Release manager"))
    form = staff.get(reverse("admin:partners_grant_add")).content.decode()
    assert "data-byte-size" in form and "binary units" in form
    response = staff.post(
        reverse("admin:partners_grant_add"),
        {"partner": partner.pk, "checkpoint": checkpoint.pk, "quota_bytes": "3 MiB"},
    )
    assert response.status_code == 302
    assert Grant.objects.get().quota_bytes == 3 * MiB


@pytest.mark.django_db
def test_a_decimal_unit_is_refused_with_its_event_and_nothing_issued(client):
    partner = f.partner()
    release = f.release(public_in=-DAY)
    checkpoint = f.checkpoint(release)
    f.window(release, partner)
    response = portal_client(client, f.staff("Release manager")).post(
        reverse("admin:partners_grant_add"),
        {"partner": partner.pk, "checkpoint": checkpoint.pk, "quota_bytes": "3 GB"},
    )
    assert response.status_code == 200
    assert not Grant.objects.exists()
    refused = AuditEvent.objects.get(action="grant.refused")
    assert refused.reason == "quota_invalid"
