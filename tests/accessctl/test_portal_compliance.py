"""What a compliance officer reads in the portal: times to the second in UTC, changes
as before/after tables, a History of audit events on every object that has them, and the
signed audit checkpoints (no bare 403 for the Compliance role)."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse

from accessctl.audit.models import AuditCheckpoint, AuditEvent
from accessctl.audit.sealing import seal
from partners import actions
from partners.models import Revocation
from tests import factories as f
from tests.accessctl.test_portal import portal_client

pytestmark = pytest.mark.django_db

STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")
NO_HISTORY = "change history"  # Django's "This object doesn't have a change history."


@pytest.fixture
def compliance(client):
    return portal_client(client, f.staff("Compliance"))


@pytest.fixture
def story():
    partner = f.partner("aurora", legal_name="Aurora Inc.")
    actions.update_partner(actor=None, partner=partner, legal_name="Aurora GPU Inc.")
    release = f.release("v4", public_in=timedelta(days=30))
    cp = f.checkpoint(release)
    f.window(release, partner)
    member = f.partner_user(partner)
    request = actions.request_grant(actor=member, partner=partner, checkpoint=cp, quota_bytes=5)
    grant = f.grant(f.checkpoint(release, tag="s2"), partner)
    actions.revoke_grant(actor=None, grant=grant, reason="leak")
    revocation = Revocation.objects.get(grant=grant)
    actions.cascade_revocation(revocation.pk)
    return {"partner": partner, "request": request, "revocation": revocation}


def test_the_trail_shows_times_to_the_second_in_utc(compliance, story):
    html = compliance.get(reverse("admin:audit_auditevent_changelist")).content.decode()
    cells = re.findall(r'<t[hd] class="field-occurred_at[^"]*"[^>]*>(?:<a [^>]*>)?([^<]*)<', html)
    assert cells and all(STAMP.fullmatch(c) for c in cells), cells[:3]


def test_an_events_changes_are_a_before_after_table(compliance, story):
    event = AuditEvent.objects.get(action="partner.updated")
    html = compliance.get(reverse("admin:audit_auditevent_change", args=[event.pk])).content
    html = html.decode()
    table = re.search(r'<table class="changes">.*?</table>', html, re.S)[0]
    assert re.search(
        r'<th scope="row">legal_name</th><td class="before">Aurora Inc.</td>'
        r'<td class="after">Aurora GPU Inc.</td>',
        table,
    )
    assert "{&#x27;legal_name&#x27;" not in html and "{'legal_name'" not in html


@pytest.mark.parametrize("name", ["grantrequest", "revocation", "auditevent", "partner"])
def test_history_shows_the_audit_events(compliance, story, name):
    obj = {
        "grantrequest": lambda: story["request"],
        "revocation": lambda: story["revocation"],
        "auditevent": lambda: AuditEvent.objects.get(
            action="grant.requested", target_id=str(story["request"].pk)
        ),
        "partner": lambda: story["partner"],
    }[name]()
    app = "audit" if name == "auditevent" else "partners"
    response = compliance.get(reverse(f"admin:{app}_{name}_history", args=[obj.pk]))
    html = response.content.decode()
    assert response.status_code == 200 and NO_HISTORY not in html
    rows = re.findall(r"<tr><td>(\d{4}-[^<]+)</td><td><a [^>]*>([a-z_.]+)</a>", html)
    assert rows and all(STAMP.fullmatch(when) for when, _ in rows)
    expected = {
        "grantrequest": "grant.requested",
        "revocation": "revocation.completed",
        "auditevent": "grant.requested",
        "partner": "partner.updated",
    }[name]
    assert expected in {action for _, action in rows}
    if name == "revocation":  # and what its cascade (or root) ended
        assert "grant.revoked" in {action for _, action in rows}


def test_compliance_reads_the_signed_checkpoints(compliance, story):
    seal()
    checkpoint = AuditCheckpoint.objects.latest("pk")
    listing = compliance.get(reverse("admin:audit_auditcheckpoint_changelist"))
    assert listing.status_code == 200 and checkpoint.key_id in listing.content.decode()
    page = compliance.get(reverse("admin:audit_auditcheckpoint_change", args=[checkpoint.pk]))
    assert page.status_code == 200
    index = compliance.get(reverse("admin:index")).content.decode()
    assert reverse("admin:audit_auditcheckpoint_changelist") in index


def test_a_refusal_is_a_styled_portal_page(client, story):
    c = portal_client(client, f.staff())  # staff without a role
    response = c.get(reverse("admin:audit_auditcheckpoint_changelist"))
    html = response.content.decode()
    assert response.status_code == 403
    assert 'id="refused"' in html and "admin/css/base.css" in html and "recorded" in html
