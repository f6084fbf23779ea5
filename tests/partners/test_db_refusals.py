"""Every database rule (the models' constraints, ``unique`` fields and the triggers and
exclusion constraint of ``partners.db_rules``) refuses with a stable code, never a 500,
on PostgreSQL and on SQLite (the embedded default):
``tests/accessctl/test_embedded.py::test_database_refusals_hold_on_sqlite`` runs this
module again on SQLite.

Each rule a person's input can reach is provoked twice: through its action (which
checks first, under a lock, and refuses with the code), and by the raw write a race past
that check would make, inside ``integrity_as_action_error`` (which maps the database's
refusal, whatever the backend's wording, to the same code)."""

import re
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps
from django.db import IntegrityError, models
from django.utils import timezone
from rest_framework.test import APIClient

from partners import actions, db_rules
from partners.actions._common import DATABASE_RULES, integrity_as_action_error
from partners.errors import ActionError
from partners.models import (
    AccessToken,
    EmbargoWindow,
    Grant,
    GrantApproval,
    GrantRequest,
    Membership,
    Partner,
    PartnerContact,
    Release,
)
from tests import factories as f

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)

# Rules only the code's own writes could break: breaking one is a bug (an error with a
# traceback), not a person's input to refuse.
INTERNAL = {
    "partner_status_valid": "status is set by suspend/reinstate/terminate only",
    "grant_revoked_has_time": "revocation sets status and time together",
    "release_withdrawn_has_time": "the kill switch sets status and time together",
    "checkpoint_pulled_has_time": "pull_checkpoint sets status and time together",
    "revocation_done_has_time": "the fan-out sets status and time together",
    "revocation_has_target": "start_revocation names its target",
    "invitation_claim_by_after_creation": "the claim deadline comes from settings",
    "invitation_claimed_has_token": "claim_token makes the token and claims together",
    "notification_once_per_key": "notify.queue skips an occasion already queued",
    "checkpoint_unique_tag": "register_checkpoint is idempotent: get_or_create, locked",
    "artifact_unique_path": "a path listed twice is refused first; the checkpoint row is locked",
    "artifact_sha256_length": "validated (invalid) before the files are written",
    "partners_grant.request_id": "a request issues its grant once, under the request's lock",
    "partners_tokeninvitation.token_id": "an invitation is claimed once, under its lock",
    "partners_accesstoken.digest": "a digest of 256 random bits",
    "partners_tokeninvitation.code_digest": "a digest of 256 random bits",
    "lease_one_per_file": "the download action gets or creates the lease under its lock",
    # Leak attribution (docs/fingerprints.md).
    "fingerprint_key_one_per_partner": "made if missing under the release's row lock",
    "variant_one_per_partner": "made for files without one; a racing twin is ignored",
    "variant_ready_has_bytes": "write_variants sets status, key, size and digest together",
    "release_fingerprint_alpha_range": "validated (invalid) by the field's validators first",
}


def all_rules() -> set[str]:
    """Every rule the database enforces for the partners app, read from the code."""
    rules = set()
    for model in apps.get_app_config("partners").get_models():
        meta = model._meta
        rules |= {c.name for c in meta.constraints if c.name}
        rules |= {
            f"{meta.db_table}.{fld.column}"
            for fld in meta.concrete_fields
            if fld.unique and not fld.primary_key
        }
    statements = " ".join(db_rules.POSTGRESQL_INSTALL + db_rules.SQLITE_INSTALL)
    rules |= set(re.findall(r"ADD CONSTRAINT (\w+)", statements))
    rules |= set(re.findall(r"'(\w+): ", statements))  # the rule named in each refusal
    return rules


def test_every_database_rule_has_a_code_or_is_internal():
    rules = all_rules()
    assert set(DATABASE_RULES) | set(INTERNAL) == rules
    assert not set(DATABASE_RULES) & set(INTERNAL)
    assert {"window_no_overlap", "grant_outlives_window", "grant_window_mismatch"} <= rules


@pytest.fixture
def w():
    """A partner with a window, grant and contact on a public release, a pending early
    request with one approval on an upcoming one, and a second partner."""
    ns = SimpleNamespace()
    ns.partner, ns.other = f.partner("aurora"), f.partner("borealis")
    ns.third = f.partner("cygnus")  # no window at all
    ns.launched = f.release("v3", public_in=-DAY)
    ns.upcoming = f.release("v4", public_in=30 * DAY)
    ns.checkpoint = f.stored_checkpoint(ns.launched, {"a.bin": b"aaaa"})
    ns.spare = f.stored_checkpoint(ns.launched, {"b.bin": b"bbbb"}, tag="spare")
    ns.early = f.stored_checkpoint(ns.upcoming, {"c.bin": b"cccc"})
    ns.window = f.window(ns.launched, ns.partner)
    ns.other_window = f.window(ns.launched, ns.other)
    f.window(ns.upcoming, ns.partner)
    ns.grant = f.grant(ns.checkpoint, ns.partner)
    ns.member = f.partner_user(ns.partner)
    ns.request = actions.request_grant(
        actor=ns.member, partner=ns.partner, checkpoint=ns.early, quota_bytes=8
    )
    ns.approver = f.staff("Release manager")
    actions.approve_grant_request(actor=ns.approver, request=ns.request)
    ns.contact = f.contact(ns.partner, "ana@aurora.example")
    ns.contact2 = f.contact(ns.partner, "bo@aurora.example")
    ns.officer = f.staff("Security officer")
    ns.token, _ = actions.create_staff_token(
        actor=ns.officer, name="t", second_factor=f.backup_code(ns.officer)
    )
    return ns


def _copy(instance: models.Model, **changes: Any) -> None:
    """A second row like ``instance`` (a raw insert, no action)."""
    values = {
        fld.attname: getattr(instance, fld.attname)
        for fld in instance._meta.concrete_fields
        if not fld.primary_key
    }
    type(instance)._default_manager.create(**{**values, **changes})


def _update(instance: models.Model, **changes: Any) -> None:
    type(instance)._default_manager.filter(pk=instance.pk).update(**changes)


# rule -> (the action's code, through its action, the raw write past the action's check);
# the action's code is the rule's own except where the action refuses earlier, for a
# reason of its own (a window never moves to another partner, so neither do its grants).
Provoke = Callable[[SimpleNamespace], Any]
CASES: dict[str, tuple[str, Provoke, Provoke]] = {
    "window_no_overlap": (
        "window_overlap",
        lambda w: f.window(w.launched, w.partner),
        lambda w: _copy(w.window),
    ),
    "window_opens_before_closes": (
        "window_invalid",
        lambda w: actions.set_window(
            actor=None,
            release=w.launched,
            partner=w.partner,
            window=w.window,
            opens_at=w.window.opens_at,
            closes_at=w.window.opens_at,
        ),
        lambda w: _update(w.other_window, closes_at=w.other_window.opens_at),
    ),
    "window_embargo_after_open": (
        "window_invalid",
        lambda w: actions.set_window(
            actor=None,
            release=w.launched,
            partner=w.partner,
            window=w.window,
            opens_at=w.window.opens_at,
            closes_at=w.window.closes_at,
            embargo_lifts_at=w.window.opens_at - DAY,
        ),
        lambda w: _update(w.window, embargo_lifts_at=w.window.opens_at - DAY),
    ),
    "grant_outlives_window": (
        "grant_outlives_window",
        lambda w: actions.issue_grant(
            actor=None,
            partner=w.partner,
            checkpoint=w.spare,
            quota_bytes=8,
            expires_at=w.window.closes_at + DAY,
        ),
        lambda w: _update(w.grant, expires_at=w.window.closes_at + DAY),
    ),
    "grant_window_mismatch": (
        "window_invalid",  # a window never moves to another partner, so neither do grants
        lambda w: actions.set_window(
            actor=None,
            release=w.launched,
            partner=w.third,
            window=w.window,
            opens_at=w.window.opens_at,
            closes_at=w.window.closes_at,
        ),
        lambda w: _update(w.grant, window=w.other_window),
    ),
    "grant_one_active_per_checkpoint": (
        "grant_exists",
        lambda w: f.grant(w.checkpoint, w.partner),
        lambda w: _copy(w.grant),
    ),
    "grant_request_one_pending": (
        "request_exists",
        lambda w: actions.request_grant(
            actor=w.member, partner=w.partner, checkpoint=w.early, quota_bytes=8
        ),
        lambda w: _copy(w.request),
    ),
    "grant_approval_distinct_approvers": (
        "already_approved",
        lambda w: actions.approve_grant_request(actor=w.approver, request=w.request),
        lambda w: _copy(GrantApproval.objects.get(request=w.request)),
    ),
    "grant_expires_after_issue": (
        "grant_invalid",
        lambda w: actions.issue_grant(
            actor=None,
            partner=w.partner,
            checkpoint=w.spare,
            quota_bytes=8,
            expires_at=timezone.now() - DAY,
        ),
        lambda w: _update(w.grant, expires_at=w.grant.issued_at),
    ),
    "grant_within_quota": (
        "quota_exhausted",
        lambda w: f.authorize(w.grant, requested_bytes=w.grant.quota_bytes + 1),
        lambda w: _update(w.grant, bytes_used=w.grant.quota_bytes + 1),
    ),
    "contact_unique_email": (
        "contact_exists",
        lambda w: actions.change_contact(actor=None, contact=w.contact2, email=w.contact.email),
        lambda w: _update(w.contact2, email=w.contact.email),
    ),
    "partners_membership.user_id": (
        "member_exists",
        lambda w: actions.add_member(actor=None, partner=w.other, user=w.member),
        lambda w: _copy(w.member.partner_membership, partner_id=w.other.pk),
    ),
    "partners_partner.slug": (
        "partner_exists",
        lambda w: f.partner("aurora"),
        lambda w: _copy(w.partner),
    ),
    "partners_release.slug": (
        "release_exists",
        lambda w: f.release("v3"),
        lambda w: _copy(w.launched),
    ),
    "release_policy_valid": (
        "invalid",
        lambda w: f.release(policy="everyone"),
        lambda w: _update(w.launched, policy="everyone"),
    ),
    "release_quota_factor_range": (
        "invalid",
        lambda w: f.release(quota_factor=0),
        lambda w: _update(w.launched, quota_factor=0),
    ),
    "token_expires_after_creation": (
        "token_invalid_expiry",
        lambda w: actions.create_staff_token(
            actor=w.officer,
            name="late",
            second_factor=f.backup_code(w.officer),
            expires_at=timezone.now() - DAY,
        ),
        lambda w: _update(w.token, expires_at=w.token.created_at),
    ),
}


def test_every_mapped_rule_is_provoked():
    assert set(CASES) == set(DATABASE_RULES)


def _state() -> list[Any]:
    return [
        list(model.objects.order_by("pk").values())
        for model in (
            Partner,
            PartnerContact,
            Membership,
            Release,
            EmbargoWindow,
            Grant,
            GrantRequest,
        )
    ] + [list(GrantApproval.objects.values("pk")), AccessToken.objects.count()]


@pytest.mark.parametrize("rule", sorted(CASES))
def test_the_action_refuses_with_the_rules_code(w, rule):
    code, through_action, _ = CASES[rule]
    before = _state()
    try:
        outcome = through_action(w)
    except ActionError as refused:
        assert refused.code == code
    else:  # a download is not refused by an error: its decision says why
        assert (outcome.allowed, outcome.reason) == (False, code)
    assert _state() == before


@pytest.mark.parametrize("rule", sorted(CASES))
def test_the_database_refusal_maps_to_the_rules_code(w, rule):
    _, _, raw_write = CASES[rule]
    with pytest.raises(ActionError) as refused, integrity_as_action_error():
        raw_write(w)
    assert refused.value.code == DATABASE_RULES[rule][0]
    assert isinstance(refused.value.__cause__, IntegrityError)


def test_an_internal_rule_stays_an_error(w):
    with pytest.raises(IntegrityError), integrity_as_action_error():
        _update(w.grant, status="revoked")  # no revoked_at: a bug, not an input


def test_a_second_request_for_the_same_checkpoint_answers_409(w):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {f.token(w.member)}")
    response = client.post("/api/v1/grants/", {"checkpoint": w.early.pk}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "request_exists"
    assert GrantRequest.objects.filter(partner=w.partner, checkpoint=w.early).count() == 1


def test_a_staff_request_is_told_about_the_partner_not_you(w):
    filer = f.staff("Release manager")
    with pytest.raises(ActionError) as refused:
        actions.request_grant(actor=filer, partner=w.partner, checkpoint=w.checkpoint)
    assert refused.value.code == "grant_exists"
    assert "You" not in refused.value.message and "aurora" in refused.value.message
    with pytest.raises(ActionError) as refused:
        actions.request_grant(actor=w.member, partner=w.partner, checkpoint=w.checkpoint)
    assert refused.value.message.startswith("You already hold")
