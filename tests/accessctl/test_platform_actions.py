"""The platform's own writes enforce their rules in the function, not in the command that
calls it: key rotation audits itself, retention refuses to go below its minimum, and
every sign-in (successful or not) is recorded by one function."""

import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.management import CommandError, call_command
from django.db import connection
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


def test_retention_refuses_to_delete_every_event(settings):
    """When every sealed event is older than the cutoff, nothing would be left to anchor
    the log's recent end: the procedure refuses instead of emptying the trail."""
    settings.ACCESSCTL_AUDIT_RETENTION_MIN_DAYS = 365
    old = [
        record(AuditAction.PARTNER_UPDATED, actor=None, at=timezone.now() - 400 * DAY)
        for _ in range(2)
    ]
    assert AuditEvent.objects.count() == 2
    with pytest.raises(RetentionError, match="Every sealed event is older than the cutoff"):
        apply_retention(older_than=365 * DAY, operator="ops@lab")
    assert AuditEvent.objects.filter(pk__in=[e.pk for e in old]).count() == 2
    assert not AuditRetention.objects.exists()


def test_the_retention_command_deletes_only_when_told_yes(settings):
    settings.ACCESSCTL_AUDIT_RETENTION_MIN_DAYS = 30
    old = record(AuditAction.PARTNER_UPDATED, actor=None, at=timezone.now() - 40 * DAY)
    record(AuditAction.PARTNER_UPDATED, actor=None)
    args = ["apply_audit_retention", "--older-than-days=30", "--operator=ops@lab"]
    with pytest.raises(CommandError, match="add --yes to proceed"):
        call_command(*args)
    assert AuditEvent.objects.filter(pk=old.pk).exists()
    out = StringIO()
    call_command(*args, "--yes", stdout=out)
    assert out.getvalue() == "Deleted 1 events below leaf 1.\n"
    assert not AuditEvent.objects.filter(pk=old.pk).exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_processes_racing_to_make_the_first_key_all_use_the_one_that_won(monkeypatch):
    """A fresh installation's first signing key is made on first use; when two processes
    get there at once, the database keeps one active key and the loser signs with it."""
    from accessctl.signing import actions as signing

    assert not SigningKey.objects.exists()  # a fresh installation
    made_first: list[SigningKey] = []

    def another_process_first() -> None:
        try:
            made_first.append(signing.ensure_signing_key())
        finally:
            connection.close()

    real_new_key = signing.new_key

    def new_key() -> SigningKey:
        if threading.current_thread() is threading.main_thread():
            # This process found no key; another one makes and commits its own now.
            other = threading.Thread(target=another_process_first)
            other.start()
            other.join()
        return real_new_key()

    monkeypatch.setattr(signing, "new_key", new_key)
    key = signing.ensure_signing_key()
    assert key.kid == made_first[0].kid
    assert list(SigningKey.objects.values_list("kid", "status")) == [(key.kid, "active")]
