"""``/.well-known/jwks.json``: the lab's public keys, for anyone to verify with."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .keys import jwks

__all__ = ["JwksView"]


@extend_schema(
    summary="Public keys for grants, manifests and audit checkpoints (RFC 7517)",
    responses={200: OpenApiResponse(response=OpenApiTypes.OBJECT, description="A JWK set")},
)
class JwksView(APIView):
    authentication_classes = []
    permission_classes = []
    throttle_classes = []

    def get(self, request: Request) -> Response:
        response = Response(jwks())
        response["Cache-Control"] = "public, max-age=300"
        return response
