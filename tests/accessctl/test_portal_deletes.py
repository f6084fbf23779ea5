"""No domain row is deleted through the portal, by anyone, superusers included.

A partner is terminated, a grant or token revoked, a checkpoint pulled, a release
withdrawn: each through an audited action. Django's delete page would remove the row
(cascading to its grants, events, ...) with no action and no audit event, so every admin
of the domain apps refuses delete, by one mechanism: ``PortalSite.register`` mixes
``DomainRowsStay`` in front of it. Generated over the live registry: a new domain admin
joins by itself.
"""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from accessctl.audit.models import AuditEvent
from accessctl.portal import DOMAIN_APPS, DomainRowsStay, PortalSite
from partners.models import Grant, Partner
from tests import factories as f
from tests.accessctl.test_portal import portal_client

pytestmark = pytest.mark.django_db

DOMAIN_ADMINS = sorted(
    (model._meta.label_lower, model_admin)
    for model, model_admin in admin.site._registry.items()
    if model._meta.app_label in DOMAIN_APPS
)


def test_the_domain_admins_are_all_there():
    labels = {label for label, _ in DOMAIN_ADMINS}
    assert labels >= {
        "partners.partner",
        "partners.release",
        "partners.embargowindow",
        "partners.checkpoint",
        "partners.grant",
        "partners.grantrequest",
        "partners.accesstoken",
        "partners.tokeninvitation",
        "partners.revocation",
        "partners.notification",
        "audit.auditevent",
        "audit.auditexport",
        "audit.auditcheckpoint",
    }


@pytest.mark.parametrize(
    ("label", "model_admin"), DOMAIN_ADMINS, ids=[label for label, _ in DOMAIN_ADMINS]
)
def test_no_domain_admin_deletes_for_a_superuser(rf, label, model_admin):
    request = rf.get("/admin/")
    request.user = f.superuser()
    assert not model_admin.has_delete_permission(request)
    assert not model_admin.has_delete_permission(request, model_admin.model())
    assert "delete_selected" not in model_admin.get_actions(request)


def test_a_superuser_cannot_delete_an_active_grant(client):
    release, partner = f.release("v3", public_in=-timedelta(days=1)), f.partner()
    f.window(release, partner)
    grant = f.grant(f.checkpoint(release), partner)
    superuser = f.superuser()
    c = portal_client(client, superuser)
    url = reverse("admin:partners_grant_delete", args=[grant.pk])
    assert c.get(url).status_code == 403
    assert c.post(url, {"post": "yes"}).status_code == 403
    assert Grant.objects.get(pk=grant.pk).status == Grant.Status.ACTIVE
    # Nothing but the two refusals' evidence (the page, then the post): no change recorded.
    events = AuditEvent.objects.filter(actor=superuser).exclude(action="staff.signed_in")
    assert [(e.action, e.reason, e.target_id) for e in events] == [
        ("grant.refused", "forbidden", str(grant.pk))
    ] * 2
    page = c.get(reverse("admin:partners_grant_change", args=[grant.pk])).content.decode()
    assert url not in page  # no Delete button either


def test_a_new_domain_admin_cannot_forget_it(rf):
    site = PortalSite(name="scratch")
    site.register(Partner)  # a plain ModelAdmin, say
    request = rf.get("/")
    request.user = f.superuser()
    assert not site._registry[Partner].has_delete_permission(request)


def test_a_domain_admin_that_insists_on_deleting_is_refused_at_registration():
    class Deleting(DomainRowsStay, admin.ModelAdmin):
        def has_delete_permission(self, request, obj=None):
            return True

    with pytest.raises(ImproperlyConfigured, match="may not delete domain rows"):
        PortalSite(name="scratch").register(Partner, Deleting)
