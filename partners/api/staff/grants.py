"""Issue and revoke grants; approve and reject grant requests."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accessctl.actors import acting_user
from partners import actions
from partners.authority import Operation
from partners.models import Checkpoint, Grant, GrantRequest, Partner

from ..edge import BIGINT_MAX
from ..serializers import QuotaField
from ._common import ReasonSerializer, StaffView, given_reason
from .revocations import RevokedOut

__all__ = [
    "GrantIn",
    "GrantIssueApi",
    "GrantOut",
    "GrantRequestApproveApi",
    "GrantRequestOut",
    "GrantRequestRejectApi",
    "GrantRevokeApi",
    "GrantRevokedOut",
]


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


class GrantRevokedOut(RevokedOut, GrantOut):
    revocation_scope = "grant"

    class Meta(GrantOut.Meta):
        fields = [*GrantOut.Meta.fields, "revocation"]


class GrantIn(serializers.Serializer):
    partner = serializers.SlugField()
    checkpoint = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)
    quota_bytes = QuotaField(
        help_text="At least 1, below 2**63; anything else (not an integer too) is refused "
        "(400, quota_invalid)."
    )
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
            actor=acting_user(request),
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
                actions.revoke_grant(
                    actor=acting_user(request), grant=grant, reason=given_reason(request)
                )
            ).data
        )


class GrantRequestApproveApi(StaffView):
    operation = Operation.GRANT_REQUEST_DECIDE

    @extend_schema(request=None, responses=GrantRequestOut, summary="Approve a grant request")
    def post(self, request: Request, request_id: int) -> Response:
        grant_request = get_object_or_404(GrantRequest, pk=request_id)
        done = actions.approve_grant_request(actor=acting_user(request), request=grant_request)
        return Response(GrantRequestOut(done).data)


class GrantRequestRejectApi(StaffView):
    operation = Operation.GRANT_REQUEST_DECIDE

    @extend_schema(
        request=ReasonSerializer, responses=GrantRequestOut, summary="Reject a grant request"
    )
    def post(self, request: Request, request_id: int) -> Response:
        grant_request = get_object_or_404(GrantRequest, pk=request_id)
        done = actions.reject_grant_request(
            actor=acting_user(request), request=grant_request, reason=given_reason(request)
        )
        return Response(GrantRequestOut(done).data)
