"""The Hub-compatible routes (partners.api.hub, docs/hub.md), at the site's root as the
Hub's client builds them: ``/api/models/...``, ``/api/whoami-v2`` and
``/<ACCESSCTL_HUB_ORG>/{repo}/resolve/{revision}/{path}``. A path of the Hub's shape that
names no repository here (another organisation, a dataset, a space) is 404
``RepoNotFound`` (``hub.NoRepositoryView``), so the client raises its
repository-not-found error."""

from django.conf import settings
from django.urls import path

from . import hub

_REPO = "api/models/<str:org>/<str:repo>"

urlpatterns = [
    path("api/whoami-v2", hub.WhoAmIView.as_view(), name="hub-whoami"),
    path(_REPO, hub.ModelInfoView.as_view(), name="hub-model"),
    path(f"{_REPO}/revision/<path:revision>", hub.ModelInfoView.as_view(), name="hub-revision"),
    path(f"{_REPO}/tree/<str:revision>", hub.TreeView.as_view(), name="hub-tree"),
    path(f"{_REPO}/tree/<str:revision>/<path:path>", hub.TreeView.as_view(), name="hub-subtree"),
    path(f"{_REPO}/paths-info/<path:revision>", hub.PathsInfoView.as_view(), name="hub-paths"),
    path(f"{_REPO}/auth-check", hub.AuthCheckView.as_view(), name="hub-auth-check"),
    path(
        f"{settings.ACCESSCTL_HUB_ORG}/<str:repo>/resolve/<str:revision>/<path:path>",
        hub.ResolveView.as_view(),
        {"org": settings.ACCESSCTL_HUB_ORG},
        name="hub-resolve",
    ),
    # The Hub's shapes that name no repository here.
    path("api/datasets", hub.NoRepositoryView.as_view(), name="hub-datasets"),
    path("api/datasets/<path:rest>", hub.NoRepositoryView.as_view(), name="hub-datasets-any"),
    path("api/spaces", hub.NoRepositoryView.as_view(), name="hub-spaces"),
    path("api/spaces/<path:rest>", hub.NoRepositoryView.as_view(), name="hub-spaces-any"),
    path(
        "datasets/<str:org>/<str:repo>/resolve/<path:rest>",
        hub.NoRepositoryView.as_view(),
        name="hub-resolve-dataset",
    ),
    path(
        "spaces/<str:org>/<str:repo>/resolve/<path:rest>",
        hub.NoRepositoryView.as_view(),
        name="hub-resolve-space",
    ),
    path(
        "<str:org>/<str:repo>/resolve/<path:rest>",
        hub.NoRepositoryView.as_view(),
        name="hub-resolve-other",
    ),
]
