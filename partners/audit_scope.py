"""What the audit export's ``partner`` and ``release`` filters mean in this domain.

The export (``accessctl.audit.exports``) is platform code and knows no partner or
release: it calls these through ``settings.ACCESSCTL_AUDIT_EXPORT_SCOPES``.
"""

from django.db.models import CharField, Q, QuerySet
from django.db.models.functions import Cast

from partners.models import Checkpoint, EmbargoWindow, Grant, GrantRequest, Partner, Release

__all__ = ["partner_events", "release_events"]


def partner_events(slug: str) -> Q:
    """Events recorded for partner ``slug``."""
    return Q(partner_id__in=Partner.objects.filter(slug=slug).values("pk"))


def release_events(slug: str) -> Q:
    """Events about release ``slug``: the release, its checkpoints and windows, and the
    grants and grant requests for its checkpoints."""
    release = Release.objects.filter(slug=slug)

    def ids(qs: QuerySet) -> QuerySet:
        return qs.annotate(text=Cast("pk", CharField())).values("text")

    checkpoints = Checkpoint.objects.filter(release__in=release)
    return (
        Q(target_type="partners.release", target_id__in=ids(release))
        | Q(target_type="partners.checkpoint", target_id__in=ids(checkpoints))
        | Q(
            target_type="partners.embargowindow",
            target_id__in=ids(EmbargoWindow.objects.filter(release__in=release)),
        )
        | Q(
            target_type="partners.grant",
            target_id__in=ids(Grant.objects.filter(checkpoint__in=checkpoints)),
        )
        | Q(
            target_type="partners.grantrequest",
            target_id__in=ids(GrantRequest.objects.filter(checkpoint__in=checkpoints)),
        )
    )
