from django.urls import path, register_converter

from . import batch, downloads, staff, tokens, views
from .edge import IdConverter

# Every id in a path: digits a bigint can hold, or no route (404).
register_converter(IdConverter, "id")

app_name = "api"

urlpatterns = [
    path("me", views.MeView.as_view(), name="me"),
    path("releases/", views.ReleaseListView.as_view(), name="releases"),
    path(
        "releases/<slug:slug>/checkpoints/", views.CheckpointListView.as_view(), name="checkpoints"
    ),
    path("checkpoints/<id:checkpoint_id>/manifest", views.ManifestView.as_view(), name="manifest"),
    path("tokens/rotate", tokens.TokenRotateApi.as_view(), name="token-rotate"),
    path("grants/", views.GrantListView.as_view(), name="grants"),
    path("grants/<id:grant_id>", views.GrantDetailView.as_view(), name="grant"),
    path("grants/<id:grant_id>/files/<path:path>", downloads.FileView.as_view(), name="file"),
    path(
        "grants/<id:grant_id>/authorizations",
        batch.AuthorizationsView.as_view(),
        name="authorizations",
    ),
    path(
        "grant-requests/<id:request_id>",
        views.GrantRequestDetailView.as_view(),
        name="grant-request",
    ),
    # Staff automation: one view per operation.
    path("staff/releases/<slug:slug>/checkpoints/", staff.CheckpointRegisterApi.as_view()),
    path("staff/checkpoints/<id:checkpoint_id>/pull", staff.CheckpointPullApi.as_view()),
    path("staff/windows/", staff.WindowCreateApi.as_view()),
    path("staff/windows/<id:window_id>", staff.WindowApi.as_view()),
    path("staff/grants/", staff.GrantIssueApi.as_view()),
    path("staff/grants/<id:grant_id>/revoke", staff.GrantRevokeApi.as_view()),
    path("staff/grant-requests/<id:request_id>/approve", staff.GrantRequestApproveApi.as_view()),
    path("staff/grant-requests/<id:request_id>/reject", staff.GrantRequestRejectApi.as_view()),
    path("staff/partners/<slug:slug>/suspend", staff.PartnerSuspendApi.as_view()),
    path("staff/partners/<slug:slug>/reinstate", staff.PartnerReinstateApi.as_view()),
    path("staff/releases/<slug:slug>/withdraw", staff.ReleaseWithdrawApi.as_view()),
    path("staff/revocations/<id:revocation_id>", staff.RevocationApi.as_view()),
    path("staff/releases/<slug:slug>/detections", staff.DetectionCreateApi.as_view()),
    path("staff/detections/", staff.DetectionListApi.as_view()),
    path("staff/detections/<id:detection_id>", staff.DetectionApi.as_view()),
    path("staff/audit-exports/", staff.AuditExportCreateApi.as_view()),
    path("staff/audit-exports/<id:export_id>", staff.AuditExportApi.as_view()),
    path("staff/audit-exports/<id:export_id>/files/<str:kind>", staff.AuditExportFileApi.as_view()),
]
