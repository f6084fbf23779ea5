"""Staff API for automation (release pipelines, incident response).

One view per operation; each parses, calls one action and renders. The action checks
the token user's own permissions, so a token can do no more than its owner.
"""

from typing import Any

from django.core.validators import ProhibitNullCharactersValidator
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accessctl.audit.exports import ExportError, request_export
from accessctl.audit.exports import storage as export_storage
from accessctl.audit.models import AuditExport
from partners import actions
from partners.authority import Operation, authorize
from partners.errors import ActionError, ActionForbidden
from partners.models import (
    Checkpoint,
    EmbargoWindow,
    Grant,
    GrantRequest,
    Partner,
    Release,
    Revocation,
)

from .auth import StaffCaller
from .edge import BIGINT_MAX

__all__ = [
    "AuditExportApi",
    "AuditExportCreateApi",
    "AuditExportFileApi",
    "CheckpointPullApi",
    "CheckpointRegisterApi",
    "GrantIssueApi",
    "GrantRequestApproveApi",
    "GrantRequestRejectApi",
    "GrantRevokeApi",
    "PartnerReinstateApi",
    "PartnerSuspendApi",
    "ReleaseWithdrawApi",
    "RevocationApi",
    "WindowApi",
    "WindowCreateApi",
]


class StaffView(APIView):
    # A staff operation: the token's owner must be allowed ``operation`` by the authority
    # table before anything in the request is parsed (the action checks it again, with its
    # target). A comment, not a docstring: the schema would show it on every operation.

    permission_classes = [StaffCaller]
    required_scope = "staff"
    operation: Operation | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if self.operation is not None:
            authorize(request.user, self.operation)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300)


def _reason(request: Request) -> str:
    data = ReasonSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    return str(data.validated_data["reason"])


class PartnerOut(serializers.ModelSerializer):
    jurisdiction = serializers.CharField()

    class Meta:
        model = Partner
        fields = ["slug", "legal_name", "jurisdiction", "status", "status_reason", "nda_expires_at"]


class ReleaseOut(serializers.ModelSerializer):
    class Meta:
        model = Release
        fields = ["slug", "name", "status", "public_release_at", "withdrawn_at", "withdrawn_reason"]


class RevocationOut(serializers.ModelSerializer):
    """A revocation and its fan-out: ``status`` becomes ``done`` when every dependent
    grant is revoked, pending requests rejected and notifications queued."""

    target = serializers.SerializerMethodField()

    class Meta:
        model = Revocation
        fields = [
            "id",
            "scope",
            "target",
            "reason",
            "effective_at",
            "status",
            "grants_revoked",
            "requests_rejected",
            "tokens_revoked",
            "notifications_queued",
            "completed_at",
        ]

    def get_target(self, obj: Revocation) -> str:
        return str(obj.target)


def _latest_revocation(scope: str, obj: object) -> int | None:
    return (
        Revocation.objects.filter(scope=scope, **{scope: obj})
        .order_by("-effective_at")
        .values_list("pk", flat=True)
        .first()
    )


class RevokedOut(serializers.Serializer):
    """Adds ``revocation``: the id to follow at ``/api/v1/staff/revocations/{id}``."""

    revocation_scope = ""
    revocation = serializers.SerializerMethodField()

    def get_revocation(self, obj: object) -> int | None:
        return _latest_revocation(self.revocation_scope, obj)


class CheckpointOut(serializers.ModelSerializer):
    release = serializers.SlugRelatedField[Release](slug_field="slug", read_only=True)

    class Meta:
        model = Checkpoint
        fields = ["id", "release", "tag", "training_step", "status", "pulled_at", "pulled_reason"]


class WindowOut(serializers.ModelSerializer):
    release = serializers.SlugRelatedField[Release](slug_field="slug", read_only=True)
    partner = serializers.SlugRelatedField[Partner](slug_field="slug", read_only=True)

    class Meta:
        model = EmbargoWindow
        fields = ["id", "release", "partner", "tier", "opens_at", "closes_at", "embargo_lifts_at"]


class GrantOut(serializers.ModelSerializer):
    partner = serializers.SlugRelatedField[Partner](slug_field="slug", read_only=True)

    class Meta:
        model = Grant
        fields = [
            "id",
            "partner",
            "checkpoint",
            "window",
            "status",
            "issued_at",
            "expires_at",
            "quota_bytes",
            "bytes_used",
            "revoked_at",
            "revoke_reason",
        ]


class GrantRequestOut(serializers.ModelSerializer):
    approvals = serializers.SerializerMethodField()
    grant = serializers.SerializerMethodField()

    class Meta:
        model = GrantRequest
        fields = [
            "id",
            "partner",
            "checkpoint",
            "status",
            "approvals_required",
            "approvals",
            "grant",
        ]

    def get_approvals(self, obj: GrantRequest) -> int:
        return obj.approvals.count()

    def get_grant(self, obj: GrantRequest) -> int | None:
        grant = Grant.objects.filter(request=obj).values_list("pk", flat=True).first()
        return grant


class PartnerSuspendedOut(RevokedOut, PartnerOut):
    revocation_scope = "partner"

    class Meta(PartnerOut.Meta):
        fields = [*PartnerOut.Meta.fields, "revocation"]


class CheckpointPulledOut(RevokedOut, CheckpointOut):
    revocation_scope = "checkpoint"

    class Meta(CheckpointOut.Meta):
        fields = [*CheckpointOut.Meta.fields, "revocation"]


class GrantRevokedOut(RevokedOut, GrantOut):
    revocation_scope = "grant"

    class Meta(GrantOut.Meta):
        fields = [*GrantOut.Meta.fields, "revocation"]


class ReleaseWithdrawnOut(RevokedOut, ReleaseOut):
    revocation_scope = "release"

    class Meta(ReleaseOut.Meta):
        fields = [*ReleaseOut.Meta.fields, "revocation"]


class ArtifactPathField(serializers.CharField):
    """Text as sent: ``register_checkpoint`` judges the path (``artifact_path_invalid``),
    so a NUL, a control character or padding is refused with that code, never stripped."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trim_whitespace=False, allow_blank=True, **kwargs)
        self.validators = [
            v
            for v in self.validators  # type: ignore[has-type]  # DRF's property, unstubbed
            if not isinstance(v, ProhibitNullCharactersValidator)
        ]


class ArtifactIn(serializers.Serializer):
    path = ArtifactPathField(
        help_text="Relative POSIX path inside the checkpoint: at most 500 characters, no "
        "leading '/', no '.', '..' or empty segment, no backslash, no control character."
    )
    size = serializers.IntegerField(min_value=0, max_value=BIGINT_MAX)
    sha256 = serializers.RegexField(r"^[0-9a-f]{64}$")
    storage_key = serializers.CharField(
        max_length=700,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="Optional, and derived by the server: '{release}/{tag}/{path}'. Any other "
        "value is refused (400 storage_key_not_derived). The object must already be there.",
    )


class CheckpointIn(serializers.Serializer):
    tag = serializers.SlugField(max_length=64)
    training_step = serializers.IntegerField(
        min_value=0, max_value=BIGINT_MAX, required=False, allow_null=True
    )
    artifacts = ArtifactIn(many=True, allow_empty=False)


class CheckpointRegisterApi(StaffView):
    operation = Operation.CHECKPOINT_REGISTER

    @extend_schema(
        request=CheckpointIn,
        responses={200: CheckpointOut, 201: CheckpointOut},
        summary="Register a checkpoint's files, already in artifact storage (idempotent)",
    )
    def post(self, request: Request, slug: str) -> Response:
        release = get_object_or_404(Release, slug=slug)
        data = CheckpointIn(data=request.data)
        data.is_valid(raise_exception=True)
        result = actions.register_checkpoint(
            actor=request.user,
            release=release,
            tag=data.validated_data["tag"],
            training_step=data.validated_data.get("training_step"),
            artifacts=[actions.ArtifactSpec(**a) for a in data.validated_data["artifacts"]],
        )
        created = bool(result.added) and not result.unchanged
        return Response(
            {
                **CheckpointOut(result.checkpoint).data,
                "added": result.added,
                "unchanged": result.unchanged,
            },
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class CheckpointPullApi(StaffView):
    operation = Operation.CHECKPOINT_PULL

    @extend_schema(
        request=ReasonSerializer,
        responses=CheckpointPulledOut,
        summary="Pull a checkpoint: every download of it stops now",
    )
    def post(self, request: Request, checkpoint_id: int) -> Response:
        checkpoint = get_object_or_404(Checkpoint, pk=checkpoint_id)
        done = actions.pull_checkpoint(
            actor=request.user, checkpoint=checkpoint, reason=_reason(request)
        )
        return Response(CheckpointPulledOut(done).data)


class WindowIn(serializers.Serializer):
    release = serializers.SlugField()
    partner = serializers.SlugField()
    opens_at = serializers.DateTimeField()
    closes_at = serializers.DateTimeField()
    embargo_lifts_at = serializers.DateTimeField(required=False, allow_null=True)
    tier = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")


def _set_window(request: Request, window: EmbargoWindow | None) -> EmbargoWindow:
    data = WindowIn(data=request.data)
    data.is_valid(raise_exception=True)
    values = data.validated_data
    return actions.set_window(
        actor=request.user,
        release=get_object_or_404(Release, slug=values["release"]),
        partner=get_object_or_404(Partner, slug=values["partner"]),
        opens_at=values["opens_at"],
        closes_at=values["closes_at"],
        embargo_lifts_at=values.get("embargo_lifts_at"),
        tier=values["tier"],
        window=window,
    )


class WindowCreateApi(StaffView):
    operation = Operation.WINDOW_CREATE

    @extend_schema(request=WindowIn, responses={201: WindowOut}, summary="Set a new embargo window")
    def post(self, request: Request) -> Response:
        return Response(WindowOut(_set_window(request, None)).data, status=status.HTTP_201_CREATED)


class WindowApi(StaffView):
    operation = Operation.WINDOW_CHANGE

    @extend_schema(request=WindowIn, responses=WindowOut, summary="Move an embargo window")
    def put(self, request: Request, window_id: int) -> Response:
        window = get_object_or_404(EmbargoWindow, pk=window_id)
        return Response(WindowOut(_set_window(request, window)).data)


class GrantIn(serializers.Serializer):
    partner = serializers.SlugField()
    checkpoint = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)
    quota_bytes = serializers.IntegerField(min_value=1)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class GrantIssueApi(StaffView):
    operation = Operation.GRANT_ISSUE

    @extend_schema(
        request=GrantIn,
        responses={201: GrantOut},
        summary="Issue a grant (after the public release)",
    )
    def post(self, request: Request) -> Response:
        data = GrantIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        grant = actions.issue_grant(
            actor=request.user,
            partner=get_object_or_404(Partner, slug=values["partner"]),
            checkpoint=get_object_or_404(Checkpoint, pk=values["checkpoint"]),
            quota_bytes=values["quota_bytes"],
            expires_at=values.get("expires_at"),
        )
        return Response(GrantOut(grant).data, status=status.HTTP_201_CREATED)


class GrantRevokeApi(StaffView):
    operation = Operation.GRANT_REVOKE

    @extend_schema(
        request=ReasonSerializer,
        responses=GrantRevokedOut,
        summary="Revoke a grant, effective on the next request",
    )
    def post(self, request: Request, grant_id: int) -> Response:
        grant = get_object_or_404(Grant, pk=grant_id)
        return Response(
            GrantRevokedOut(
                actions.revoke_grant(actor=request.user, grant=grant, reason=_reason(request))
            ).data
        )


class GrantRequestApproveApi(StaffView):
    operation = Operation.GRANT_REQUEST_DECIDE

    @extend_schema(request=None, responses=GrantRequestOut, summary="Approve a grant request")
    def post(self, request: Request, request_id: int) -> Response:
        grant_request = get_object_or_404(GrantRequest, pk=request_id)
        done = actions.approve_grant_request(actor=request.user, request=grant_request)
        return Response(GrantRequestOut(done).data)


class GrantRequestRejectApi(StaffView):
    operation = Operation.GRANT_REQUEST_DECIDE

    @extend_schema(
        request=ReasonSerializer, responses=GrantRequestOut, summary="Reject a grant request"
    )
    def post(self, request: Request, request_id: int) -> Response:
        grant_request = get_object_or_404(GrantRequest, pk=request_id)
        done = actions.reject_grant_request(
            actor=request.user, request=grant_request, reason=_reason(request)
        )
        return Response(GrantRequestOut(done).data)


class PartnerSuspendApi(StaffView):
    operation = Operation.PARTNER_SUSPEND

    @extend_schema(
        request=ReasonSerializer,
        responses=PartnerSuspendedOut,
        summary="Suspend a partner: every download stops now, the fan-out revokes its grants",
    )
    def post(self, request: Request, slug: str) -> Response:
        partner = get_object_or_404(Partner, slug=slug)
        return Response(
            PartnerSuspendedOut(
                actions.suspend_partner(
                    actor=request.user, partner=partner, reason=_reason(request)
                )
            ).data
        )


class PartnerReinstateApi(StaffView):
    operation = Operation.PARTNER_REINSTATE

    @extend_schema(
        request=ReasonSerializer, responses=PartnerOut, summary="Reinstate a suspended partner"
    )
    def post(self, request: Request, slug: str) -> Response:
        partner = get_object_or_404(Partner, slug=slug)
        return Response(
            PartnerOut(
                actions.reinstate_partner(
                    actor=request.user, partner=partner, reason=_reason(request)
                )
            ).data
        )


class ReleaseWithdrawApi(StaffView):
    operation = Operation.RELEASE_WITHDRAW

    @extend_schema(
        request=ReasonSerializer,
        responses=ReleaseWithdrawnOut,
        summary="Kill switch: withdraw a release; every download of it stops (security officers)",
    )
    def post(self, request: Request, slug: str) -> Response:
        release = get_object_or_404(Release, slug=slug)
        done = actions.withdraw_release(
            actor=request.user, release=release, reason=_reason(request)
        )
        return Response(ReleaseWithdrawnOut(done).data)


class RevocationApi(StaffView):
    @extend_schema(responses=RevocationOut, summary="A revocation and the state of its fan-out")
    def get(self, request: Request, revocation_id: int) -> Response:
        if not request.user.has_perm("partners.view_revocation"):
            raise PermissionDenied
        revocation = get_object_or_404(
            Revocation.objects.select_related(
                "partner", "checkpoint__release", "release", "grant", "token"
            ),
            pk=revocation_id,
        )
        return Response(RevocationOut(revocation).data)


class AuditExportIn(serializers.Serializer):
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    partner = serializers.SlugField(required=False)
    release = serializers.SlugField(required=False)
    action = serializers.CharField(required=False, max_length=64)
    outcome = serializers.ChoiceField(choices=["success", "denied", "failure"], required=False)


class ExportFileOut(serializers.Serializer):
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    url = serializers.CharField()


class AuditExportOut(serializers.ModelSerializer):
    files = serializers.SerializerMethodField(help_text="jsonl, csv and ocsf, when ready")

    class Meta:
        model = AuditExport
        fields = ["id", "status", "filters", "requested_at", "events", "tree_size", "files"]

    @extend_schema_field(serializers.DictField(child=ExportFileOut()))
    def get_files(self, obj: AuditExport) -> dict[str, dict[str, object]]:
        return {
            kind: {
                "size": meta["size"],
                "sha256": meta["sha256"],
                "url": f"/api/v1/staff/audit-exports/{obj.pk}/files/{kind}",
            }
            for kind, meta in obj.files.items()
        }


class AuditExportCreateApi(StaffView):
    operation = Operation.AUDIT_EXPORT

    @extend_schema(
        request=AuditExportIn,
        responses={202: AuditExportOut},
        summary="Export the audit trail (written in the background; poll the export)",
    )
    def post(self, request: Request) -> Response:
        data = AuditExportIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            export = request_export(actor=request.user, filters=dict(data.validated_data))
        except ExportError as exc:
            if exc.code == "forbidden":
                raise ActionForbidden(str(Operation.AUDIT_EXPORT), exc.message) from exc
            raise ActionError(exc.code, exc.message) from exc
        return Response(AuditExportOut(export).data, status=status.HTTP_202_ACCEPTED)


class AuditExportApi(StaffView):
    operation = Operation.AUDIT_EXPORT

    @extend_schema(responses=AuditExportOut, summary="An export: its status and files")
    def get(self, request: Request, export_id: int) -> Response:
        return Response(AuditExportOut(get_object_or_404(AuditExport, pk=export_id)).data)


class AuditExportFileApi(StaffView):
    operation = Operation.AUDIT_EXPORT

    @extend_schema(
        responses={(200, "application/octet-stream"): bytes},
        summary="Download one file of a ready export (jsonl, csv or ocsf)",
    )
    def get(self, request: Request, export_id: int, kind: str) -> FileResponse:
        export = get_object_or_404(AuditExport, pk=export_id, status=AuditExport.Status.READY)
        if kind not in export.files:
            raise Http404
        name = export.files[kind]["name"]
        return FileResponse(
            export_storage().open(name, "rb"), as_attachment=True, filename=name.rsplit("/", 1)[-1]
        )
