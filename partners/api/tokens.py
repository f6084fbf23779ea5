"""A token's holder rotates it, with that token: a partner's token with no staff involved,
a staff member's own token likewise."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accessctl.actors import acting_user
from partners import actions
from partners.models import AccessToken

from .auth import PartnerCaller, StaffCaller, presented_token
from .views import NoStore

__all__ = ["TokenRotateApi"]


class RotatedTokenOut(serializers.Serializer):
    token = serializers.CharField(help_text="The new secret, shown this once.")
    prefix = serializers.CharField()
    name = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField()
    replaces = serializers.CharField(help_text="The prefix of the token just revoked.")


class OwnTokenCaller(permissions.BasePermission):
    """Any token, presented by its holder: a partner token under the partner caller rules
    (partner status, NDA, address ranges, membership), a staff token under the staff ones
    (its address ranges, its owner still active staff). A refused token cannot renew
    itself either way."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        token = request.auth
        if isinstance(token, AccessToken) and token.partner_id is None:
            return StaffCaller().has_permission(request, view)
        return PartnerCaller().has_permission(request, view)


class TokenRotateApi(NoStore, APIView):
    """Any token may rotate itself, whatever its scopes: a partner token under the partner
    caller rules, a staff token under the staff ones, so a refused token cannot renew
    itself."""

    permission_classes = [OwnTokenCaller]
    required_scope = None

    @extend_schema(
        request=None,
        responses={201: RotatedTokenOut, 403: OpenApiResponse(description="Refused")},
        summary="Replace the presented token's secret: the old one stops working now",
    )
    def post(self, request: Request) -> Response:
        old = presented_token(request)
        new, secret = actions.rotate_token(actor=acting_user(request), token=old)
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
