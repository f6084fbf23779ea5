"""An email's text/plain part shows what people typed as they typed it: a reason or a
name with ``< > " ' &`` is not HTML-escaped there (the HTML part still escapes it)."""

from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.test import TestCase

from partners import actions, notify
from partners.models import Notification, Revocation
from tests import factories as f

TYPED = """<b>leak</b> & "quoted" 'single'"""
ESCAPES = ("&lt;", "&gt;", "&quot;", "&#x27;", "&#39;", "&amp;")
TEXT_TEMPLATES = sorted((Path(settings.BASE_DIR) / "templates" / "email").glob("*.txt"))


class Typed(dict):
    """A context in which every variable is what an operator typed."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str | int:
        return 1024 if key.endswith("bytes") or key == "bytes_left" else TYPED


@pytest.mark.parametrize("path", TEXT_TEMPLATES, ids=[p.name for p in TEXT_TEMPLATES])
def test_every_text_template_shows_typed_text_unescaped(path):
    text = notify.render_text(f"email/{path.name}", Typed())
    assert TYPED in text, text
    assert not [e for e in ESCAPES if e in text], text


def test_the_text_templates_are_all_checked():
    assert {p.name for p in TEXT_TEMPLATES} >= {"grant_revoked.txt", "token_invitation.txt"}


@pytest.mark.django_db
def test_a_revocation_email_keeps_the_operators_reason_in_its_text_part():
    partner = f.partner("aurora")
    f.contact(partner, "cto@aurora.example")
    release = f.release("v3")
    f.window(release, partner)
    f.grant(f.checkpoint(release), partner)
    actions.suspend_partner(actor=None, partner=partner, reason=TYPED)
    actions.cascade_revocation(Revocation.objects.get().pk)
    notify.send_due()
    assert Notification.objects.exists()
    sent = [m for m in mail.outbox if TYPED in m.body]
    assert sent, [m.body for m in mail.outbox]
    for message in mail.outbox:
        assert not [e for e in ESCAPES if e in message.body], message.body
        for html, _ in message.alternatives:
            assert TYPED not in html  # the HTML part escapes it


@pytest.mark.django_db
def test_the_token_invitation_names_the_token_as_typed():
    partner = f.partner("aurora")
    member = f.partner_user(partner, email="dev@aurora.example")
    with TestCase.captureOnCommitCallbacks(execute=True):
        actions.invite_member_token(actor=None, user=member, name=TYPED, scopes=["read"])
    (message,) = [m for m in mail.outbox if "dev@aurora.example" in m.to]
    assert TYPED in message.subject + message.body
    assert not [e for e in ESCAPES if e in message.subject + message.body]
