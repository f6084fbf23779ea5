"""Notifications: queued as rows in the change's transaction, sent later by a task.

``queue`` writes one ``Notification`` per recipient (unique per occasion and address,
so queuing twice is a no-op) and asks for a send after commit. ``send_due`` claims due
rows with a short lease, renders ``templates/email/<kind>.txt`` (first line: the
subject) and ``.html``, sends them through Django's email backend and records the
outcome; a failed send is retried with exponential backoff, then marked failed.
"""

import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone

from accessctl_wire import formats
from partners.dispatch import after_commit
from partners.models import Notification, PartnerContact

__all__ = ["partner_recipients", "queue", "render_text", "send_due", "staff_recipients", "when"]

log = logging.getLogger(__name__)

Recipient = tuple[str, int | None]  # (address, partner id or None for staff)

MAX_ATTEMPTS = 6
LEASE = timedelta(minutes=5)


def when(moment: datetime) -> str:
    """A time as emails show it, as the portal and the CLI do: ``2026-11-29 16:40:05 UTC``
    (``accessctl_wire.formats.moment``)."""
    return formats.moment(moment)


def partner_recipients(partner_ids: Iterable[int]) -> list[Recipient]:
    """The contacts of these partners who asked to be told."""
    return list(
        PartnerContact.objects.filter(partner_id__in=list(partner_ids), notify=True)
        .order_by("partner_id", "email")
        .values_list("email", "partner_id")
    )


def staff_recipients(permission: str) -> list[Recipient]:
    """Active staff holding ``permission`` ("app.codename") through a role or directly."""
    app_label, codename = permission.split(".", 1)
    perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename)
    users = (
        get_user_model()
        .objects.filter(is_active=True, is_staff=True)
        .filter(
            Q(is_superuser=True) | Q(groups__permissions__in=perm) | Q(user_permissions__in=perm)
        )
        .exclude(email="")
        .values_list("email", flat=True)
        .distinct()
    )
    return [(email, None) for email in sorted(set(users))]


def queue(
    kind: Notification.Kind, key: str, recipients: Iterable[Recipient], context: dict[str, Any]
) -> int:
    """Queue ``kind`` for each recipient, once per ``key``; returns how many are queued
    for this key in all (a repeat adds none). Call inside the change's transaction."""
    rows = [
        Notification(key=key, kind=kind, email=email, partner_id=partner_id, context=context)
        for email, partner_id in dict(recipients).items()
    ]
    if not rows:
        return 0
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    # By name: the task calls this module (accessctl.dispatch.send).
    after_commit("partners.tasks.send_notifications")
    return Notification.objects.filter(key=key).count()


def render_text(name: str, context: dict[str, Any]) -> str:
    """A plain-text template (an email's text part) rendered unescaped: the ``text``
    template engine (settings.TEMPLATES), autoescape off. First line: the subject."""
    return render_to_string(name, context, using="text")


def render(notification: Notification) -> EmailMultiAlternatives:
    context = {**notification.context, "site_name": settings.ACCESSCTL_SITE_NAME}
    text = render_text(f"email/{notification.kind}.txt", context)
    subject, _, body = text.partition("\n")
    message = EmailMultiAlternatives(
        subject=subject.strip(),
        body=body.lstrip("\n"),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.email],
    )
    message.attach_alternative(
        render_to_string(f"email/{notification.kind}.html", context), "text/html"
    )
    return message


def _claim(at: datetime, batch: int) -> list[Notification]:
    """Take up to ``batch`` due rows for ``LEASE``: another sender skips them meanwhile,
    and a sender that dies lets them come due again when the lease ends."""
    with transaction.atomic():
        due = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(status=Notification.Status.PENDING, next_attempt_at__lte=at)
            .order_by("next_attempt_at", "pk")[:batch]
        )
        Notification.objects.filter(pk__in=[n.pk for n in due]).update(
            next_attempt_at=at + LEASE, attempts=F("attempts") + 1
        )
    return due


def send_due(*, batch: int = 100) -> tuple[int, int]:
    """Send what is due; returns (sent, failed this round)."""
    at = timezone.now()
    due = _claim(at, batch)
    if not due:
        return 0, 0
    sent = failed = 0
    connection = get_connection()
    with contextlib.suppress(Exception):  # if it fails, each send below says why
        connection.open()  # one session for the batch
    try:
        for notification in due:
            attempt = notification.attempts + 1
            try:
                connection.send_messages([render(notification)])
            except Exception as exc:  # SMTP, DNS, socket: record it and back off
                failed += 1
                gave_up = attempt >= MAX_ATTEMPTS
                log.warning(
                    "notification %s to %s failed (attempt %s): %s",
                    notification.pk,
                    notification.email,
                    attempt,
                    type(exc).__name__,
                )
                Notification.objects.filter(pk=notification.pk).update(
                    status=Notification.Status.FAILED if gave_up else Notification.Status.PENDING,
                    next_attempt_at=timezone.now() + timedelta(seconds=30 * 2**attempt),
                    last_error=f"{type(exc).__name__}: {exc}"[:300],
                )
                continue
            sent += 1
            Notification.objects.filter(pk=notification.pk).update(
                status=Notification.Status.SENT, sent_at=timezone.now(), last_error=""
            )
    finally:
        connection.close()
    return sent, failed
