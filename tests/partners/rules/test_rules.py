"""The rules of ``partners.rules`` other than ``decide`` (tests/partners/rules/test_decisions.py):
each a table of plain facts -> Success or the Failure's code, plus the checks that the
SQL form of the export policy and the verifier's typed failures agree with the rules."""

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest

from accessctl.signing.failures import TokenFailure
from accessctl.signing.keys import BadSignature, sign_token, verify_token
from partners import rules
from partners.models import Release
from partners.queries import allowed_releases
from tests import factories as f

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def code(result: rules.Result) -> str | None:
    return None if result else result.code  # type: ignore[union-attr]


# --- eligibility: asking for or issuing a grant --------------------------------------

ELIGIBLE = rules.GrantEligibility(
    now=NOW,
    partner_slug="acme",
    partner_status="active",
    partner_jurisdiction="US",
    nda_expires_at=NOW + HOUR,
    release_slug="v1",
    release_status="launched",
    release_policy="deny",
    release_jurisdictions=frozenset({"KP"}),
    checkpoint_label="v1:step-1",
    checkpoint_status="available",
    has_window=True,
)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, None),
        ({"partner_status": "suspended"}, "partner_suspended"),
        ({"partner_status": "terminated"}, "partner_suspended"),
        ({"nda_expires_at": NOW}, "nda_expired"),
        ({"partner_jurisdiction": "KP"}, "jurisdiction_blocked"),
        ({"release_policy": "allow"}, "jurisdiction_blocked"),
        ({"release_status": "withdrawn"}, "release_withdrawn"),
        ({"checkpoint_status": "pulled"}, "checkpoint_pulled"),
        ({"has_window": False}, "no_window"),
        # The first rule that applies wins: the partner before the release.
        ({"partner_status": "suspended", "release_status": "withdrawn"}, "partner_suspended"),
        ({"release_status": "withdrawn", "has_window": False}, "release_withdrawn"),
    ],
)
def test_grant_eligibility(change, expected):
    assert code(rules.grant_eligible(dataclasses.replace(ELIGIBLE, **change))) == expected


@pytest.mark.parametrize(
    ("quota", "expires_in", "expected"),
    [
        (1, HOUR, None),
        (0, HOUR, "quota_invalid"),
        (-1, HOUR, "quota_invalid"),
        (rules.MAX_QUOTA_BYTES + 1, HOUR, "quota_invalid"),
        (10, 3 * HOUR, "grant_outlives_window"),
        (10, timedelta(0), "grant_invalid"),
        (10, -HOUR, "grant_invalid"),
    ],
)
def test_grant_terms(quota, expires_in, expected):
    result = rules.grant_terms(
        now=NOW, quota_bytes=quota, expires_at=NOW + expires_in, window_closes_at=NOW + 2 * HOUR
    )
    assert code(result) == expected


@pytest.mark.parametrize(
    ("quota", "expected"), [(100, None), (101, "quota_too_large"), (0, "quota_invalid")]
)
def test_quota_within_limit(quota, expected):
    result = rules.quota_within_limit(
        quota_bytes=quota, limit=100, quota_factor=4, release_slug="v1"
    )
    assert code(result) == expected
    if expected:
        assert "quota_bytes" in result.fields  # type: ignore[union-attr]


# --- windows --------------------------------------------------------------------------

WINDOW = rules.WindowChange(
    release_slug="v1",
    release_withdrawn=False,
    release_policy="deny",
    release_jurisdictions=frozenset(),
    partner_jurisdiction="US",
    opens_at=NOW,
    closes_at=NOW + HOUR,
    embargo_lifts_at=NOW,
    overlaps=False,
    grants_after_close=False,
)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, None),
        ({"release_withdrawn": True}, "release_withdrawn"),
        ({"closes_at": NOW}, "window_invalid"),
        ({"embargo_lifts_at": NOW - HOUR}, "window_invalid"),
        ({"release_policy": "allow"}, "jurisdiction_blocked"),
        ({"overlaps": True}, "window_overlap"),
        ({"grants_after_close": True}, "window_invalid"),
    ],
)
def test_window_valid(change, expected):
    assert code(rules.window_valid(dataclasses.replace(WINDOW, **change))) == expected


@pytest.mark.parametrize(
    ("opens", "closes", "expected"),
    [
        (NOW - HOUR, NOW + HOUR, None),
        (NOW, NOW + HOUR, None),
        (NOW + HOUR, NOW + 2 * HOUR, "window_not_open"),
        (NOW - 2 * HOUR, NOW, "window_closed"),
        (None, None, "no_window"),
    ],
)
def test_window_access(opens, closes, expected):
    result = rules.window_access(now=NOW, release_slug="v1", opens_at=opens, closes_at=closes)
    assert code(result) == expected
    if expected == "window_not_open":
        assert result.extra == {"opens_at": opens.isoformat()}  # type: ignore[union-attr]


# --- approvals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "required", "needed"), [(2, 0, 2), (2, 3, 3), (0, 0, 1), (3, 2, 3)]
)
def test_approvals_needed_is_the_higher_of_filed_and_current(settings, setting, required, needed):
    settings.ACCESSCTL_EARLY_ACCESS_APPROVALS = setting
    assert rules.approvals_needed(required) == needed


@pytest.mark.parametrize(
    ("public_in", "has_request", "given", "expected"),
    [
        (-HOUR, False, 0, None),  # public: no approvals needed
        (HOUR, False, 0, "early_access_unapproved"),
        (HOUR, True, 1, "early_access_unapproved"),
        (HOUR, True, 2, None),
    ],
)
def test_early_access_approved(settings, public_in, has_request, given, expected):
    settings.ACCESSCTL_EARLY_ACCESS_APPROVALS = 2
    result = rules.early_access_approved(
        now=NOW,
        public_release_at=NOW + public_in,
        release_slug="v1",
        has_request=has_request,
        approvals_given=given,
        approvals_required=2,
    )
    assert code(result) == expected


@pytest.mark.parametrize("setting", [2, 3])
def test_refusal_texts_name_the_configured_number(settings, setting):
    settings.ACCESSCTL_EARLY_ACCESS_APPROVALS = setting
    direct = rules.direct_issue(now=NOW, public_release_at=NOW + HOUR, release_slug="v1")
    assert code(direct) == "approval_required"
    assert "file a grant request instead" in direct.message  # type: ignore[union-attr]
    assert f"approved by {setting} staff members" in direct.message  # type: ignore[union-attr]
    assert rules.direct_issue(now=NOW, public_release_at=NOW, release_slug="v1")


@pytest.mark.parametrize(
    ("requester", "before", "expected"),
    [(False, False, None), (True, False, "self_approval"), (False, True, "already_approved")],
)
def test_may_approve(requester, before, expected):
    assert code(rules.may_approve(is_requester=requester, approved_before=before)) == expected


# --- grant tokens ---------------------------------------------------------------------

TOKEN = rules.GrantTokenFacts(
    in_query=False,
    presented=True,
    failure=None,
    claims={"grant": 1, "partner": 2, "checkpoint": 3},
    grant_id=1,
    partner_id=2,
    checkpoint_id=3,
)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, None),
        ({"in_query": True}, "grant_token_in_query"),
        ({"presented": False}, "grant_token_missing"),
        ({"failure": TokenFailure.EXPIRED}, "grant_expired"),
        ({"failure": TokenFailure.NOT_YET_VALID}, "window_not_open"),
        ({"failure": TokenFailure.INVALID}, "grant_token_invalid"),
        ({"claims": {"grant": 1, "partner": 9, "checkpoint": 3}}, "grant_token_invalid"),
        ({"claims": {}}, "grant_token_invalid"),
        ({"grant_id": 4}, "grant_token_invalid"),
    ],
)
def test_grant_token_valid(change, expected):
    assert code(rules.grant_token_valid(dataclasses.replace(TOKEN, **change))) == expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("nbf", "exp", "failure"),
    [
        (-3600, -60, TokenFailure.EXPIRED),
        (3600, 7200, TokenFailure.NOT_YET_VALID),
    ],
)
def test_verifier_says_why_by_type(nbf, exp, failure):
    now = int(time.time())
    token = sign_token({"grant": 1, "nbf": now + nbf, "exp": now + exp})
    with pytest.raises(BadSignature) as raised:
        verify_token(token)
    assert raised.value.failure is failure


@pytest.mark.django_db
def test_verifier_calls_a_forged_token_invalid():
    now = int(time.time())
    token = sign_token({"grant": 1, "nbf": now, "exp": now + 60})
    with pytest.raises(BadSignature) as raised:
        verify_token(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
    assert raised.value.failure is TokenFailure.INVALID


# --- listing visibility: the SQL form and the Python form agree -----------------------


@pytest.mark.django_db
def test_export_policy_sql_agrees_with_the_rule():
    releases = [
        f.release(policy=policy, policy_jurisdictions=listed)
        for policy in ("allow", "deny")
        for listed in ([], ["US"], ["DE", "US"], ["US", "FR"], ["DE"])
    ]
    for jurisdiction in ("US", "DE", "FR", "KP"):
        partner = f.partner(jurisdiction=jurisdiction)
        visible = set(allowed_releases(partner).values_list("pk", flat=True))
        for release in Release.objects.filter(pk__in=[r.pk for r in releases]):
            listed = frozenset(str(c) for c in release.policy_jurisdictions)
            expected = rules.jurisdiction_allowed(release.policy, listed, jurisdiction)
            assert (release.pk in visible) == expected, (release.policy, listed, jurisdiction)
