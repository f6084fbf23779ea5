"""Withdraw a release (the kill switch)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accessctl.actors import acting_user
from partners import actions
from partners.authority import Operation
from partners.models import Release

from ._common import ReasonSerializer, StaffView, given_reason
from .revocations import RevokedOut

__all__ = ["ReleaseOut", "ReleaseWithdrawApi", "ReleaseWithdrawnOut"]


class ReleaseOut(serializers.ModelSerializer):
    class Meta:
        model = Release
        fields = ["slug", "name", "status", "public_release_at", "withdrawn_at", "withdrawn_reason"]


class ReleaseWithdrawnOut(RevokedOut, ReleaseOut):
    revocation_scope = "release"

    class Meta(ReleaseOut.Meta):
        fields = [*ReleaseOut.Meta.fields, "revocation"]


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
            actor=acting_user(request), release=release, reason=given_reason(request)
        )
        return Response(ReleaseWithdrawnOut(done).data)
