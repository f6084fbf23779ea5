"""The platform's own writes enforce their rules in the function, not in the command that
calls it: key rotation audits itself, retention refuses to go below its minimum, and
every sign-in (successful or not) is recorded by one function."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from django.utils import timezone

from accessctl.audit.events import AuditAction, record
from accessctl.audit.models import AuditEvent, AuditRetention
from accessctl.audit.retention import RetentionError, apply_retention, minimum_age
from accessctl.audit.signins import record_sign_in
from accessctl.signing.actions import rotate_signing_key
from accessctl.signing.keys import current_key
from accessctl.signing.models import SigningKey

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def test_rotating_the_key_by_function_is_audited_in_its_transaction():
    old = current_key()
    key, retired = rotate_signing_key(actor=None)
    assert retired == [old.kid]
    event = AuditEvent.objects.get(action=AuditAction.SIGNING_KEY_ROTATED)
    assert event.changes == {"kid": key.kid, "retired": [old.kid]}
    assert SigningKey.objects.get(kid=old.kid).status == SigningKey.Status.RETIRED


@pytest.mark.parametrize("days", [0, 1, 364])
def test_retention_below_the_minimum_is_refused_by_the_function(settings, days):
    settings.ACCESSCTL_AUDIT_RETENTION_MIN_DAYS = 365
    record(AuditAction.PARTNER_UPDATED, actor=None, at=timezone.now() - 400 * DAY)
    with pytest.raises(RetentionError, match="at least 365"):
        apply_retention(older_than=days * DAY, operator="ops@lab")
    assert not AuditRetention.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.AUDIT_RETENTION_APPLIED).exists()


def test_the_command_refuses_below_the_minimum_through_the_function(settings):
    settings.ACCESSCTL_AUDIT_RETENTION_MIN_DAYS = 30
    assert minimum_age() == 30 * DAY
    with pytest.raises(CommandError, match="at least 30"):
        call_command("apply_audit_retention", "--older-than-days=29", "--operator=ops", "--yes")


def test_sign_in_signals_go_through_the_one_recorder():
    user = get_user_model().objects.create_user("ada")  # a test's own row, not an action
    request = RequestFactory().post("/admin/login/")
    user_logged_in.send(sender=type(user), request=request, user=user)
    user_login_failed.send(
        sender=None, credentials={"username": "ada"}, request=request, reason="second_factor"
    )
    signed_in = AuditEvent.objects.get(action=AuditAction.STAFF_SIGNED_IN)
    failed = AuditEvent.objects.get(action=AuditAction.STAFF_SIGN_IN_FAILED)
    assert signed_in.target_id == str(user.pk)
    assert (failed.target_id, failed.reason, failed.changes) == (
        str(user.pk),
        "second_factor",
        {"username": "ada"},
    )
    unknown = record_sign_in(username="nobody", succeeded=False)
    assert (unknown.target_id, unknown.reason) == ("", "bad_credentials")
