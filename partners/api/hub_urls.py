"""The Hub-compatible routes (partners.api.hub, docs/hub.md), at the site's root as the
Hub's client builds them: ``/api/models/...``, ``/api/whoami-v2`` and
``/<ACCESSCTL_HUB_ORG>/{repo}/resolve/{revision}/{path}``."""

from django.conf import settings
from django.urls import path

from . import hub

_REPO = "api/models/<str:org>/<str:repo>"

urlpatterns = [
    path("api/whoami-v2", hub.WhoAmIView.as_view(), name="hub-whoami"),
    path(_REPO, hub.ModelInfoView.as_view(), name="hub-model"),
    path(f"{_REPO}/revision/<str:revision>", hub.ModelInfoView.as_view(), name="hub-revision"),
    path(f"{_REPO}/tree/<str:revision>", hub.TreeView.as_view(), name="hub-tree"),
    path(f"{_REPO}/tree/<str:revision>/<path:path>", hub.TreeView.as_view(), name="hub-subtree"),
    path(f"{_REPO}/paths-info/<str:revision>", hub.PathsInfoView.as_view(), name="hub-paths"),
    path(f"{_REPO}/auth-check", hub.AuthCheckView.as_view(), name="hub-auth-check"),
    path(
        f"{settings.ACCESSCTL_HUB_ORG}/<str:repo>/resolve/<str:revision>/<path:path>",
        hub.ResolveView.as_view(),
        {"org": settings.ACCESSCTL_HUB_ORG},
        name="hub-resolve",
    ),
]
