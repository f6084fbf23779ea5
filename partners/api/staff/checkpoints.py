"""Register a checkpoint's files; pull a checkpoint."""

from typing import Any

from django.core.validators import ProhibitNullCharactersValidator
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accessctl.actors import acting_user
from partners import actions
from partners.authority import Operation
from partners.models import Checkpoint, Release

from ..edge import BIGINT_MAX
from ._common import ReasonSerializer, StaffView, given_reason
from .revocations import RevokedOut

__all__ = [
    "ArtifactIn",
    "ArtifactPathField",
    "CheckpointIn",
    "CheckpointOut",
    "CheckpointPullApi",
    "CheckpointPulledOut",
    "CheckpointRegisterApi",
]


class CheckpointOut(serializers.ModelSerializer):
    release = serializers.SlugRelatedField[Release](slug_field="slug", read_only=True)

    class Meta:
        model = Checkpoint
        fields = ["id", "release", "tag", "training_step", "status", "pulled_at", "pulled_reason"]


class CheckpointPulledOut(RevokedOut, CheckpointOut):
    revocation_scope = "checkpoint"

    class Meta(CheckpointOut.Meta):
        fields = [*CheckpointOut.Meta.fields, "revocation"]


class ArtifactPathField(serializers.CharField):
    """Text as sent: ``register_checkpoint`` judges the path (``artifact_path_invalid``),
    so a NUL, a control character or padding is refused with that code, never stripped."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trim_whitespace=False, allow_blank=True, **kwargs)
        self.validators = [
            v
            for v in self.validators  # type: ignore[has-type]  # DRF's property, unstubbed
            if not isinstance(v, ProhibitNullCharactersValidator)
        ]


class ArtifactIn(serializers.Serializer):
    path = ArtifactPathField(
        help_text="Relative POSIX path inside the checkpoint: at most 500 characters, no "
        "leading '/', no '.', '..' or empty segment, no backslash, no control character."
    )
    size = serializers.IntegerField(min_value=0, max_value=BIGINT_MAX)
    sha256 = serializers.RegexField(r"^[0-9a-f]{64}$")
    storage_key = serializers.CharField(
        max_length=700,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="Optional, and derived by the server: '{release}/{tag}/{path}'. Any other "
        "value is refused (400 storage_key_not_derived). The object must already be there.",
    )


class CheckpointIn(serializers.Serializer):
    tag = serializers.SlugField(max_length=64)
    training_step = serializers.IntegerField(
        min_value=0, max_value=BIGINT_MAX, required=False, allow_null=True
    )
    artifacts = ArtifactIn(many=True, allow_empty=False)


class CheckpointRegisterApi(StaffView):
    operation = Operation.CHECKPOINT_REGISTER

    @extend_schema(
        request=CheckpointIn,
        responses={200: CheckpointOut, 201: CheckpointOut},
        summary="Register a checkpoint's files, already in artifact storage (idempotent)",
    )
    def post(self, request: Request, slug: str) -> Response:
        release = get_object_or_404(Release, slug=slug)
        data = CheckpointIn(data=request.data)
        data.is_valid(raise_exception=True)
        result = actions.register_checkpoint(
            actor=acting_user(request),
            release=release,
            tag=data.validated_data["tag"],
            training_step=data.validated_data.get("training_step"),
            artifacts=[actions.ArtifactSpec(**a) for a in data.validated_data["artifacts"]],
        )
        created = bool(result.added) and not result.unchanged
        return Response(
            {
                **CheckpointOut(result.checkpoint).data,
                "added": result.added,
                "unchanged": result.unchanged,
            },
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class CheckpointPullApi(StaffView):
    operation = Operation.CHECKPOINT_PULL

    @extend_schema(
        request=ReasonSerializer,
        responses=CheckpointPulledOut,
        summary="Pull a checkpoint: every download of it stops now",
    )
    def post(self, request: Request, checkpoint_id: int) -> Response:
        checkpoint = get_object_or_404(Checkpoint, pk=checkpoint_id)
        done = actions.pull_checkpoint(
            actor=acting_user(request), checkpoint=checkpoint, reason=given_reason(request)
        )
        return Response(CheckpointPulledOut(done).data)
