"""Portal sessions carry their user's id, so one person's sessions end in one query
(accessctl/sessions), through the real sign-in form."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accessctl.sessions.models import UserSession
from partners.actions.accounts import _end_sessions_and_staff_tokens
from tests import factories as f
from tests.accessctl.test_portal import portal_client

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery"  # tests/factories.py


def sign_in(user) -> Client:
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"
    client = Client()
    response = client.post(
        reverse("admin:login"),
        {"username": user.username, "password": PASSWORD, "otp_token": code, "next": "/admin/"},
    )
    assert response.status_code == 302, response.content[:500]
    return client


def test_signing_in_records_the_user_and_signing_out_forgets_it():
    user = f.staff("Compliance")
    client = sign_in(user)
    key = client.cookies["sessionid"].value
    assert UserSession.objects.get(session_key=key).user_id == user.pk
    client.post(reverse("admin:logout"))
    assert not UserSession.objects.filter(user_id=user.pk).exists()


def test_ending_ones_sessions_is_one_statement_and_spares_everyone_else():
    alice = f.staff("Release manager")
    bob = f.staff("Compliance")
    alices = [portal_client(Client(), alice) for _ in range(3)]
    bobs = portal_client(Client(), bob)
    anonymous = Client()
    anonymous.get(reverse("admin:login"))  # a session before sign-in: no user
    with CaptureQueriesContext(connection) as queries:
        ended = _end_sessions_and_staff_tokens(
            actor=None, user=alice, reason="test", at=timezone.now()
        )
    assert ended["sessions_ended"] == 3
    assert sum("portal_sessions_usersession" in q["sql"] for q in queries) == 1
    for client in alices:
        assert client.get("/admin/").status_code == 302  # back to sign-in
    assert bobs.get("/admin/").status_code == 200
