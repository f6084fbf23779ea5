from django.urls import path

from . import downloads, views

app_name = "api"

urlpatterns = [
    path("me", views.MeView.as_view(), name="me"),
    path("releases/", views.ReleaseListView.as_view(), name="releases"),
    path(
        "releases/<slug:slug>/checkpoints/", views.CheckpointListView.as_view(), name="checkpoints"
    ),
    path("checkpoints/<int:checkpoint_id>/manifest", views.ManifestView.as_view(), name="manifest"),
    path("grants/", views.GrantListView.as_view(), name="grants"),
    path("grants/<int:grant_id>", views.GrantDetailView.as_view(), name="grant"),
    path("grants/<int:grant_id>/files/<path:path>", downloads.FileView.as_view(), name="file"),
    path(
        "grant-requests/<int:request_id>",
        views.GrantRequestDetailView.as_view(),
        name="grant-request",
    ),
]
