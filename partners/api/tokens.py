"""A partner rotates the token it holds, with that token: no staff involved."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from partners import actions

from .auth import PartnerCaller
from .views import NoStore

__all__ = ["TokenRotateApi"]


class RotatedTokenOut(serializers.Serializer):
    token = serializers.CharField(help_text="The new secret, shown this once.")
    prefix = serializers.CharField()
    name = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField()
    replaces = serializers.CharField(help_text="The prefix of the token just revoked.")


class TokenRotateApi(NoStore, APIView):
    """Any partner token may rotate itself, whatever its scopes; the caller rules (partner
    status, NDA, address ranges) still apply, so a refused token cannot renew itself."""

    permission_classes = [PartnerCaller]
    required_scope = None

    @extend_schema(
        request=None,
        responses={201: RotatedTokenOut, 403: OpenApiResponse(description="Refused")},
        summary="Replace the presented token's secret: the old one stops working now",
    )
    def post(self, request: Request) -> Response:
        old = request.auth
        new, secret = actions.rotate_token(actor=request.user, token=old)
        body = RotatedTokenOut(
            {
                "token": secret,
                "prefix": new.prefix,
                "name": new.name,
                "scopes": new.scopes,
                "expires_at": new.expires_at,
                "replaces": old.prefix,
            }
        ).data
        return Response(
            body,
            status=status.HTTP_201_CREATED,
        )
