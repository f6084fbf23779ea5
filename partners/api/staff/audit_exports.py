"""Audit exports: request one, follow it, download its files."""

from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accessctl.actors import acting_user
from accessctl.audit.exports import ExportError, request_export
from accessctl.audit.exports import storage as export_storage
from accessctl.audit.models import AuditExport
from partners.authority import Operation
from partners.errors import ActionError, ActionForbidden

from ._common import StaffView

__all__ = [
    "AuditExportApi",
    "AuditExportCreateApi",
    "AuditExportFileApi",
    "AuditExportIn",
    "AuditExportOut",
    "ExportFileOut",
]


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
            export = request_export(actor=acting_user(request), filters=dict(data.validated_data))
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
