"""Revocations: one and the state of its fan-out, and the id every revoking answer names."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from partners.models import Revocation

from ._common import StaffView

__all__ = ["RevocationApi", "RevocationOut", "RevokedOut"]


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
