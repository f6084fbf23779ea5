"""Staff accounts: nobody reads another person's second factor, every change is audited.

The red team's chain (issue #11): a superuser read another staff member's backup codes
and TOTP key in the portal, set their password with no audit event, signed in as them and
approved early access as the second approver. It now fails at its first step, and every
later step is refused or visible.
"""

import base64
import re
from io import StringIO
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import NoReverseMatch, URLPattern, reverse
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accessctl.audit.models import AuditEvent
from accessctl.sessions.models import UserSession as Session
from partners import actions
from partners.actions.tokens import verify_second_factor
from partners.errors import ActionError, ActionForbidden
from partners.models import AccessToken
from tests import factories as f
from tests.accessctl.test_portal import PASSWORD, login, portal_client

pytestmark = pytest.mark.django_db

SECRET_APPS = ("auth", "otp_totp", "otp_static", "axes")


def code_of(key_hex: str) -> str:
    return f"{totp(bytes.fromhex(key_hex), step=30, t0=0, digits=6):06d}"


@pytest.fixture
def victim():
    """A Release manager with an authenticator app, backup codes, a signed-in session and
    a staff token; and what a thief would want of them."""
    user = f.staff("Release manager", username="rm-alice")
    app = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    backup = StaticDevice.objects.create(user=user, name="backup", confirmed=True)
    codes = [f"code{i}x{user.pk}abc" for i in range(3)]
    for code in codes:
        StaticToken.objects.create(device=backup, token=code)
    session = portal_client(Client(), user)
    token = f.token(user)  # uses one more backup code of its own
    secrets = [
        *codes,
        app.key,
        base64.b32encode(app.bin_key).decode(),
        base64.b32encode(app.bin_key).decode().rstrip("="),
        user.password,
        user.password.rsplit("$", 1)[-1][:12],  # any fragment of the hash
    ]
    return (
        {"user": user, "app": app, "backup": backup, "codes": codes, "session": session},
        [s for s in secrets if s],
        token,
    )


def test_the_takeover_chain_fails_at_its_first_step(client, victim):
    v, _secrets, staff_token = victim
    boss = f.superuser(username="root")
    c = portal_client(client, boss)
    # Step 1 was reading the backup codes and the TOTP key: no page shows them.
    page = c.get(reverse("admin:otp_static_staticdevice_change", args=[v["backup"].pk]))
    assert page.status_code == 200
    assert not [s for s in v["codes"] if s in page.content.decode()]
    with pytest.raises(NoReverseMatch):
        reverse("admin:otp_totp_totpdevice_config", kwargs={"pk": v["app"].pk})
    assert c.get(f"/admin/otp_totp/totpdevice/{v['app'].pk}/config/").status_code in (302, 404)
    assert c.get(f"/admin/otp_totp/totpdevice/{v['app'].pk}/qrcode/").status_code in (302, 404)
    # Nor can a device the superuser knows be made for them: no add page, no action.
    assert c.get(reverse("admin:otp_totp_totpdevice_add")).status_code == 403
    assert c.get(reverse("admin:otp_static_staticdevice_add")).status_code == 403
    with pytest.raises(ActionForbidden):
        actions.enroll_totp(actor=boss, user=v["user"], key="ab" * 20, code="000000")
    with pytest.raises(ActionForbidden):
        actions.generate_backup_codes(actor=boss, user=v["user"], current_code="x")
    # Step 2, setting their password, is allowed but loud: audited, their session and
    # their staff token end at once.
    response = c.post(
        reverse("admin:auth_user_password_change", args=[v["user"].pk]),
        {"password1": "taken over 12345", "password2": "taken over 12345"},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="account.password_set")
    assert event.actor == boss and event.target_id == str(v["user"].pk)
    assert event.changes["by_owner"] is False
    assert event.changes["tokens_revoked"] == [staff_token[:12]]
    assert event.changes["sessions_ended"] == 1
    assert "taken over" not in str(event.changes)
    assert v["session"].get("/admin/").status_code == 302  # signed out
    assert AccessToken.objects.get(prefix=staff_token[:12]).revoked_at is not None
    # Step 3, signing in as them, needs their second factor, which nobody else has.
    thief = Client()
    for guess in ["", "000000", "123456"]:
        assert login(thief, "rm-alice", "taken over 12345", guess).status_code == 200
    assert thief.get("/admin/").status_code == 302


@pytest.fixture
def secret_world(victim):
    """The victim's secrets everywhere a superuser could look in the auth, otp and axes
    admins, including a failed sign-in on which they typed a valid backup code."""
    v, secrets, _ = victim
    Client().post(
        reverse("admin:login"),
        {"username": "rm-alice", "password": "mistyped", "otp_token": v["codes"][0]},
    )
    return v, secrets


def _pages(victim: dict[str, Any]) -> list[tuple[str, str]]:
    """Every page of the auth, otp and axes admins, with the victim's objects."""
    objects = {
        "auth.user": victim["user"],
        "auth.group": Group.objects.get(name="Release manager"),
        "otp_totp.totpdevice": victim["app"],
        "otp_static.staticdevice": victim["backup"],
        "axes.accessattempt": AccessAttempt.objects.first(),
    }
    pages = []
    for model, model_admin in admin.site._registry.items():
        label, opts = model._meta.label_lower, model._meta
        if opts.app_label not in SECRET_APPS:
            continue
        obj = objects.get(label) or model._default_manager.first()
        for pattern in model_admin.get_urls():
            if not isinstance(pattern, URLPattern) or pattern.name is None:
                continue
            needs = set(pattern.pattern.regex.groupindex)
            if needs and obj is None:
                continue
            kwargs = {name: obj.pk for name in needs}
            pages.append((label, reverse(f"admin:{pattern.name}", kwargs=kwargs)))
    pages += [("site", reverse("admin:index")), ("site", reverse("admin:two_factor"))]
    pages += [("site", reverse("admin:app_list", args=[app])) for app in SECRET_APPS]
    return sorted(set(pages))


def test_no_admin_page_of_auth_or_otp_shows_another_persons_secret(client, secret_world):
    """Generated over every URL the auth, otp and axes admins have, as a superuser."""
    v, secrets = secret_world
    c = portal_client(client, f.superuser())
    pages = _pages(v)
    assert len(pages) >= 20
    seen = []
    for label, url in pages:
        response = c.get(url)
        assert response.status_code in (200, 302, 403, 404), (url, response.status_code)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        text = body.decode(errors="replace")
        found = [s for s in secrets if s in text]
        assert not found, f"{label} {url} shows {found}"
        assert "otpauth://" not in text and "secret=" not in text, url
        seen.append(response.status_code)
    assert seen.count(200) >= 15  # the pages were really read, not all refused


# Every change of an account is an audited action, before and after.


@pytest.mark.parametrize(
    ("change", "field", "before", "after"),
    [
        ({"is_staff": ""}, "is_staff", True, False),
        ({"is_active": ""}, "is_active", True, False),
        ({"is_superuser": "on"}, "is_superuser", False, True),
        ({"first_name": "Alice"}, "first_name", "", "Alice"),
        ({"groups": []}, "groups", ["Release manager"], []),
        (
            {"groups": ["Compliance", "Release manager"]},
            "groups",
            ["Release manager"],
            ["Compliance", "Release manager"],
        ),
    ],
)
def test_every_change_to_a_staff_account_is_audited(client, victim, change, field, before, after):
    v, _, _ = victim
    boss = f.superuser()
    c = portal_client(client, boss)
    url = reverse("admin:auth_user_change", args=[v["user"].pk])
    names = {g.pk: g.name for g in Group.objects.all()}
    data = {
        "username": "rm-alice",
        "first_name": "",
        "last_name": "",
        "email": v["user"].email,
        "is_active": "on",
        "is_staff": "on",
        "groups": [pk for pk, name in names.items() if name == "Release manager"],
    }
    if field == "groups":
        data["groups"] = [pk for pk, name in names.items() if name in change["groups"]]
    else:
        data.update(change)
    data = {k: v for k, v in data.items() if v != ""}
    response = c.post(url, {**data, "_save": "Save"})
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="account.changed")
    assert event.actor == boss and event.target_id == str(v["user"].pk)
    assert event.changes[field] == [before, after]
    if field in ("is_staff", "is_active"):  # lost access: signed out, staff tokens revoked
        assert event.changes["sessions_ended"] == 1 and len(event.changes["tokens_revoked"]) == 1


def test_accounts_are_never_deleted_nor_given_direct_permissions(client, victim):
    v, _, _ = victim
    c = portal_client(client, f.superuser())
    assert c.get(reverse("admin:auth_user_delete", args=[v["user"].pk])).status_code == 403
    page = c.get(reverse("admin:auth_user_change", args=[v["user"].pk])).content.decode()
    assert "user_permissions" not in page
    with pytest.raises(ActionError) as exc:
        actions.change_account(actor=None, user=v["user"], user_permissions=[])
    assert exc.value.code == "field_not_editable"


def test_roles_are_read_only_in_the_portal(client):
    c = portal_client(client, f.superuser())
    group = Group.objects.get(name="Compliance")
    url = reverse("admin:auth_group_change", args=[group.pk])
    assert c.get(url).status_code == 200
    assert c.post(url, {"name": "Compliance", "permissions": []}).status_code == 403
    assert group.permissions.exists()
    assert c.get(reverse("admin:auth_group_add")).status_code == 403


def test_only_a_superuser_makes_or_changes_a_superuser(django_user_model):
    manager = f.staff()
    perm = __import__("django.contrib.auth.models", fromlist=["Permission"]).Permission
    manager.user_permissions.add(perm.objects.get(codename="change_user"))
    manager = django_user_model.objects.get(pk=manager.pk)
    for user, values in [(f.staff(), {"is_superuser": True}), (f.superuser(), {"first_name": "X"})]:
        with pytest.raises(ActionForbidden):
            actions.change_account(actor=manager, user=user, **values)
    assert not AuditEvent.objects.filter(action="account.changed").exists()


def test_a_partner_member_cannot_be_made_staff(client):
    partner = f.partner()
    member = f.partner_user(partner)
    secret = f.token(member)
    c = portal_client(client, f.superuser())
    response = c.post(
        reverse("admin:auth_user_change", args=[member.pk]),
        {
            "username": member.username,
            "email": member.email,
            "is_active": "on",
            "is_staff": "on",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    member.refresh_from_db()
    assert not member.is_staff
    assert not AuditEvent.objects.filter(action="account.changed").exists()
    with pytest.raises(ActionError) as exc:
        actions.change_account(actor=None, user=member, is_superuser=True)
    assert exc.value.code == "account_is_member"
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    assert Client().get("/api/v1/me", **headers).status_code == 200


def test_new_accounts_are_audited_without_their_password(client):
    boss = f.superuser()
    c = portal_client(client, boss)
    response = c.post(
        reverse("admin:auth_user_add"),
        {
            "username": "newbie",
            "usable_password": "true",
            "password1": "a long passphrase 1",
            "password2": "a long passphrase 1",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="account.created")
    assert event.actor == boss and event.changes["is_staff"] == [None, False]
    assert "passphrase" not in str(event.changes)


def test_own_password_change_is_audited_and_keeps_the_session(client):
    user = f.staff("Compliance")
    c = portal_client(client, user)
    response = c.post(
        reverse("admin:password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "new and long 98765",
            "new_password2": "new and long 98765",
        },
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="account.password_set")
    assert event.actor == user and event.changes["by_owner"] is True
    assert c.get("/admin/").status_code == 200


def test_removing_someones_device_ends_their_sessions_and_tokens(client, victim):
    v, _, staff_token = victim
    boss = f.superuser()
    c = portal_client(client, boss)
    url = reverse("admin:otp_totp_totpdevice_delete", args=[v["app"].pk])
    page = c.get(url)
    assert page.status_code == 200
    assert v["app"].key not in page.content.decode()
    assert c.post(url, {"post": "yes"}).status_code == 302
    assert not TOTPDevice.objects.filter(pk=v["app"].pk).exists()
    event = AuditEvent.objects.get(action="second_factor.removed")
    assert event.actor == boss and event.changes["kind"] == "totp"
    assert event.changes["tokens_revoked"] == [staff_token[:12]]
    assert v["session"].get("/admin/").status_code == 302
    # Their backup codes' page: no codes, even on its delete confirmation.
    url = reverse("admin:otp_static_staticdevice_delete", args=[v["backup"].pk])
    assert not [s for s in v["codes"] if s in c.get(url).content.decode()]


# My two-factor: each person replaces their own, seen once.


def _session_device(c: Client) -> Any:
    from django_otp import DEVICE_ID_SESSION_KEY

    return c.session.get(DEVICE_ID_SESSION_KEY)


def test_a_person_sets_up_a_new_authenticator_app_seen_once(client):
    user = f.staff("Compliance")
    c = portal_client(client, user)
    old = TOTPDevice.objects.get(user=user)
    url = reverse("admin:two_factor")
    assert c.get(url).status_code == 200
    refused = c.post(url, {"start-current_code": "000000", "start": "1"})
    assert "totp-key" not in refused.content.decode()
    shown = c.post(url, {"start-current_code": f.backup_code(user), "start": "1"})
    assert "no-store" in shown["Cache-Control"]
    key32 = re.search(r'id="totp-key">([A-Z2-7=]+)<', shown.content.decode())[1]
    assert 'id="totp-qr" src="data:image/svg+xml;base64,' in shown.content.decode()
    key = base64.b32decode(key32).hex()
    again = c.get(url).content.decode()
    assert key32 not in again and "confirm-form" in again  # shown once
    wrong = c.post(
        url, {"code": "000000" if code_of(key) != "000000" else "111111", "confirm": "1"}
    )
    assert wrong.status_code == 200 and TOTPDevice.objects.get(user=user).pk == old.pk
    done = c.post(url, {"code": code_of(key), "confirm": "1"})
    assert done.status_code == 302
    device = TOTPDevice.objects.get(user=user)
    assert device.key == key and device.pk != old.pk
    assert c.get("/admin/").status_code == 200  # still signed in, on the new app
    assert _session_device(c) == device.persistent_id
    event = AuditEvent.objects.get(action="second_factor.enrolled")
    assert event.actor == user and event.changes["kind"] == "totp"
    assert key not in str(event.changes) and key32 not in str(event.changes)


def test_a_person_makes_new_backup_codes_shown_once(client):
    user = f.staff("Compliance")
    c = portal_client(client, user)
    old_code = f.backup_code(user)
    url = reverse("admin:two_factor")
    shown = c.post(url, {"backup-current_code": f.backup_code(user), "backup": "1"})
    assert shown.status_code == 200 and "no-store" in shown["Cache-Control"]
    codes = re.findall(r"<li><code>([a-z0-9]+)</code></li>", shown.content.decode())
    assert len(codes) == 10
    assert not [code for code in codes if code in c.get(url).content.decode()]
    verify_second_factor(user, codes[0])
    with pytest.raises(ActionError):
        verify_second_factor(user, old_code)
    event = AuditEvent.objects.get(action="second_factor.enrolled")
    assert event.changes == {"kind": "backup_codes", "count": 10}
    assert not [code for code in codes if code in str(event.changes)]


@pytest.mark.parametrize("role", ["superuser", "Security officer", "Release manager"])
def test_nobody_enrolls_a_second_factor_for_someone_else(role):
    actor = f.superuser() if role == "superuser" else f.staff(role)
    other = f.staff("Compliance")
    with pytest.raises(ActionForbidden):
        actions.enroll_totp(actor=actor, user=other, key="ab" * 20, code="000000")
    with pytest.raises(ActionForbidden):
        actions.generate_backup_codes(actor=actor, user=other, current_code="x")
    assert not TOTPDevice.objects.filter(user=other).exists()


def test_the_operator_enrolls_a_first_device_on_their_terminal():
    user = f.staff("Compliance", username="new-hire")
    out = StringIO()
    call_command("enroll_second_factor", "new-hire", stdout=out)
    text = out.getvalue()
    device = TOTPDevice.objects.get(user=user)
    assert base64.b32encode(device.bin_key).decode() in text and "otpauth://" in text
    codes = [t.token for t in StaticToken.objects.filter(device__user=user)]
    assert len(codes) == 10 and all(code in text for code in codes)
    events = AuditEvent.objects.filter(action="second_factor.enrolled", target_id=str(user.pk))
    assert sorted(e.changes["kind"] for e in events) == ["backup_codes", "totp"]
    assert all(e.actor is None for e in events)
    with pytest.raises(CommandError):  # once: afterwards they replace it themselves
        call_command("enroll_second_factor", "new-hire", stdout=StringIO())


# Sign-in lockouts: the Security officer clears one, audited.


def _locked_out(username: str) -> AccessAttempt:
    for _ in range(5):
        login(Client(), username, "wrong")
    return AccessAttempt.objects.get(username=username)


def test_security_officer_clears_a_lockout_audited(client):
    user = f.staff("Compliance", username="locked")
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    attempt = _locked_out("locked")
    assert login(Client(), "locked", PASSWORD, code_of(device.key)).status_code != 302
    officer = f.staff("Security officer")
    c = portal_client(client, officer)
    assert c.get(reverse("admin:axes_accessattempt_changelist")).status_code == 200
    url = reverse("admin:axes_accessattempt_delete", args=[attempt.pk])
    assert c.post(url, {"post": "yes"}).status_code == 302
    assert not AccessAttempt.objects.exists()
    event = AuditEvent.objects.get(action="staff.lockout_cleared")
    assert event.actor == officer and event.changes["username"] == "locked"
    assert event.changes["failures"] >= 5
    assert login(Client(), "locked", PASSWORD, code_of(device.key)).status_code == 302


@pytest.mark.parametrize("role", ["Release manager", "Partner manager", "Compliance"])
def test_other_roles_cannot_clear_a_lockout(client, role):
    attempt = _locked_out("locked")
    c = portal_client(client, f.staff(role))
    url = reverse("admin:axes_accessattempt_delete", args=[attempt.pk])
    assert c.post(url, {"post": "yes"}).status_code == 403
    assert AccessAttempt.objects.filter(pk=attempt.pk).exists()
    assert not AuditEvent.objects.filter(action="staff.lockout_cleared").exists()


def test_sessions_of_others_are_untouched(client, victim):
    v, _, _ = victim
    bystander = portal_client(Client(), f.staff("Compliance"))
    c = portal_client(client, f.superuser())
    c.post(
        reverse("admin:auth_user_password_change", args=[v["user"].pk]),
        {"password1": "taken over 12345", "password2": "taken over 12345"},
    )
    assert bystander.get("/admin/").status_code == 200
    assert Session.objects.count() >= 2
