from typing import Any

from django.utils import timezone
from rest_framework import serializers

from partners.models import Checkpoint, EmbargoWindow, Grant, GrantRequest

__all__ = [
    "CheckpointSerializer",
    "GrantRequestInputSerializer",
    "GrantRequestSerializer",
    "GrantSerializer",
    "MeSerializer",
    "ReleaseSerializer",
    "WindowSerializer",
]


class WindowSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField()

    class Meta:
        model = EmbargoWindow
        fields = ["tier", "opens_at", "closes_at", "embargo_lifts_at", "state"]

    def get_state(self, window: EmbargoWindow) -> str:
        return str(window.state_at(timezone.now()).value)


class ReleaseSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    public_release_at = serializers.DateTimeField()
    window = WindowSerializer(allow_null=True)


class CheckpointSerializer(serializers.ModelSerializer):
    release = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    files = serializers.IntegerField(source="file_count", read_only=True)
    size = serializers.IntegerField(source="byte_count", read_only=True)

    class Meta:
        model = Checkpoint
        fields = ["id", "release", "tag", "training_step", "status", "files", "size"]


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
    checkpoint = serializers.IntegerField(min_value=1)
    quota_bytes = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text="Default: twice the checkpoint's size. At most the release's quota factor "
        "(default 4) times the checkpoint's size; more is refused (400, quota_too_large).",
    )
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class MeSerializer(serializers.Serializer):
    user = serializers.CharField()
    partner = serializers.DictField()
    token = serializers.DictField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return dict(instance)
