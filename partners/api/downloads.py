"""``GET /api/v1/grants/{id}/files/{path}``: authorize one file (or one byte range) and
hand it out, by the configured mode: Django streams it (local), nginx does
(``X-Accel-Redirect``), or the client is sent to a short-lived presigned S3 URL."""

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.files import File
from django.http import FileResponse, HttpResponse, HttpResponseBase, HttpResponseRedirect
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from accessctl.actors import acting_user
from accessctl.audit.events import AuditAction
from accessctl.codes import status_of
from accessctl.signing.keys import BadSignature, TokenFailure, verify_token
from partners import actions, queries, rules
from partners.decisions import Reason
from partners.models import Artifact, Grant
from partners.storage import artifact_storage

from .auth import PartnerCaller, caller_partner, presented_token, token_facts
from .errors import Hidden, Problem, failure_problem

__all__ = ["FileView", "parse_range"]

_SPEC = re.compile(r"^([0-9]*)-([0-9]*)$")
# More digits than any file size has: read as "past the end" without parsing a number
# a client made as long as it liked.
_DIGITS_MAX = 19
_PAST_THE_END = 2**63


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def _unsatisfiable(size: int) -> dict[str, str]:
    return {"Content-Range": f"bytes */{size}"}


def _number(digits: str) -> int:
    return int(digits) if len(digits) <= _DIGITS_MAX else _PAST_THE_END


def parse_range(header: str, size: int) -> ByteRange | None:
    """One ``bytes=`` range of RFC 9110, clipped to the file; ``None`` for the whole file.

    As RFC 9110 section 14.2 says, a Range that does not parse, or in another unit than
    bytes, is ignored (the whole file, 200); one that parses but that the file cannot
    satisfy is 416 with ``Content-Range: bytes */size``. Several ranges in one request
    are refused (416): clients fetch ranges in parallel instead, and each is debited.
    """
    unit, equals, spec_list = header.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    specs = [spec.strip() for spec in spec_list.split(",") if spec.strip()]
    parsed: list[tuple[str, str]] = []
    for spec in specs:
        match = _SPEC.match(spec)
        if not match or match.groups() == ("", ""):
            return None
        first, last = match.groups()
        if first and last and _number(last) < _number(first):
            return None  # an invalid range-spec: the header is ignored
        parsed.append((first, last))
    if not parsed:
        return None
    if len(parsed) > 1:
        raise Problem(
            416,
            "range_not_satisfiable",
            "Send one range: 'bytes=START-END'.",
            headers=_unsatisfiable(size),
        )
    first, last = parsed[0]
    if first == "":  # suffix: the last N bytes
        length = min(_number(last), size)
        if length == 0:
            raise Problem(
                416, "range_not_satisfiable", "An empty suffix range.", headers=_unsatisfiable(size)
            )
        return ByteRange(size - length, size - 1)
    start = _number(first)
    end = min(_number(last), size - 1) if last else size - 1
    if start >= size:
        raise Problem(
            416,
            "range_not_satisfiable",
            f"The file has {size} bytes.",
            headers=_unsatisfiable(size),
        )
    return ByteRange(start, end)


def _grant_token(request: Request, grant: Grant) -> None:
    """The signed grant token must verify and name this grant, partner and checkpoint.

    Only from the header: in the URL it would be written to every access log on the way
    (``accessctl.wsgi`` blanks it from gunicorn's before this refuses it).
    """
    in_query = "grant_token" in request.query_params
    presented = request.headers.get("X-Grant-Token", "")
    claims: dict[str, Any] = {}
    failure: TokenFailure | None = None
    if presented and not in_query:
        try:
            claims = verify_token(presented)
        except BadSignature as exc:
            failure = exc.failure
    result = rules.grant_token_valid(
        rules.GrantTokenFacts(
            in_query=in_query,
            presented=bool(presented),
            failure=failure,
            claims=claims,
            grant_id=grant.pk,
            partner_id=grant.partner_id,
            checkpoint_id=grant.checkpoint_id,
        )
    )
    if isinstance(result, rules.Failure):
        raise failure_problem(400 if result.code == "grant_token_in_query" else 403, result)


class _LimitedFile:
    """A file positioned at a range's start that reads no further than its end.

    It keeps ``fileno()``, so gunicorn sends the range with ``sendfile(2)`` (it starts at
    the file's position and stops at Content-Length); other servers read it in chunks.
    """

    def __init__(self, handle: File, byte_range: ByteRange) -> None:
        handle.seek(byte_range.start)
        self._handle = handle
        self._left = byte_range.length
        self.name = handle.name

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size < 0 else min(size, self._left)
        data = self._handle.read(size)
        self._left -= len(data)
        return data

    def fileno(self) -> int:
        return int(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def _headers(response: HttpResponseBase, artifact: Artifact, etag: str) -> HttpResponseBase:
    response["ETag"] = etag
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, no-store"
    response["X-Content-SHA256"] = artifact.sha256
    return response


def _local(
    artifact: Artifact, byte_range: ByteRange | None, etag: str, head: bool
) -> HttpResponseBase:
    filename = artifact.path.rsplit("/", 1)[-1]
    response: HttpResponse | FileResponse
    if head:
        response = HttpResponse(status=206 if byte_range else 200)
    else:
        handle = artifact_storage().open(artifact.storage_key, "rb")
        body = _LimitedFile(handle, byte_range) if byte_range else handle
        response = FileResponse(
            body, as_attachment=True, filename=filename, status=206 if byte_range else 200
        )
    response["Content-Type"] = "application/octet-stream"
    response["Content-Length"] = str(byte_range.length if byte_range else artifact.size)
    if byte_range:
        response["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{artifact.size}"
    return _headers(response, artifact, etag)


def _nginx(artifact: Artifact, etag: str) -> HttpResponseBase:
    # nginx serves the bytes, and the Range, from its internal location.
    response = HttpResponse()
    response["X-Accel-Redirect"] = settings.ACCESSCTL_NGINX_INTERNAL_PREFIX + quote(
        artifact.storage_key
    )
    response["Content-Type"] = "application/octet-stream"
    response["Content-Disposition"] = f'attachment; filename="{artifact.path.rsplit("/", 1)[-1]}"'
    return _headers(response, artifact, etag)


def _s3(artifact: Artifact) -> HttpResponse:
    url = artifact_storage().url(  # type: ignore[call-arg]
        artifact.storage_key,
        expire=settings.ACCESSCTL_PRESIGN_SECONDS,
        parameters={"ResponseCacheControl": "private, no-store"},
    )
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "private, no-store"
    return response


@extend_schema(
    summary="Authorize one file (Range allowed): the bytes, or 302 to a short-lived URL",
    parameters=[
        OpenApiParameter(
            "X-Grant-Token",
            OpenApiTypes.STR,
            OpenApiParameter.HEADER,
            required=False,
            description="The grant's signed token (never in the URL: grant_token_in_query).",
        ),
        OpenApiParameter("Range", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False),
    ],
    responses={
        200: OpenApiResponse(description="The file"),
        206: OpenApiResponse(description="The requested range"),
        302: OpenApiResponse(description="Redirect to a presigned URL (S3 mode)"),
    },
)
class FileView(APIView):
    permission_classes = [PartnerCaller]
    required_scope = "download"
    # Every refusal of a download, whichever rule (token, caller, grant, file, range), is
    # one ``download.denied`` naming the grant, file and range (partners.api.evidence).
    refusal_event = AuditAction.DOWNLOAD_DENIED

    def get(self, request: Request, grant_id: int, path: str) -> HttpResponseBase:
        partner = caller_partner(request)
        grant, artifact = queries.download_target(partner, grant_id, path)
        if not grant.checkpoint.release.jurisdiction_allowed(str(partner.jurisdiction)):
            # Export control: the release does not exist for this partner (404 like another
            # partner's grant, before anything about its files), but the attempt is evidence.
            raise Hidden(Reason.JURISDICTION_BLOCKED)
        if artifact is None:
            raise Problem(404, "file_not_found", f"The checkpoint has no file {path!r}.")
        _grant_token(request, grant)
        etag = f'"{artifact.sha256}"'
        byte_range = None
        range_header = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        if range_header and (if_range is None or if_range == etag):
            byte_range = parse_range(range_header, artifact.size)
        head = request.method == "HEAD"
        requested = 0 if head else (byte_range.length if byte_range else artifact.size)
        decision = actions.authorize_download(
            actor=acting_user(request),
            grant=grant,
            artifact=artifact,
            requested_bytes=requested,
            offset=byte_range.start if byte_range else 0,
            client_address=request.META.get("REMOTE_ADDR"),
            token_facts=token_facts(presented_token(request)),
            fresh=True,
            details={
                "range": f"{byte_range.start}-{byte_range.end}" if byte_range else "",
                "user_agent": request.headers.get("User-Agent", "")[:200],
                "method": request.method,
            },
        )
        if not decision:  # authorize_download wrote its download.denied
            reason = str(decision.reason)
            raise Problem(status_of(reason), reason, decision.detail, recorded=True)
        mode = settings.ACCESSCTL_DOWNLOAD_MODE
        if mode == "s3" and not head:
            return _s3(artifact)
        if mode == "nginx" and not head:
            return _nginx(artifact, etag)
        return _local(artifact, byte_range, etag, head)

    def head(self, request: Request, grant_id: int, path: str) -> HttpResponseBase:
        return self.get(request, grant_id, path)
