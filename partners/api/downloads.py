"""``GET /api/v1/grants/{id}/files/{path}``: authorize one file (or one byte range) and
hand it out, by the configured mode: Django streams it (local), nginx does
(``X-Accel-Redirect``), or the client is sent to a short-lived presigned S3 URL.

Every mode answers with the same headers (docs/api.md, *Downloads*): this view decides the
range and writes the headers; nginx and storage only send bytes, and the shipped nginx
location (deploy/nginx/accessctl.conf) passes this view's ETag and digest on.
"""

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.files import File
from django.http import FileResponse, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.utils import timezone
from django.utils.http import content_disposition_header, parse_etags, parse_http_date_safe
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from accessctl.actors import acting_user
from accessctl.audit.events import AuditAction, record
from accessctl.audit.models import Outcome
from accessctl.codes import Code, status_of
from accessctl.signing.keys import BadSignature, TokenFailure, verify_token
from partners import actions, queries, rules
from partners.decisions import Reason
from partners.models import Artifact, ArtifactVariant, Grant
from partners.storage import artifact_storage, presigned_get

from .auth import PartnerCaller, caller_partner, presented_token, token_facts
from .errors import Hidden, Problem, failure_problem

__all__ = [
    "GRANT_TOKEN_HEADER",
    "NGINX_WHOLE_FILE",
    "FileView",
    "attachment",
    "grant_refusal",
    "grant_token_in_url",
    "parse_range",
    "precondition",
    "send_file",
    "signed_range",
    "variant_refusal",
]

_SPEC = re.compile(r"([0-9]*)-([0-9]*)")
# A position of more than 18 digits is past what nginx and S3 servers read (they refuse
# numbers above 2**63 - 1, 19 digits): such ranges the app sends itself (``send_file``).
_DIGITS_MAX = 18
# Numbers are read exactly up to 20 digits (2**64 has 20; every size is below 2**63); a
# longer one is past any size and is never converted (int() refuses 4,300 digits).
_EXACT_DIGITS = 20
_PAST_THE_END = 10**_EXACT_DIGITS
_PLAIN_RANGE = re.compile(r"bytes=(?:[0-9]{1,18}-[0-9]{0,18}|-[0-9]{1,18})")
_LONG_NUMBER = re.compile(r"[0-9]{19}")
# Under ACCESSCTL_NGINX_INTERNAL_PREFIX: the nested location that sends the whole file
# whatever the request's Range says (no release slug can spell it).
NGINX_WHOLE_FILE = "~whole/"
CACHE_CONTROL = "private, no-store"
CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def _unsatisfiable(size: int, detail: str) -> Problem:
    return Problem(
        416, "range_not_satisfiable", detail, headers={"Content-Range": f"bytes */{size}"}
    )


def _number(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _EXACT_DIGITS else _PAST_THE_END


def _less(a: str, b: str) -> bool:
    """Whether the digit string ``a`` is a smaller number than ``b``, of any length."""
    a, b = a.lstrip("0"), b.lstrip("0")
    return (len(a), a) < (len(b), b)


def _range_spec(spec: str) -> tuple[str, str] | None:
    """``(first, last)`` of one valid range-spec (digits, no spaces), else ``None``."""
    match = _SPEC.fullmatch(spec)
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first and last and _less(last, first):
        return None  # an invalid range-spec (RFC 9110 section 14.1.1)
    return first, last


def parse_range(header: str, size: int) -> ByteRange | None:
    """The one byte range of ``header`` to send, clipped to the file; ``None`` for the
    whole file (200).

    Honoured: exactly one range written ``bytes=A-B``, ``bytes=A-`` or ``bytes=-N`` (the
    unit in any case, digits and nothing else). Refused with 416 and ``Content-Range:
    bytes */size``: a start at or past the end, an empty suffix (``-0``; any range of a
    0-byte file), several ranges (fetch them in parallel instead; each is debited).
    Ignored, as RFC 9110 section 14.2 lets a server do: every other Range (another unit,
    one that does not parse, ``B < A``, spaces or empty list elements). Numbers of any
    length are read (section 14.1.2): an end past the file is clipped to its last byte, a
    suffix longer than the file is the whole file, a start past the end is 416. nginx
    reads the header again in nginx mode: what is honoured here it reads the same way,
    except a number of more than 18 digits (nginx refuses it: then the app sends the
    bytes, ``send_file``), and the whole file is sent from a location that ignores Range (``_nginx``).
    """
    unit, equals, spec_list = header.partition("=")
    if not equals or unit.lower() != "bytes":
        return None
    specs = [spec.strip(" \t") for spec in spec_list.split(",")]
    if len(specs) > 1:
        written = [spec for spec in specs if spec]
        if len(written) > 1 and all(_range_spec(spec) for spec in written):
            raise _unsatisfiable(size, "Send one range: 'bytes=START-END'.")
        return None
    parsed = _range_spec(spec_list)
    if parsed is None:
        return None
    first, last = parsed
    if first == "":  # suffix: the last N bytes (N past the size: the whole file)
        length = min(_number(last), size)
        if length == 0:
            raise _unsatisfiable(size, "An empty suffix range.")
        return ByteRange(size - length, size - 1)
    start = _number(first)
    if start >= size:
        raise _unsatisfiable(size, f"The file has {size} bytes.")
    end = min(_number(last), size - 1) if last else size - 1  # clipped (section 14.1.2)
    return ByteRange(start, end)


def signed_range(header: str, byte_range: ByteRange) -> str:
    """The ``Range`` a presigned URL for ``byte_range`` is signed with: the client's own
    ``header`` when it is written ``bytes=A-B``, ``bytes=A-`` or ``bytes=-N`` (lower-case
    unit, at most 18 digits: S3 servers read these as ``parse_range`` does, so a client
    following the redirect with its Range gets the same bytes), else
    ``bytes=START-END``."""
    if _PLAIN_RANGE.fullmatch(header):
        return header
    return f"bytes={byte_range.start}-{byte_range.end}"


def _matches(header: str, etag: str, *, weak: bool) -> bool:
    """Whether an ``If-Match`` / ``If-None-Match`` list names ``etag`` (or is ``*``): by
    strong comparison, or weak (``W/`` ignored on both sides) when ``weak``."""
    tags = parse_etags(header)
    if "*" in tags:
        return True
    if not weak:
        return etag in tags
    return etag in {tag.removeprefix("W/") for tag in tags}


def precondition(headers: Any, etag: str, modified: datetime) -> int | None:
    """RFC 9110 section 13.2.2, for a GET or HEAD of a file whose strong ETag is ``etag``
    and that has not changed since ``modified``: 412 when a precondition fails, 304 when
    the client's copy is current, ``None`` to answer the request.

    ``If-Match`` (else ``If-Unmodified-Since``), then ``If-None-Match`` (else
    ``If-Modified-Since``); a date that does not parse is ignored. ``If-Range`` is read
    with the Range (``FileView``).
    """
    seconds = int(modified.timestamp())
    if_match = headers.get("If-Match")
    if if_match is not None:
        if not _matches(if_match, etag, weak=False):
            return 412
    else:
        since = parse_http_date_safe(headers.get("If-Unmodified-Since", ""))
        if since is not None and seconds > since:
            return 412
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        return 304 if _matches(if_none_match, etag, weak=True) else None
    since = parse_http_date_safe(headers.get("If-Modified-Since", ""))
    if since is not None and seconds <= since:
        return 304
    return None


def attachment(name: str) -> str:
    """``Content-Disposition`` for a file called ``name`` (RFC 6266):
    ``attachment; filename="<ASCII fallback>"; filename*=UTF-8''<name, percent-encoded>``.

    The fallback, for clients that do not read ``filename*``, is the name with accents
    dropped and ``_`` for every other character outside printable ASCII and for ``"``,
    ``\\`` and ``%`` (RFC 6266 appendix D: escapes and percent signs are read
    differently by different clients). ``filename*`` (RFC 8187) is always sent, so the
    exact name is always there.
    """
    fallback = "".join(
        "_" if not " " <= ch <= "~" or ch in '"\\%' else ch
        for ch in unicodedata.normalize("NFKD", name)
        if not unicodedata.combining(ch)
    )
    header = content_disposition_header(True, fallback) or "attachment"
    return f"{header}; filename*=UTF-8''{quote(name, safe='')}"


# A compact JWS (RFC 7515 section 7.1): three base64url parts, the first a JSON object
# ("eyJ" is how '{"' encodes); the grant token is one (EdDSA), so is any other.
_COMPACT_JWS = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def grant_token_in_url(request: Request) -> bool:
    """Whether the URL carries a grant token: a ``grant_token`` parameter, or any
    parameter's name or value holding a compact JWS (``?token=``, ``?access_token=``,
    ``?X-Grant-Token=``, ``?t[]=``...: every spelling reaches the logs of the proxies on
    the way alike)."""
    params = request.query_params
    if "grant_token" in params:
        return True
    return any(
        _COMPACT_JWS.search(name) or any(_COMPACT_JWS.search(value) for value in values)
        for name, values in params.lists()
    )


def _grant_token(request: Request, grant: Grant) -> None:
    """The signed grant token must verify and name this grant, partner and checkpoint.

    Only from the header: in the URL it would be written to every access log on the way
    (``accessctl.wsgi`` blanks it from gunicorn's before this refuses it).
    """
    in_query = grant_token_in_url(request)
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


def grant_refusal(request: Request, grant: Grant) -> Problem | None:
    """The download decision (``rules.decide``) for 0 bytes of ``grant`` now: what a
    ``HEAD`` would be refused with, or ``None``. Read-only: nothing is charged or recorded
    (the refusal's audit event is the evidence rule's, naming the grant). Callers ask it
    before they look a file up, so a caller refused learns no file names.

    ``grant`` comes with its partner, window and checkpoint's release read."""
    facts = rules.download_facts(
        grant,
        now=timezone.now(),
        client_address=request.META.get("REMOTE_ADDR"),
        requested_bytes=0,
        **token_facts(presented_token(request)),
    )
    decision = rules.decide(facts)
    if decision:
        return None
    reason = str(decision.reason)
    refused = Problem(status_of(reason), reason, decision.detail)
    refused.decided_target = ("partners.grant", str(grant.pk), f"grant #{grant.pk}")
    return refused


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
    response["Content-Type"] = CONTENT_TYPE
    response["Content-Disposition"] = attachment(artifact.path.rsplit("/", 1)[-1])
    response["ETag"] = etag
    response["X-Content-SHA256"] = artifact.sha256
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = CACHE_CONTROL
    return response


def _local(
    artifact: Artifact, byte_range: ByteRange | None, etag: str, head: bool
) -> HttpResponseBase:
    status = 206 if byte_range else 200
    response: HttpResponse | FileResponse
    if head:
        response = HttpResponse(status=status)
    else:
        handle = artifact_storage().open(artifact.storage_key, "rb")
        response = FileResponse(
            _LimitedFile(handle, byte_range) if byte_range else handle, status=status
        )
    response["Content-Length"] = str(byte_range.length if byte_range else artifact.size)
    if byte_range:
        response["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{artifact.size}"
    return _headers(response, artifact, etag)


def _nginx(artifact: Artifact, byte_range: ByteRange | None, etag: str) -> HttpResponseBase:
    # nginx sends the bytes from its internal location, keeping these headers (the
    # location passes ETag and X-Content-SHA256 on), and applies the request's Range
    # itself. So it is sent to the location that reads Range only when this view honoured
    # one (parse_range honours nothing nginx would read otherwise); for the whole file (no
    # Range, one ignored, an If-Range that does not match) to the one that ignores Range.
    location = settings.ACCESSCTL_NGINX_INTERNAL_PREFIX
    if byte_range is None:
        location += NGINX_WHOLE_FILE
    response = HttpResponse()
    response["X-Accel-Redirect"] = location + quote(artifact.storage_key)
    return _headers(response, artifact, etag)


def _s3(artifact: Artifact, byte_range: ByteRange | None, range_header: str) -> HttpResponse:
    # Storage answers with these headers (S3's response-* overrides, signed into the URL);
    # its ETag is its own, so the digest rides on the redirect. A URL for a range carries
    # that exact Range as a signed header: storage refuses (403) the URL with any other
    # Range or none, so it gives what was charged and no more. A whole-file URL takes any
    # Range (the whole file was charged).
    parameters = {
        "ResponseCacheControl": CACHE_CONTROL,
        "ResponseContentDisposition": attachment(artifact.path.rsplit("/", 1)[-1]),
        "ResponseContentType": CONTENT_TYPE,
    }
    if byte_range:
        parameters["Range"] = signed_range(range_header, byte_range)
    url = presigned_get(
        artifact_storage(),
        artifact.storage_key,
        expire=settings.ACCESSCTL_PRESIGN_SECONDS,
        parameters=parameters,
    )
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = CACHE_CONTROL
    response["X-Content-SHA256"] = artifact.sha256
    return response


def variant_refusal(
    request: Request, grant: Grant, artifact: Artifact, *, via: str = ""
) -> Problem:
    """The refusal of a file whose copy for the grant's partner is not written yet: the
    grant's own refusal when it has one (a revoked grant is told so, not to wait), else
    503 ``variant_not_ready`` with ``Retry-After``, its ``download.denied`` written here
    (the refusal evidence rule writes 4xx answers only): nothing is debited."""
    if refused := grant_refusal(request, grant):
        return refused
    seconds = settings.ACCESSCTL_VARIANT_RETRY_SECONDS
    record(
        AuditAction.DOWNLOAD_DENIED,
        actor=acting_user(request),
        target=grant,
        partner_id=grant.partner_id,
        outcome=Outcome.DENIED,
        reason=Code.VARIANT_NOT_READY.value,
        changes={
            "artifact": artifact.path,
            "bytes": 0,
            "variant": artifact.variant_status,
            "method": request.method,
            **({"via": via} if via else {}),
        },
        client_address=request.META.get("REMOTE_ADDR"),
    )
    return Problem(
        503,
        Code.VARIANT_NOT_READY,
        f"Your copy of {artifact.path} is still being prepared (this release is marked "
        f"for your organisation, and none of its files is served before your copy's key "
        f"is sealed); try again in {seconds} seconds.",
        headers={"Retry-After": str(seconds)},
        recorded=True,
    )


def send_file(
    request: Request, grant: Grant, artifact: Artifact, *, via: str = ""
) -> HttpResponseBase:
    """Authorize ``artifact`` of ``grant`` for this GET or HEAD and answer it: the
    preconditions (RFC 9110 section 13.2.2), the one Range (section 14.2), the decision and
    its debit (``actions.authorize_download``: a HEAD or a 304 costs nothing, a retried
    range nothing twice), then the bytes by the configured mode (local, nginx, s3).

    ``grant`` and ``artifact`` come from ``queries.download_target`` (read in this
    request). Refusals raise ``Problem``: 412, 416, or the decision's reason (its
    ``download.denied`` written already, ``recorded``). Shared by ``FileView`` (API v1)
    and the Hub-compatible resolve route (``partners.api.hub``); ``via`` names the route
    in the audit event's ``changes`` when it is not API v1.

    A file of a fingerprinted release is the partner's own copy (``download_target`` put
    its key, size and SHA-256 on ``artifact``): the ETag and X-Content-SHA256 are its own
    in every mode. While it is not written yet: 503 ``variant_not_ready`` with
    ``Retry-After`` (``variant_refusal``), after the grant's own decision.
    """
    if artifact.variant_status not in (None, ArtifactVariant.Status.READY):
        raise variant_refusal(request, grant, artifact, via=via)
    etag = f'"{artifact.sha256}"'
    # Preconditions before the range and the charge (RFC 9110 section 13.2.2): a
    # failed one is refused (one download.denied, nothing debited); a 304 is
    # authorized for 0 bytes (a download.authorized, nothing debited).
    condition = precondition(request.headers, etag, grant.checkpoint.registered_at)
    if condition == 412:
        raise Problem(412, "precondition_failed", "If-Match or If-Unmodified-Since does not hold.")
    byte_range = None
    range_header = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if range_header and (if_range is None or if_range == etag):
        byte_range = parse_range(range_header, artifact.size)
    head = request.method == "HEAD"
    if condition == 304:
        byte_range = None
    requested = (
        0 if head or condition == 304 else (byte_range.length if byte_range else artifact.size)
    )
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
            **({"via": via} if via else {}),
        },
    )
    if not decision:  # authorize_download wrote its download.denied
        reason = str(decision.reason)
        raise Problem(status_of(reason), reason, decision.detail, recorded=True)
    if condition == 304:
        return _headers(HttpResponse(status=304), artifact, etag)
    mode = settings.ACCESSCTL_DOWNLOAD_MODE
    if mode == "s3" and not head:
        return _s3(artifact, byte_range, range_header or "")
    # nginx would evaluate If-Match and If-Unmodified-Since again, by its own ETag
    # and file time: those requests (their preconditions held here) Django streams.
    judged = "If-Match" in request.headers or "If-Unmodified-Since" in request.headers
    # nginx refuses (416) a position of more than 18 digits, which the app clips: those
    # ranges the app sends itself.
    long_range = byte_range is not None and _LONG_NUMBER.search(range_header or "") is not None
    if mode == "nginx" and not head and not judged and not long_range:
        return _nginx(artifact, byte_range, etag)
    return _local(artifact, byte_range, etag, head)


# The grant's signed token, as every download route takes it (FileView, the batch).
GRANT_TOKEN_HEADER = OpenApiParameter(
    "X-Grant-Token",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="The grant's signed token (never in the URL: grant_token_in_query).",
)


@extend_schema(
    summary="Authorize one file (Range allowed): the bytes, or 302 to a short-lived URL",
    parameters=[
        GRANT_TOKEN_HEADER,
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
        # The grant decides before the file is looked up: a caller refused gets the same
        # answer whatever file it names.
        _grant_token(request, grant)
        if artifact is None:
            if refused := grant_refusal(request, grant):
                raise refused
            raise Problem(404, "file_not_found", f"The checkpoint has no file {path!r}.")
        return send_file(request, grant, artifact)

    def head(self, request: Request, grant_id: int, path: str) -> HttpResponseBase:
        return self.get(request, grant_id, path)
