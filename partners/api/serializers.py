from datetime import datetime
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from partners import states
from partners.models import Checkpoint, EmbargoWindow, Grant, GrantRequest, Release

from .edge import BIGINT_MAX

__all__ = [
    "CheckpointSerializer",
    "GrantRequestInputSerializer",
    "GrantRequestSerializer",
    "GrantSerializer",
    "MeSerializer",
    "QuotaField",
    "ReleaseSerializer",
    "WindowSerializer",
    "window_state",
]


class QuotaField(serializers.IntegerField):
    """A byte quota as the client wrote it. Its range is the action's to check, so every
    out-of-range quota (0 or less, 2**63 or more) is refused the same way on every path:
    400 ``quota_invalid`` and one ``grant.refused`` event (docs/decisions.md). What is not
    an integer at all (``"abc"``, ``1.5``, ``true``) is no valid quota either: it reaches
    the action as 0, refused alike."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool):
            return 0
        try:
            return int(super().to_internal_value(data))
        except serializers.ValidationError:
            return 0


# A window's state as partners see it: ``partners.states.window_state``.
WINDOW_STATES = list(EmbargoWindow.State.values)


def window_state(window: EmbargoWindow, release: Release, at: datetime) -> str:
    window.release = release
    return str(states.window_state(window, at).value)


class WindowSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField()

    class Meta:
        model = EmbargoWindow
        fields = ["tier", "opens_at", "closes_at", "embargo_lifts_at", "state"]

    @extend_schema_field(serializers.ChoiceField(choices=WINDOW_STATES))
    def get_state(self, window: EmbargoWindow) -> str:
        return window_state(window, window.release, timezone.now())


class ReleaseSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    public_release_at = serializers.DateTimeField()
    status = serializers.ChoiceField(
        choices=Release.Status.choices,
        help_text="withdrawn: the lab withdrew the release (kill switch); nothing of it can "
        "be downloaded or granted again.",
    )
    withdrawn_at = serializers.DateTimeField(allow_null=True)
    window = WindowSerializer(allow_null=True)


class CheckpointSerializer(serializers.ModelSerializer):
    release = serializers.SlugRelatedField[Release](slug_field="slug", read_only=True)
    files = serializers.IntegerField(source="file_count", read_only=True)
    size = serializers.IntegerField(source="byte_count", read_only=True)
    status = serializers.SerializerMethodField(
        help_text="pulled: the checkpoint was pulled, or its whole release withdrawn."
    )

    class Meta:
        model = Checkpoint
        fields = ["id", "release", "tag", "training_step", "status", "files", "size"]

    @extend_schema_field(serializers.ChoiceField(choices=Checkpoint.Status.choices))
    def get_status(self, checkpoint: Checkpoint) -> str:
        return str(states.checkpoint_state(checkpoint).value)


class GrantSerializer(serializers.ModelSerializer):
    checkpoint = serializers.IntegerField(source="checkpoint_id")
    release = serializers.CharField(source="checkpoint.release.slug")
    tag = serializers.CharField(source="checkpoint.tag")
    bytes_left = serializers.IntegerField()
    window_opens_at = serializers.DateTimeField(source="window.opens_at")
    token = serializers.SerializerMethodField(
        help_text="Signed grant token (JWS, EdDSA): send it as X-Grant-Token when downloading."
    )

    class Meta:
        model = Grant
        fields = [
            "id",
            "checkpoint",
            "release",
            "tag",
            "status",
            "issued_at",
            "expires_at",
            "window_opens_at",
            "quota_bytes",
            "bytes_used",
            "bytes_left",
            "token",
        ]

    def get_token(self, grant: Grant) -> str | None:
        tokens: dict[int, str] = self.context.get("grant_tokens", {})
        return tokens.get(grant.pk)


class GrantRequestSerializer(serializers.ModelSerializer):
    checkpoint = serializers.IntegerField(source="checkpoint_id")
    grant = serializers.SerializerMethodField()

    class Meta:
        model = GrantRequest
        fields = [
            "id",
            "checkpoint",
            "status",
            "quota_bytes",
            "note",
            "requested_at",
            "approvals_required",
            "decided_at",
            "rejection_reason",
            "grant",
        ]

    def get_grant(self, request: GrantRequest) -> int | None:
        grant = getattr(request, "grant", None)
        return grant.pk if grant else None


class GrantRequestInputSerializer(serializers.Serializer):
    checkpoint = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)
    quota_bytes = QuotaField(
        required=False,
        help_text="Default: twice the checkpoint's size. At most the release's quota factor "
        "(default 4) times the checkpoint's size; more is refused (400, quota_too_large); "
        "less than 1, 2**63 or more, or not an integer: 400, quota_invalid.",
    )
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class MeSerializer(serializers.Serializer):
    user = serializers.CharField()
    partner = serializers.DictField()
    token = serializers.DictField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return dict(instance)
