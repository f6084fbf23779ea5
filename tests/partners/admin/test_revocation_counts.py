"""A revocation counts and names its root by kind: revoking one grant is one grant
revoked, in the portal's list and page and in the staff email, whose subject names the
grant once ("Grant grant #2" named it twice)."""

import importlib
import re

import pytest
from django.apps import apps as django_apps
from django.core import mail
from django.urls import reverse

from partners import actions, notify
from partners.models import AccessToken, Revocation
from tests import factories as f
from tests.accessctl.test_portal import portal_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def revoked_grant():
    partner = f.partner("aurora")
    release = f.release("v4")
    f.window(release, partner)
    grant = f.grant(f.checkpoint(release), partner)
    officer = f.staff("Security officer")
    actions.revoke_grant(actor=officer, grant=grant, reason="leaked URL")
    revocation = Revocation.objects.get(grant=grant)
    actions.cascade_revocation(revocation.pk)
    return grant, Revocation.objects.get(pk=revocation.pk), officer


def _cell(html: str, field: str) -> str:
    return re.search(rf'<td class="field-{field}">([^<]*)</td>', html)[1]


def test_revoking_one_grant_counts_one_grant_revoked(revoked_grant):
    grant, revocation, _ = revoked_grant
    assert (revocation.grants_revoked, revocation.tokens_revoked) == (1, 0)
    assert revocation.target_label == f"grant #{grant.pk}"


def test_the_list_and_the_page_show_one_grant_revoked(revoked_grant, client):
    _, revocation, officer = revoked_grant
    c = portal_client(client, officer)
    listing = c.get(reverse("admin:partners_revocation_changelist")).content.decode()
    assert _cell(listing, "grants_revoked") == "1"
    assert _cell(listing, "target_label") == f"grant #{revocation.grant_id}"
    page = c.get(reverse("admin:partners_revocation_change", args=[revocation.pk]))
    html = page.content.decode()
    assert re.search(r"Grants revoked:</label>\s*<div class=\"readonly\">1</div>", html), html


def test_the_staff_email_names_the_grant_once_and_counts_it(revoked_grant):
    grant, revocation, _ = revoked_grant
    notify.send_due()
    summary = next(m for m in mail.outbox if m.subject.startswith("Revocation #"))
    assert summary.subject == f"Revocation #{revocation.pk} done: grant #{grant.pk}"
    assert "Grants revoked: 1" in summary.body
    assert "Grant grant" not in summary.body


def test_revoking_one_token_counts_one_token_revoked():
    member = f.partner_user(f.partner())
    token = AccessToken.objects.get(prefix=f.token(member)[:12])
    actions.revoke_token(actor=None, token=token, reason="lost laptop")
    revocation = Revocation.objects.get(token=token)
    assert (revocation.grants_revoked, revocation.tokens_revoked) == (0, 1)
    assert revocation.target_label == f"API token {token}"


def test_a_suspension_counts_only_what_its_cascade_revoked():
    partner = f.partner("borealis")
    release = f.release("v5")
    f.window(release, partner)
    f.grant(f.checkpoint(release), partner)
    actions.suspend_partner(actor=None, partner=partner, reason="audit")
    revocation = actions.cascade_revocation(Revocation.objects.get(partner=partner).pk)
    assert (revocation.grants_revoked, revocation.target_label) == (1, "partner borealis")


def test_the_migration_counts_the_roots_recorded_before(revoked_grant):
    _, revocation, _ = revoked_grant
    Revocation.objects.filter(pk=revocation.pk).update(grants_revoked=0)
    migration = importlib.import_module("partners.migrations.0014_count_revoked_roots")
    migration.count_roots(django_apps, None)
    assert Revocation.objects.get(pk=revocation.pk).grants_revoked == 1
