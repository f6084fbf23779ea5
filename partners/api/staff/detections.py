"""Leak attribution: submit a suspect file set; follow a detection; read its signed report."""

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, parsers, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from accessctl.actors import acting_user
from partners import actions
from partners.actions.detections import MAX_FILES
from partners.authority import Operation
from partners.models import Detection, Release

from ..views import Cursor
from ._common import StaffView

__all__ = ["DetectionApi", "DetectionCreateApi", "DetectionIn", "DetectionListApi", "DetectionOut"]

VIEW_PERMISSION = "partners.view_detection"


class DetectionIn(serializers.Serializer):
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True),
        help_text=f"1 to {MAX_FILES} suspect files (safetensors or GGUF), multipart, one "
        "'files' part each.",
    )
    reason = serializers.CharField(max_length=300, help_text="Why: kept in the audit trail.")


class SuspectFileOut(serializers.Serializer):
    name = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    format = serializers.CharField()


class DetectionOut(serializers.ModelSerializer):
    """A detection. ``report`` and ``signature`` are set once ``status`` is ``done``: the
    report (per-partner z and false-positive probability, verdict, compared tensors,
    commitments) and the lab's detached Ed25519 signature over its canonical JSON,
    verifiable offline (``accessctl verify-report``)."""

    release = serializers.SlugRelatedField[Release](slug_field="slug", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    suspect_files = serializers.SerializerMethodField()
    report = serializers.JSONField(read_only=True)
    signature = serializers.JSONField(read_only=True)

    class Meta:
        model = Detection
        fields = [
            "id",
            "release",
            "requested_by",
            "reason",
            "status",
            "verdict",
            "named",
            "suspect_files",
            "error",
            "created_at",
            "finished_at",
            "report",
            "signature",
        ]

    @extend_schema_field(SuspectFileOut(many=True))
    def get_suspect_files(self, obj: Detection) -> list[dict[str, Any]]:
        # Never the storage key: where the suspect's bytes live is the server's business.
        return [
            {k: f.get(k, "") for k in ("name", "size", "sha256", "format")}
            for f in obj.suspect_files
        ]


def _may_view(request: Request, *, listing: bool = False) -> None:
    if not request.user.has_perm(VIEW_PERMISSION):
        refused = PermissionDenied()
        if listing:  # the URL names no detection: the refusal's evidence names the list
            refused.decided_target = ("partners.detection", "", "detections")  # type: ignore[attr-defined]
        raise refused


class DetectionCreateApi(StaffView):
    operation = Operation.DETECTION_RUN
    parser_classes = [parsers.MultiPartParser, parsers.FormParser]

    @extend_schema(
        request={"multipart/form-data": DetectionIn},
        responses={202: DetectionOut},
        summary="Submit a suspect file set for leak attribution (runs in the background)",
    )
    def post(self, request: Request, slug: str) -> Response:
        release = get_object_or_404(Release, slug=slug)
        fields = request.data if isinstance(request.data, dict) else {}
        data = DetectionIn(
            data={"files": request.FILES.getlist("files"), "reason": fields.get("reason")}
        )
        data.is_valid(raise_exception=True)
        detection = actions.request_detection(
            actor=acting_user(request),
            release=release,
            files=data.validated_data["files"],
            reason=data.validated_data["reason"],
        )
        return Response(DetectionOut(detection).data, status=status.HTTP_202_ACCEPTED)


class DetectionApi(StaffView):
    @extend_schema(responses=DetectionOut, summary="A detection: status, verdict, signed report")
    def get(self, request: Request, detection_id: int) -> Response:
        _may_view(request)
        detection = get_object_or_404(
            Detection.objects.select_related("release", "requested_by"), pk=detection_id
        )
        return Response(DetectionOut(detection).data)


@extend_schema(
    summary="Detections, newest first",
    parameters=[OpenApiParameter("release", str, description="Only this release's (slug)")],
)
class DetectionListApi(StaffView, generics.ListAPIView):
    serializer_class = DetectionOut
    pagination_class = Cursor

    def get_queryset(self) -> QuerySet[Detection]:
        _may_view(self.request, listing=True)
        found = Detection.objects.select_related("release", "requested_by")
        release = self.request.query_params.get("release")
        if release:
            found = found.filter(release__slug=release)
        return found.order_by("-id")
