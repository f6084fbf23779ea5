"""Every rule of ``decide``, one row each, plus the order in which they apply."""

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from partners.decisions import Decision, DownloadFacts, Reason, decide

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

GOOD = DownloadFacts(
    now=NOW,
    client_address="203.0.113.7",
    token_expires_at=NOW + HOUR,
    token_revoked=False,
    token_networks=(),
    partner_status="active",
    partner_jurisdiction="US",
    partner_networks=(),
    nda_expires_at=NOW + 100 * HOUR,
    release_status="launched",
    release_policy="deny",
    release_jurisdictions=frozenset({"KP"}),
    checkpoint_status="available",
    window_opens_at=NOW - HOUR,
    window_closes_at=NOW + 10 * HOUR,
    grant_status="active",
    grant_expires_at=NOW + 5 * HOUR,
    quota_bytes=1000,
    bytes_used=400,
    requested_bytes=600,
)


def test_all_rules_pass_allows():
    assert decide(GOOD) == Decision(allowed=True)


def test_token_without_expiry_allows():
    assert decide(dataclasses.replace(GOOD, token_expires_at=None)).allowed


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"token_revoked": True}, Reason.TOKEN_REVOKED),
        ({"token_expires_at": NOW}, Reason.TOKEN_EXPIRED),
        ({"token_expires_at": NOW - HOUR}, Reason.TOKEN_EXPIRED),
        ({"partner_status": "suspended"}, Reason.PARTNER_SUSPENDED),
        ({"partner_status": "terminated"}, Reason.PARTNER_TERMINATED),
        ({"partner_status": "unknown"}, Reason.PARTNER_SUSPENDED),
        ({"nda_expires_at": NOW}, Reason.NDA_EXPIRED),
        ({"partner_jurisdiction": "KP"}, Reason.JURISDICTION_BLOCKED),
        (
            {"release_policy": "allow", "release_jurisdictions": frozenset({"DE"})},
            Reason.JURISDICTION_BLOCKED,
        ),
        ({"partner_networks": ("198.51.100.0/24",)}, Reason.ADDRESS_NOT_ALLOWED),
        ({"token_networks": ("198.51.100.0/24",)}, Reason.ADDRESS_NOT_ALLOWED),
        (
            {"partner_networks": ("203.0.113.0/24",), "client_address": None},
            Reason.ADDRESS_NOT_ALLOWED,
        ),
        (
            {"partner_networks": ("203.0.113.0/24",), "client_address": "not-an-ip"},
            Reason.ADDRESS_NOT_ALLOWED,
        ),
        ({"release_status": "withdrawn"}, Reason.RELEASE_WITHDRAWN),
        ({"checkpoint_status": "pulled"}, Reason.CHECKPOINT_PULLED),
        ({"window_opens_at": NOW + HOUR}, Reason.WINDOW_NOT_OPEN),
        ({"window_closes_at": NOW}, Reason.WINDOW_CLOSED),
        ({"grant_status": "revoked"}, Reason.GRANT_REVOKED),
        ({"grant_status": "expired"}, Reason.GRANT_EXPIRED),
        ({"grant_expires_at": NOW}, Reason.GRANT_EXPIRED),
        ({"grant_status": "exhausted"}, Reason.QUOTA_EXHAUSTED),
        ({"requested_bytes": 601}, Reason.QUOTA_EXHAUSTED),
        ({"bytes_used": 1000, "requested_bytes": 1}, Reason.QUOTA_EXHAUSTED),
        ({"grant_status": "something-new"}, Reason.GRANT_REVOKED),
    ],
)
def test_each_rule_denies_with_its_reason(change, reason):
    decision = decide(dataclasses.replace(GOOD, **change))
    assert decision == Decision(allowed=False, reason=reason)
    assert not decision


@pytest.mark.parametrize(
    "change",
    [
        {"partner_networks": ("203.0.113.0/24",)},
        {"token_networks": ("2001:db8::/32", "203.0.113.7/32")},
        {"release_policy": "allow", "release_jurisdictions": frozenset({"US"})},
        {"requested_bytes": 600, "bytes_used": 400},
        {"window_opens_at": NOW},
    ],
)
def test_boundaries_that_still_allow(change):
    assert decide(dataclasses.replace(GOOD, **change)).allowed


def test_the_most_fundamental_reason_wins():
    everything_wrong = dataclasses.replace(
        GOOD,
        token_revoked=True,
        partner_status="suspended",
        checkpoint_status="pulled",
        grant_status="revoked",
        requested_bytes=10**9,
    )
    assert decide(everything_wrong).reason == Reason.TOKEN_REVOKED
    assert (
        decide(dataclasses.replace(everything_wrong, token_revoked=False)).reason
        == Reason.PARTNER_SUSPENDED
    )


def test_every_reason_code_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "decisions.md").read_text()
    missing = [reason.value for reason in Reason if f"`{reason.value}`" not in doc]
    assert missing == []


def test_caller_rules_apply_alone():
    from partners.decisions import CallerFacts, decide_caller

    caller = CallerFacts(
        now=NOW,
        client_address="203.0.113.7",
        token_expires_at=NOW + HOUR,
        token_revoked=False,
        token_networks=(),
        partner_status="active",
        partner_networks=("203.0.113.0/24",),
        nda_expires_at=NOW + HOUR,
    )
    assert decide_caller(caller).allowed
    assert (
        decide_caller(dataclasses.replace(caller, nda_expires_at=NOW)).reason == Reason.NDA_EXPIRED
    )
    assert (
        decide_caller(dataclasses.replace(caller, client_address="198.51.100.1")).reason
        == Reason.ADDRESS_NOT_ALLOWED
    )


def test_every_reason_has_a_message_for_the_partner():
    from partners.decisions import DETAIL

    assert set(DETAIL) == set(Reason)
