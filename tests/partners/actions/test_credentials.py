"""Credentials act only for their owner (issue #11).

Staff tokens are made by their owner, with a fresh second factor; partner members' tokens
are asked for by staff and claimed by the member alone; holders rotate their own; every
caller kind is held to its token's restrictions; a departed member's tokens stop working.
"""

import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import URLPattern, reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from accessctl.audit.models import AuditEvent
from partners import actions, tokens
from partners.api import urls as api_urls
from partners.authority import Operation, may
from partners.decisions import Reason, StaffCallerFacts, decide_staff_caller
from partners.errors import ActionError, ActionForbidden
from partners.models import AccessToken, Membership, TokenInvitation
from tests import factories as f
from tests.accessctl.test_portal import portal_client

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)
NOW = timezone.now()


def current_code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def api(secret: str | None = None, address: str = "127.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    if secret:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def all_audit_text() -> str:
    return json.dumps(list(AuditEvent.objects.values("changes", "target_label", "reason")))


# Staff tokens: for oneself, after a second factor.


def test_nobody_may_make_a_staff_token_for_someone_else():
    manager, admin = f.staff("Partner manager"), f.superuser()
    assert may(manager, Operation.TOKEN_CREATE_STAFF, manager)
    assert not may(manager, Operation.TOKEN_CREATE_STAFF, admin)
    assert not may(admin, Operation.TOKEN_CREATE_STAFF, manager)
    with pytest.raises(ActionError) as exc:
        actions.invite_member_token(actor=manager, user=admin, name="x", scopes=["read"])
    assert exc.value.code == "token_invalid_user"
    assert not AccessToken.objects.exists() and not TokenInvitation.objects.exists()


def test_the_old_portal_form_cannot_make_a_token_for_the_superuser(client):
    """The reported attack: a Partner manager posts the token form naming the superuser."""
    admin = f.superuser()
    manager = f.staff("Partner manager")
    c = portal_client(client, manager)
    response = c.post(
        reverse("admin:partners_accesstoken_add"),
        {"user": admin.pk, "name": "x", "scopes": ["staff"], "allowed_networks": "[]"},
    )
    assert response.status_code == 200  # the form again: no code was given
    assert not AccessToken.objects.exists()
    # Even with the manager's own valid code, the token is the manager's, not the admin's.
    device = TOTPDevice.objects.get(user=manager)
    response = c.post(
        reverse("admin:partners_accesstoken_add"),
        {"user": admin.pk, "name": "x", "second_factor": current_code(device)},
    )
    assert response.status_code == 200
    assert list(AccessToken.objects.values_list("user", flat=True)) == [manager.pk]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("", "second_factor_required"),
        ("000000", "second_factor_invalid"),
        ("nope", "second_factor_invalid"),
    ],
)
def test_staff_token_needs_a_current_second_factor(code, expected):
    user = f.staff("Release manager")
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    if code == "000000" and current_code(device) == code:
        code = "000001"
    with pytest.raises(ActionError) as exc:
        actions.create_staff_token(actor=user, name="ci", second_factor=code)
    assert exc.value.code == expected
    assert not AccessToken.objects.exists()
    assert not AuditEvent.objects.filter(action="token.created").exists()


def test_staff_without_a_device_cannot_make_a_token():
    with pytest.raises(ActionError) as exc:
        actions.create_staff_token(actor=f.staff("Release manager"), name="ci", second_factor="1")
    assert exc.value.code == "second_factor_required"


def test_a_totp_code_makes_one_token_and_cannot_be_replayed():
    user = f.staff("Release manager")
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    code = current_code(device)
    token, secret = actions.create_staff_token(actor=user, name="ci", second_factor=code)
    assert token.user == user and token.partner is None and token.scopes == ["staff"]
    assert token.created_by == user and tokens.is_well_formed(secret)
    with pytest.raises(ActionError) as exc:
        actions.create_staff_token(actor=user, name="again", second_factor=code)
    assert exc.value.code == "second_factor_invalid"
    assert AccessToken.objects.count() == 1


def test_a_backup_code_works_once():
    user = f.staff("Security officer")
    code = f.backup_code(user)
    actions.create_staff_token(actor=user, name="ir", second_factor=code)
    with pytest.raises(ActionError):
        actions.create_staff_token(actor=user, name="ir2", second_factor=code)


def test_failed_codes_count_against_the_device_even_though_nothing_is_made():
    """django-otp slows guessing down per device; the refusal rolls the action back, but
    the failure is still counted, so even the right code is refused straight after."""
    user = f.staff("Release manager")
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    wrong = "111111" if current_code(device) != "111111" else "222222"
    with pytest.raises(ActionError):
        actions.create_staff_token(actor=user, name="ci", second_factor=wrong)
    device.refresh_from_db()
    assert device.throttling_failure_count == 1
    with pytest.raises(ActionError) as exc:
        actions.create_staff_token(actor=user, name="ci", second_factor=current_code(device))
    assert exc.value.code == "second_factor_invalid"
    assert not AccessToken.objects.exists()


def test_partners_and_the_system_cannot_make_staff_tokens():
    member = f.partner_user(f.partner())
    with pytest.raises(ActionForbidden):
        actions.create_staff_token(actor=member, name="x", second_factor="123456")
    with pytest.raises(ActionError) as exc:
        actions.create_staff_token(actor=None, name="x", second_factor="123456")
    assert exc.value.code == "token_invalid_user"


def test_staff_token_in_the_portal_is_shown_once_to_its_owner(client):
    user = f.staff("Release manager")
    c = portal_client(client, user)
    device = TOTPDevice.objects.get(user=user)
    url = reverse("admin:partners_accesstoken_add")
    response = c.post(
        url, {"name": "ci", "second_factor": current_code(device), "allowed_networks": "[]"}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = re.search(
        r'id="token-secret" readonly size="50" value="([^"]+)"', response.content.decode()
    )[1]
    token = AccessToken.objects.get()
    assert token.user == user and token.digest == tokens.digest(secret, token.pepper_id)
    assert secret not in str(c.session.items()) and secret not in all_audit_text()
    wrong = c.post(url, {"name": "ci", "second_factor": "12345678", "allowed_networks": "[]"})
    assert wrong.status_code == 200 and "not valid" in wrong.content.decode()
    assert AccessToken.objects.count() == 1


# Partner members' tokens: requested by staff, claimed by the member alone.


def invite_in_portal(client, member, **extra):
    c = portal_client(client, f.staff("Partner manager"))
    response = c.post(
        reverse("admin:partners_tokeninvitation_add"),
        {
            "user": member.pk,
            "name": "ci",
            "scopes": ["read", "download"],
            "expires_at": "",
            "allowed_networks": '["127.0.0.0/8"]',
            **extra,
        },
        follow=True,
    )
    assert response.status_code == 200
    return c, response


def test_staff_invite_and_only_the_member_sees_the_secret(
    client, django_capture_on_commit_callbacks
):
    partner = f.partner("aurora-gpu")
    member = f.partner_user(partner)
    with django_capture_on_commit_callbacks(execute=True):
        c, response = invite_in_portal(client, member)
    staff_pages = response.content.decode()
    assert not AccessToken.objects.exists()  # nothing exists until the member claims it
    invitation = TokenInvitation.objects.get()
    assert invitation.user == member and invitation.partner == partner

    [message] = mail.outbox
    assert message.to == [member.email]
    code = f.claim_code(member)
    assert "/tokens/claim#" in message.body and "?" not in message.body.split("claim")[1][:2]
    assert code not in staff_pages and invitation.code_digest != code
    assert code not in all_audit_text()

    claim = reverse("token-claim")
    page = APIClient().get(claim)
    assert page.status_code == 200 and "partners/claim.js" in page.content.decode()
    assert "<script>" not in page.content.decode()  # own-origin script file only (CSP)
    assert "script-src 'self'" in page["Content-Security-Policy"]
    # As Chromium posts it from a no-referrer page: no CSRF cookie, ``Origin: null``.
    member_browser = APIClient(enforce_csrf_checks=True)
    shown = member_browser.post(claim, {"code": code}, HTTP_ORIGIN="null")
    assert shown.status_code == 200 and "no-store" in shown["Cache-Control"]
    secret = re.search(
        r'id="token-secret" readonly size="50" value="([^"]+)"', shown.content.decode()
    )[1]
    token = AccessToken.objects.get()
    assert token.user == member and token.partner == partner and token.created_by == member
    assert token.scopes == ["download", "read"] and token.allowed_networks == ["127.0.0.0/8"]
    assert token.digest == tokens.digest(secret, token.pepper_id)
    assert api(secret).get("/api/v1/me").status_code == 200
    # The staff member who asked sees the token's prefix in the list, never its secret.
    listing = c.get(reverse("admin:partners_tokeninvitation_changelist")).content.decode()
    assert secret not in listing and code not in listing
    assert secret not in all_audit_text()
    events = dict(AuditEvent.objects.values_list("action", "actor"))
    assert events["token.invited"] != member.pk and events["token.claimed"] == member.pk


@pytest.mark.parametrize("case", ["used", "expired", "cancelled", "unknown", "member left"])
def test_claim_refusals(case, settings):
    partner = f.partner()
    member = f.partner_user(partner)
    code = f.invite(member)
    expected = {"used": "invitation_used", "expired": "invitation_expired"}.get(case)
    if case == "used":
        actions.claim_token(code=code)
    elif case == "expired":
        TokenInvitation.objects.update(
            created_at=timezone.now() - 2 * DAY, claim_by=timezone.now() - DAY
        )
    elif case == "cancelled":
        actions.remove_member(actor=None, membership=member.partner_membership)
        expected = "invitation_cancelled"
    elif case == "unknown":
        code, expected = code[:-2] + "xx", "invitation_invalid"
    else:  # membership gone without the action (a missed cancellation)
        Membership.objects.filter(user=member).delete()
        expected = "token_invalid_user"
    before = AccessToken.objects.count()
    with pytest.raises(ActionError) as exc:
        actions.claim_token(code=code)
    assert exc.value.code == expected
    assert AccessToken.objects.count() == before
    page = APIClient().post(reverse("token-claim"), {"code": code})
    assert page.status_code == 400 and f'data-code="{expected}"' in page.content.decode()


@pytest.mark.parametrize("code", ["", "   ", "a" * 300, "acx_abc\x00def"], ids=repr)
def test_a_claim_code_the_form_refuses_is_recorded_like_any_unknown_one(code):
    """Empty, over-long or with a NUL: the form is shown again, and the refusal is one
    ``token.refused`` event (``invitation_invalid``, as for a bogus code), without the code."""
    f.invite(f.partner_user(f.partner()))
    before = AuditEvent.objects.count()
    page = APIClient().post(reverse("token-claim"), {"code": code})
    assert page.status_code == 400 and 'name="code"' in page.content.decode()
    new = list(AuditEvent.objects.order_by("pk")[before:])
    assert [(e.action, e.reason) for e in new] == [("token.refused", "invitation_invalid")]
    if code.strip():
        assert code not in all_audit_text()
    assert not AccessToken.objects.exists()


def test_only_partner_managers_invite_and_only_members(client):
    member = f.partner_user(f.partner())
    for role in ("Release manager", "Security officer", "Compliance"):
        with pytest.raises(ActionForbidden):
            actions.invite_member_token(actor=f.staff(role), user=member, name="x", scopes=["read"])
    stranger = f.UserFactory()
    with pytest.raises(ActionError) as exc:
        actions.invite_member_token(
            actor=f.staff("Partner manager"), user=stranger, name="x", scopes=["read"]
        )
    assert exc.value.code == "token_invalid_user"
    nomail = f.partner_user(f.partner(), email="")
    with pytest.raises(ActionError) as exc:
        actions.invite_member_token(
            actor=f.staff("Partner manager"), user=nomail, name="x", scopes=["read"]
        )
    assert exc.value.code == "member_email_missing"


def test_the_impersonation_chain_is_closed():
    """Issue #11: a Partner manager cannot come to hold any credential that acts for a
    Release manager, so cannot approve early access (alone or twice)."""
    manager = f.staff("Partner manager")
    approvers = [f.staff("Release manager"), f.staff("Release manager"), f.superuser()]
    for approver in approvers:
        with pytest.raises(ActionError):
            actions.invite_member_token(actor=manager, user=approver, name="x", scopes=["read"])
        assert not may(manager, Operation.TOKEN_CREATE_STAFF, approver)
        assert not may(manager, Operation.TOKEN_ROTATE, AccessToken(user=approver))
    assert not AccessToken.objects.exclude(user=manager).exists()


# Rotation: the holder, with the token.


def test_partner_rotates_its_token():
    partner = f.partner("aurora-gpu")
    member = f.partner_user(partner)
    old_secret = f.token(member, scopes=["download"], allowed_networks=["127.0.0.0/8"])
    old = AccessToken.objects.get()
    response = api(old_secret).post("/api/v1/tokens/rotate")
    assert response.status_code == 201, response.content
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    new = AccessToken.objects.get(prefix=body["token"][:12])
    assert body["replaces"] == old.prefix and body["prefix"] == new.prefix
    assert (new.user, new.partner, new.scopes, new.allowed_networks, new.expires_at, new.name) == (
        old.user,
        old.partner,
        old.scopes,
        old.allowed_networks,
        old.expires_at,
        old.name,
    )
    refused = api(old_secret).get("/api/v1/grants/")
    assert refused.status_code == 401 and refused.json()["code"] == "token_revoked"
    assert api(body["token"]).post("/api/v1/tokens/rotate").status_code == 201
    event = AuditEvent.objects.get(action="token.rotated", target_id=str(new.pk))
    assert event.actor == member and old_secret not in all_audit_text()


def test_nobody_rotates_another_persons_token():
    member = f.partner_user(f.partner())
    f.token(member)
    token = AccessToken.objects.get()
    for actor in (f.partner_user(token.partner), f.superuser(), f.staff("Partner manager")):
        with pytest.raises(ActionForbidden):
            actions.rotate_token(actor=actor, token=token)


def test_a_staff_token_rotates_itself_at_the_same_endpoint():
    """Any token may rotate itself (docs/api.md); the owner stays the owner."""
    officer = f.staff("Release manager")
    secret = f.token(officer)
    response = api(secret).post("/api/v1/tokens/rotate")
    assert response.status_code == 201
    assert AccessToken.objects.get(prefix=response.json()["prefix"]).user == officer


# Restrictions hold for every caller kind: a generated matrix over every staff endpoint.


def _staff_routes() -> list[tuple[str, str]]:
    routes = []
    for pattern in api_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        route = str(pattern.pattern)
        if not route.startswith("staff/"):
            continue
        path = "/api/v1/" + re.sub(
            r"<(?:(\w+):)?(\w+)>", lambda m: "x" if m[1] in ("slug", "str", None) else "1", route
        )
        view = pattern.callback.view_class  # type: ignore[attr-defined]
        for method in ("get", "post", "patch", "put", "delete"):
            if hasattr(view, method):
                routes.append((method, path))
    return routes


STAFF_ROUTES = _staff_routes()


def _staff(**changes):
    user = f.staff("Security officer")
    secret = f.token(user, allowed_networks=changes.pop("networks", []))
    get_user_model().objects.filter(pk=user.pk).update(**changes)
    return secret


def _expired():
    secret = _staff()
    past = timezone.now() - DAY
    AccessToken.objects.filter(prefix=secret[:12]).update(created_at=past - DAY, expires_at=past)
    return secret


def _revoked():
    secret = _staff()
    actions.revoke_token(actor=None, token=AccessToken.objects.get(prefix=secret[:12]), reason="x")
    return secret


STAFF_REFUSALS = {
    "token address range": (
        lambda: _staff(networks=["198.51.100.0/24"]),
        403,
        "address_not_allowed",
    ),
    "owner no longer staff": (lambda: _staff(is_staff=False), 403, "staff_access_ended"),
    "owner inactive": (lambda: _staff(is_active=False), 401, "token_invalid"),
    "expired": (_expired, 401, "token_expired"),
    "revoked": (_revoked, 401, "token_revoked"),
    "partner token": (lambda: f.token(f.partner_user(f.partner())), 403, "staff_token_required"),
}


@pytest.mark.parametrize("route", STAFF_ROUTES, ids=[f"{m} {p}" for m, p in STAFF_ROUTES])
@pytest.mark.parametrize("refusal", sorted(STAFF_REFUSALS))
def test_staff_callers_are_held_to_their_restrictions(route, refusal):
    make, status, code = STAFF_REFUSALS[refusal]
    secret = make()
    method, path = route
    before = AuditEvent.objects.count()
    response = getattr(api(secret, address="203.0.113.9"), method)(path, {}, format="json")
    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    written = list(AuditEvent.objects.order_by("id").values_list("action", "reason")[before:])
    if status == 403 and code != "staff_token_required":
        assert [w for w in written if w[0] != "token.used"] == [("api.denied", code)]


def test_a_staff_token_from_its_allowed_range_works():
    secret = _staff(networks=["203.0.113.0/24"])
    response = api(secret, address="203.0.113.9").get("/api/v1/staff/revocations/999")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"token_revoked": True}, Reason.TOKEN_REVOKED),
        ({"token_expires_at": NOW}, Reason.TOKEN_EXPIRED),
        ({"user_staff": False}, Reason.STAFF_ACCESS_ENDED),
        ({"user_active": False}, Reason.STAFF_ACCESS_ENDED),
        ({"token_networks": ("198.51.100.0/24",)}, Reason.ADDRESS_NOT_ALLOWED),
        (
            {"token_networks": ("198.51.100.0/24",), "client_address": None},
            Reason.ADDRESS_NOT_ALLOWED,
        ),
        ({}, None),
        ({"token_networks": ("203.0.113.0/24",), "token_expires_at": None}, None),
    ],
)
def test_staff_caller_rules(change, reason):
    facts = StaffCallerFacts(
        now=NOW,
        client_address="203.0.113.7",
        token_expires_at=NOW + DAY,
        token_revoked=False,
        token_networks=(),
        user_active=True,
        user_staff=True,
    )
    import dataclasses

    decision = decide_staff_caller(dataclasses.replace(facts, **change))
    assert decision.reason == reason and decision.allowed == (reason is None)


# Stale membership.


@pytest.fixture
def member_world():
    partner = f.partner("aurora-gpu")
    release = f.release("v3", public_in=-DAY)
    checkpoint = f.stored_checkpoint(release, {"config.json": b"{}"})
    f.window(release, partner)
    grant = actions.issue_grant(actor=None, partner=partner, checkpoint=checkpoint, quota_bytes=99)
    member = f.partner_user(partner)
    return partner, grant, member


def _calls(secret, grant):
    return {
        "me": api(secret).get("/api/v1/me"),
        "grants": api(secret).get("/api/v1/grants/"),
        "download": api(secret).get(f"/api/v1/grants/{grant.pk}/files/config.json"),
    }


def test_removing_a_member_revokes_their_tokens_and_invitations_at_once(member_world):
    _partner, grant, member = member_world
    secret = f.token(member)
    f.invite(member)
    assert all(r.status_code != 401 for r in _calls(secret, grant).values())
    prefixes = actions.remove_member(
        actor=f.staff("Partner manager"), membership=member.partner_membership, reason="left"
    )
    assert prefixes == [secret[:12]]
    assert TokenInvitation.objects.get(claimed_at=None).cancelled_at is not None
    for name, response in _calls(secret, grant).items():
        assert response.status_code == 401, name
        assert response.json()["code"] == "token_revoked"
    removed = AuditEvent.objects.get(action="member.removed")
    assert removed.changes["tokens_revoked"] == [secret[:12]]


@pytest.mark.parametrize("how", ["membership row gone", "moved to another partner"])
def test_a_token_of_someone_no_longer_a_member_is_refused(member_world, how):
    """Defence in depth: even if a revocation were missed, authentication checks that the
    token's user still acts for the token's partner."""
    _partner, grant, member = member_world
    secret = f.token(member)
    Membership.objects.filter(user=member).delete()  # behind the actions' back, on purpose
    if how == "moved to another partner":
        actions.add_member(actor=None, partner=f.partner(), user=member)
    for name, response in _calls(secret, grant).items():
        assert response.status_code == 401, name
        assert response.json()["code"] == "token_membership_ended"
    refused = AuditEvent.objects.filter(reason="token_membership_ended")
    # The download's refusal is a download.denied naming the grant (and the token prefix).
    assert sorted(refused.values_list("action", flat=True)) == [
        "download.denied",
        "token.rejected",
        "token.rejected",
    ]
    denied = refused.get(action="download.denied")
    assert denied.target_id == str(grant.pk) and denied.changes["prefix"] == secret[:12]


@pytest.mark.parametrize("flag", ["is_staff", "is_superuser"])
def test_a_partner_token_of_someone_made_staff_is_refused(member_world, flag):
    """A partner token works only while its user is a non-staff member of its partner:
    made staff behind the actions' back (the account action refuses it, see
    tests/accessctl/test_accounts.py), the token stops at once."""
    _partner, grant, member = member_world
    secret = f.token(member)
    assert api(secret).get("/api/v1/me").status_code == 200
    type(member).objects.filter(pk=member.pk).update(**{flag: True})
    for name, response in _calls(secret, grant).items():
        assert response.status_code == 401, name
        assert response.json()["code"] == "token_membership_ended"


@pytest.mark.parametrize(
    ("who", "code"), [("staff", "member_is_staff"), ("other partner's", "member_exists")]
)
def test_add_member_refuses_staff_and_other_partners_members(who, code):
    partner = f.partner()
    user = f.staff("Compliance") if who == "staff" else f.partner_user(f.partner())
    with pytest.raises(ActionError) as exc:
        actions.add_member(actor=None, partner=partner, user=user)
    assert exc.value.code == code


def test_a_suspended_partners_members_are_not_offered_a_token_and_refused_one(client):
    active = f.partner_user(f.partner("aurora-gpu"))
    held_partner = f.partner("tessel-accel")
    held = f.partner_user(held_partner)
    actions.suspend_partner(actor=None, partner=held_partner, reason="audit")
    c = portal_client(client, f.staff("Partner manager"))
    form = c.get(reverse("admin:partners_tokeninvitation_add")).content.decode()
    offered = form.split('name="user"')[1].split("</select>")[0]
    assert f'value="{active.pk}"' in offered and f'value="{held.pk}"' not in offered
    # Posted anyway (a stale form): refused by the action's rule, and recorded.
    _, response = invite_in_portal(Client(), held)
    assert "Select a valid choice" in response.content.decode()
    assert not TokenInvitation.objects.exists()
    with pytest.raises(ActionError) as caught:
        actions.invite_member_token(actor=None, user=held, name="ci", scopes=["read"])
    assert caught.value.code == "partner_suspended"
    assert AuditEvent.objects.filter(action="token.refused", reason="partner_suspended").exists()
