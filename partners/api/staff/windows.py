"""Set and move embargo windows."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accessctl.actors import acting_user
from partners import actions
from partners.authority import Operation
from partners.models import EmbargoWindow, Partner, Release

from ._common import StaffView

__all__ = ["WindowApi", "WindowCreateApi", "WindowIn", "WindowOut"]


class WindowOut(serializers.ModelSerializer):
    release = serializers.SlugRelatedField[Release](slug_field="slug", read_only=True)
    partner = serializers.SlugRelatedField[Partner](slug_field="slug", read_only=True)

    class Meta:
        model = EmbargoWindow
        fields = ["id", "release", "partner", "tier", "opens_at", "closes_at", "embargo_lifts_at"]


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
        actor=acting_user(request),
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
