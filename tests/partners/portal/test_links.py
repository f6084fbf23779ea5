"""Every link the portal draws for a role leads somewhere that role may go: the home,
the matrix, the timeline and each object page are fetched as each role, every ``/admin/``
link on them is followed, and none may answer 403, 404 or 500 (a 403 would also leave a
false ``forbidden`` event in the audit trail)."""

import re
from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from accessctl.audit.models import AuditCheckpoint, AuditEvent, AuditExport
from partners import actions
from partners.models import Grant, Revocation
from partners.roles import ROLES
from tests import factories as f
from tests.accessctl.test_portal import portal_client

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
# Links that are not pages to visit: signing out is a POST; static files are not views.
SKIP = re.compile(r"^/admin/(logout/|jsi18n/)|^/static/")


@pytest.fixture
def world():
    now = timezone.now()
    aurora = f.partner("aurora-gpu")
    tessel = f.partner("tessel-accel", jurisdiction="DE")
    v4 = f.release("v4", public_in=-DAY)
    checkpoint = f.checkpoint(v4)
    f.window(v4, aurora)
    f.window(v4, tessel, opens=3 * DAY, closes=9 * DAY)
    grant = f.grant(checkpoint, aurora)
    Grant.objects.filter(pk=grant.pk).update(expires_at=now + 2 * DAY)
    f.authorize(grant, requested_bytes=10**9)  # a denial
    member = f.partner_user(aurora)
    f.token(member)
    early = f.release("v6", public_in=30 * DAY)
    f.window(early, aurora)
    request = actions.request_grant(
        actor=member, partner=aurora, checkpoint=f.checkpoint(early), quota_bytes=5
    )
    officer = f.staff("Security officer", username="sofia")
    v5 = f.release("v5", public_in=-DAY)
    f.window(v5, aurora)
    actions.withdraw_release(actor=officer, release=v5, reason="weights leaked")
    cygnus = f.partner("cygnus")  # suspended: its page offers Reinstate
    f.window(v4, cygnus)
    actions.suspend_partner(actor=None, partner=cygnus, reason="audit")
    actions.cascade_revocation(Revocation.objects.get(partner=cygnus).pk)
    AuditCheckpoint.objects.create(
        tree_size=1, root_hash=b"\0" * 32, sealed_at=now, key_id="k1", signature="s"
    )
    AuditExport.objects.create(requested_by=officer, requested_at=now, events=1)
    return {
        "pages": [
            reverse("admin:index"),
            reverse("admin:partners_embargowindow_matrix"),
            reverse("admin:partners_embargowindow_timeline"),
            reverse("admin:partners_partner_change", args=[aurora.pk]),
            reverse("admin:partners_partner_change", args=[cygnus.pk]),
            reverse("admin:partners_release_change", args=[v4.pk]),
            reverse("admin:partners_release_change", args=[v5.pk]),
            reverse("admin:partners_checkpoint_change", args=[checkpoint.pk]),
            reverse("admin:partners_grant_change", args=[grant.pk]),
            reverse("admin:partners_grantrequest_change", args=[request.pk]),
            reverse("admin:audit_auditevent_change", args=[AuditEvent.objects.last().pk]),
        ]
    }


def links(html: str) -> set[str]:
    found = {unescape(h) for h in re.findall(r'<a [^>]*href="([^"#]+)', html)}
    return {h for h in found if h.startswith("/admin/") and not SKIP.match(h)}


@pytest.mark.parametrize("role", [*sorted(ROLES), None], ids=[*sorted(ROLES), "superuser"])
def test_every_link_on_every_portal_page_opens_for_the_role(client, world, role):
    c = portal_client(client, f.superuser() if role is None else f.staff(role))
    refused_before = AuditEvent.objects.filter(action__endswith=".refused").count()
    broken = []
    seen: set[str] = set()
    for page in world["pages"]:
        response = c.get(page)
        if response.status_code == 403:
            continue  # a page the role does not get (tested elsewhere); its links are moot
        assert response.status_code == 200, (page, response.status_code)
        for href in sorted(links(response.content.decode()) - seen):
            seen.add(href)
            status = c.get(href).status_code
            if status in {403, 404, 500}:
                broken.append((page, href, status))
    assert not broken
    assert seen, "no link followed"
    # No page the role was led to was refused, so no refusal entered the audit trail.
    assert AuditEvent.objects.filter(action__endswith=".refused").count() == refused_before
