"""``POST /api/v1/grants/{id}/authorizations``: authorize many files of a grant in one
request (docs/api.md, *Batch authorization*).

A download of many small files pays one API round trip per file; this answers up to
``MAX_FILES`` files at once. Each file is decided, debited under its lease and recorded
exactly as its own ``GET /api/v1/grants/{id}/files/{path}`` would be, one after another
(``actions.authorize_downloads``: on PostgreSQL a few statements for all files): a file
re-asked within its lease is not charged again, whichever route asked first. The grant is
checked first, as ``FileView`` checks it (caller, export control, grant token, the grant's
own rules): refused there, the whole request is refused with the same problem+json.
"""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accessctl.actors import acting_user
from accessctl.audit.events import AuditAction
from partners import actions, queries
from partners.decisions import Reason
from partners.models import Artifact, Grant
from partners.storage import artifact_storage

from . import downloads, ratelimit
from .auth import PartnerCaller, caller_partner, presented_token, token_facts
from .downloads import CACHE_CONTROL, CONTENT_TYPE, _grant_token, attachment, grant_refusal
from .errors import Hidden, Problem

__all__ = ["MAX_FILES", "AuthorizationsView"]

# Files per request. Each is one decision, one lease charge, one audit event and one
# presigned URL (1-2 ms of the server's time each on the project's busy VM, about half
# of it the URL's signature): 256 keeps a request well under a second and its
# body (paths of at most 500 characters) under the API's body limit.
MAX_FILES = 256
_POSITION_MAX = 2**63 - 1


class _Position(serializers.IntegerField):
    """A byte position: a JSON integer, 0 to 2**63 - 1 (not a string, float or boolean)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=0, max_value=_POSITION_MAX, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        if not isinstance(data, int) or isinstance(data, bool):
            raise serializers.ValidationError("A byte position is a JSON integer.")
        return int(super().to_internal_value(data))


class _Path(serializers.CharField):
    """A file's path: a JSON string (not a number a CharField would turn into one)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError("A path is a JSON string.")
        return str(super().to_internal_value(data))


class FileAskSerializer(serializers.Serializer):
    path = _Path(
        max_length=500,
        trim_whitespace=False,
        help_text="The file's path as the manifest names it.",
    )
    start = _Position(
        required=False, help_text="First byte (default 0); at or past the end: 416 for the file."
    )
    end = _Position(
        required=False,
        help_text="Last byte, inclusive, as in HTTP's Range (default: the last; past the "
        "end: clipped).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("end", _POSITION_MAX) < attrs.get("start", 0):
            raise serializers.ValidationError({"end": "end is before start."})
        return attrs


class AuthorizationsInputSerializer(serializers.Serializer):
    files = serializers.ListField(
        child=FileAskSerializer(),
        allow_empty=False,
        help_text=f"1 to {MAX_FILES} files, each path once; more: 400 too_many_files.",
    )

    def validate_files(self, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        paths = [f["path"] for f in files]
        if len(set(paths)) != len(paths):
            raise serializers.ValidationError("A path is named twice: name each file once.")
        return files


class FileAuthorizationSerializer(serializers.Serializer):
    path = serializers.CharField()
    status = serializers.IntegerField(help_text="200, or the file's refusal (4xx).")
    url = serializers.URLField(
        required=False, help_text="s3 mode: the presigned GET URL (send `range` with it)."
    )
    href = serializers.CharField(
        required=False,
        help_text="local and nginx modes: the file's API path; its GET is covered by the "
        "lease (not charged again).",
    )
    range = serializers.CharField(
        required=False, help_text="The Range header to send (`bytes=A-B`), when one was asked."
    )
    size = serializers.IntegerField(required=False)
    sha256 = serializers.CharField(required=False)
    expires_at = serializers.DateTimeField(required=False, help_text="When `url` expires.")
    code = serializers.CharField(required=False, help_text="The refusal's stable code.")
    detail = serializers.CharField(required=False)


class AuthorizationsSerializer(serializers.Serializer):
    grant = serializers.IntegerField()
    files = FileAuthorizationSerializer(many=True)


def _asks(data: Any) -> list[dict[str, Any]]:
    """The validated ``files`` of a body; 400 ``too_many_files`` or ``invalid``."""
    files = data.get("files") if isinstance(data, dict) else None
    if isinstance(files, list) and len(files) > MAX_FILES:
        raise Problem(
            400,
            "too_many_files",
            f"At most {MAX_FILES} files per request; this one names {len(files)}.",
        )
    body = AuthorizationsInputSerializer(data=data)
    body.is_valid(raise_exception=True)
    return list(body.validated_data["files"])


def _authorized(grant: Grant, answer: Any, mode: str) -> dict[str, Any]:
    artifact: Artifact = answer.ask.artifact
    ranged = answer.ask.start is not None or answer.ask.end is not None
    out: dict[str, Any] = {"path": answer.ask.path, "status": 200}
    range_header = f"bytes={answer.start}-{answer.end}" if ranged else ""
    if mode == "s3":
        # As FileView's redirect: storage sends these headers; a ranged URL carries its
        # Range as a signed header, so storage gives what was charged and no more.
        parameters = {
            "ResponseCacheControl": CACHE_CONTROL,
            "ResponseContentDisposition": attachment(artifact.path.rsplit("/", 1)[-1]),
            "ResponseContentType": CONTENT_TYPE,
        }
        if range_header:
            parameters["Range"] = range_header
        seconds = settings.ACCESSCTL_PRESIGN_SECONDS
        out["url"] = downloads.presigned_get(  # the signer FileView's redirect uses
            artifact_storage(), artifact.storage_key, expire=seconds, parameters=parameters
        )
        out["expires_at"] = timezone.now() + timedelta(seconds=seconds)
    else:
        out["href"] = reverse("api:file", kwargs={"grant_id": grant.pk, "path": artifact.path})
    if range_header:
        out["range"] = range_header
    out["size"], out["sha256"] = artifact.size, artifact.sha256
    return out


@extend_schema(
    summary="Authorize many files of a grant in one request (each decided as its own GET)",
    parameters=[downloads.GRANT_TOKEN_HEADER],
    request=AuthorizationsInputSerializer,
    responses={200: AuthorizationsSerializer},
)
class AuthorizationsView(APIView):
    permission_classes = [PartnerCaller]
    required_scope = "download"
    # As FileView: every refusal of the request is one ``download.denied`` naming the grant.
    refusal_event = AuditAction.DOWNLOAD_DENIED

    def post(self, request: Request, grant_id: int) -> Response:
        partner = caller_partner(request)
        # The grant as FileView reads it (a path no file has: the file column stays empty).
        grant, _ = queries.download_target(partner, grant_id, "")
        if not grant.checkpoint.release.jurisdiction_allowed(str(partner.jurisdiction)):
            raise Hidden(Reason.JURISDICTION_BLOCKED)  # 404, and the attempt is evidence
        _grant_token(request, grant)
        if refused := grant_refusal(request, grant):
            raise refused  # the grant as a whole: nothing about its files is told
        files = _asks(request.data)
        # Each file beyond the first counts toward the caller's API rate as its own GET
        # would (the request itself was counted by the throttle): a batch does no more
        # work, and writes no more audit events, per minute than single requests may.
        if len(files) > 1:
            who = ratelimit.ident(
                getattr(request.auth, "pk", None), request.META.get("REMOTE_ADDR")
            )
            allowed, wait = ratelimit.count(request._request, who, len(files) - 1)
            if not allowed:
                raise Throttled(wait=max(wait, 0.0))
        found = queries.download_files(grant, [f["path"] for f in files])
        answers = actions.authorize_downloads(
            actor=acting_user(request),
            grant=grant,
            asks=[
                actions.FileAsk(f["path"], found.get(f["path"]), f.get("start"), f.get("end"))
                for f in files
            ],
            client_address=request.META.get("REMOTE_ADDR"),
            token_facts=token_facts(presented_token(request)),
            details={
                "user_agent": request.headers.get("User-Agent", "")[:200],
                "method": request.method,
                "via": "batch",
            },
        )
        mode = settings.ACCESSCTL_DOWNLOAD_MODE
        body = {
            "grant": grant.pk,
            "files": [
                _authorized(grant, a, mode)
                if a.allowed
                else {"path": a.ask.path, "status": a.status, "code": a.code, "detail": a.detail}
                for a in answers
            ],
        }
        return Response(body, headers={"Cache-Control": CACHE_CONTROL})
