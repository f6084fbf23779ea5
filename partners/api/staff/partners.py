"""Suspend and reinstate a partner."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accessctl.actors import acting_user
from partners import actions
from partners.authority import Operation
from partners.models import Partner

from ._common import ReasonSerializer, StaffView, given_reason
from .revocations import RevokedOut

__all__ = ["PartnerOut", "PartnerReinstateApi", "PartnerSuspendApi", "PartnerSuspendedOut"]


class PartnerOut(serializers.ModelSerializer):
    jurisdiction = serializers.CharField()

    class Meta:
        model = Partner
        fields = ["slug", "legal_name", "jurisdiction", "status", "status_reason", "nda_expires_at"]


class PartnerSuspendedOut(RevokedOut, PartnerOut):
    revocation_scope = "partner"

    class Meta(PartnerOut.Meta):
        fields = [*PartnerOut.Meta.fields, "revocation"]


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
                    actor=acting_user(request), partner=partner, reason=given_reason(request)
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
                    actor=acting_user(request), partner=partner, reason=given_reason(request)
                )
            ).data
        )
