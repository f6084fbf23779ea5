"""Every stable code accessctl answers with, in one registry.

A code is the ``code`` of an RFC 9457 problem body, the reason of an audit event and what
the CLI branches on. Each ``Code`` member carries what the code means everywhere: the HTTP
status the API answers with it, the CLI's exit family, the problem's title, the default
detail and, for the generated docs tables, when it is answered. The server decides a
problem's status from here (``partners.api.problems``), the CLI its exit status
(``accessctl_wire.client``); docs/api.md, docs/decisions.md, docs/cli.md and the OpenAPI
``code`` enum are generated from it.

**Codes never change once shipped** (Warehouse's caveat registry refuses to reuse a tag;
this one refuses a duplicate value: ``@unique``). ``tests/accessctl_wire/test_codes.py`` fails when a code
is used anywhere without being registered here, and when a registered code's status or
exit family differs from the committed ``docs/codes.json``, or disappears from it. How to
add one: docs/architecture.md, "Codes: how to add a code".

Django-free: the CLI and the server both import it.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum, unique

__all__ = ["Area", "Code", "Exit", "lookup"]


class Exit(IntEnum):
    """The CLI's exit status families (docs/cli.md's table is generated from these)."""

    VERIFICATION = 1
    USAGE = 2
    NETWORK = 3
    TOKEN = 4
    POLICY = 5
    WINDOW = 6
    GRANT = 7
    QUOTA = 8
    NOT_FOUND = 9
    THROTTLED = 10
    REFUSED = 11
    BUSY = 12

    @property
    def meaning(self) -> str:
        return _EXIT_MEANING[self]


_EXIT_MEANING = {
    Exit.VERIFICATION: "verification failed: a file's SHA-256, the manifest's signature",
    Exit.USAGE: "usage: not logged in, bad arguments, unreadable key or directory",
    Exit.NETWORK: (
        "the server or its storage could not be reached, kept failing (after retries), or "
        "refused the server's presigned URL (after one new authorization)"
    ),
    Exit.TOKEN: "the token: missing, malformed, unknown, expired, revoked",
    Exit.POLICY: "policy: your organisation, your token or the release is not allowed now",
    Exit.WINDOW: "the window",
    Exit.GRANT: "the grant",
    Exit.QUOTA: "the quota",
    Exit.NOT_FOUND: "not found",
    Exit.THROTTLED: "rate limited",
    Exit.REFUSED: "any other refusal: the request or the change was refused (the code says why)",
    Exit.BUSY: "another `accessctl download` is using the download directory: wait for it, or "
    "use another `--dir`",
}


class Area(StrEnum):
    """Where a code is answered; each area is one generated table in the docs."""

    CALLER = "caller"  # the credential and the caller rules, on every API call
    DECISION = "decision"  # partners.decisions.Reason: the download rules
    REQUEST = "request"  # the API's own refusals: windows, grant tokens, ranges, ...
    EDGE = "edge"  # input no view could serve (partners.api.edge)
    ACTION = "action"  # refused changes (partners.actions)
    PORTAL = "portal"  # the staff portal's own forms
    CLI = "cli"  # the CLI's own failures: never sent by the server


@unique
class Code(StrEnum):
    """A stable code. ``status`` is ``None`` for codes the server never answers over HTTP
    (the CLI's own failures, a portal form's error)."""

    _value_: str
    status: int | None
    exit: Exit
    area: Area
    detail: str
    when: str

    def __new__(
        cls,
        value: str,
        status: int | None,
        exit: Exit,
        area: Area,
        detail: str,
        when: str = "",
    ) -> Code:
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status
        member.exit = exit
        member.area = area
        member.detail = detail
        member.when = when or detail
        return member

    @property
    def problem_title(self) -> str:
        """The problem's ``title``: the code in words (not ``title``: that is ``str``'s)."""
        return self.value.replace("_", " ").capitalize()

    # The credential and the caller rules.
    NOT_AUTHENTICATED = (
        "not_authenticated",
        401,
        Exit.TOKEN,
        Area.CALLER,
        "Send 'Authorization: Bearer <token>'.",
        "no `Authorization` header",
    )
    TOKEN_MALFORMED = (
        "token_malformed",
        401,
        Exit.TOKEN,
        Area.CALLER,
        "The Authorization header must be 'Bearer acx_...' with a well-formed token.",
        "not `Bearer acx_…`, or the checksum does not match",
    )
    TOKEN_INVALID = (
        "token_invalid",
        401,
        Exit.TOKEN,
        Area.CALLER,
        "This token is not known.",
        "no such token (or its user is deactivated)",
    )
    TOKEN_EXPIRED = (
        "token_expired",
        401,
        Exit.TOKEN,
        Area.CALLER,
        "This token has expired.",
        "the token's expiry has passed (also: rotating a token that no longer works)",
    )
    TOKEN_REVOKED = (
        "token_revoked",
        401,
        Exit.TOKEN,
        Area.CALLER,
        "This token was revoked.",
        "the token was revoked (also: rotating a token that no longer works)",
    )
    TOKEN_MEMBERSHIP_ENDED = (
        "token_membership_ended",
        401,
        Exit.TOKEN,
        Area.CALLER,
        "This token's owner no longer acts for its partner.",
        "a partner token whose owner no longer belongs to its partner",
    )
    SCOPE_MISSING = (
        "scope_missing",
        403,
        Exit.POLICY,
        Area.CALLER,
        "This token lacks the scope this endpoint needs.",
        "the token lacks the endpoint's scope",
    )
    PARTNER_TOKEN_REQUIRED = (
        "partner_token_required",
        403,
        Exit.POLICY,
        Area.CALLER,
        "This endpoint is for partner tokens.",
        "a staff token on the partner API",
    )
    STAFF_TOKEN_REQUIRED = (
        "staff_token_required",
        403,
        Exit.POLICY,
        Area.CALLER,
        "This endpoint is for staff tokens.",
        "a partner token on the staff API",
    )
    STAFF_ACCESS_ENDED = (
        "staff_access_ended",
        403,
        Exit.POLICY,
        Area.CALLER,
        "This token's owner is no longer active lab staff.",
        "a staff token whose owner is no longer active staff (`decide_staff_caller`)",
    )
    FORBIDDEN = (
        "forbidden",
        403,
        Exit.POLICY,
        Area.CALLER,
        "Forbidden.",
        "the staff member's role lacks the permission for this change or export",
    )

    # The download rules (partners.decisions.Reason), in docs/decisions.md's order there.
    PARTNER_TERMINATED = (
        "partner_terminated",
        403,
        Exit.POLICY,
        Area.DECISION,
        "Your organisation's access has ended.",
    )
    PARTNER_SUSPENDED = (
        "partner_suspended",
        403,
        Exit.POLICY,
        Area.DECISION,
        "Your organisation's access is suspended.",
    )
    NDA_EXPIRED = (
        "nda_expired",
        403,
        Exit.POLICY,
        Area.DECISION,
        "Your organisation's NDA has expired.",
    )
    ADDRESS_NOT_ALLOWED = (
        "address_not_allowed",
        403,
        Exit.POLICY,
        Area.DECISION,
        "Requests from this address are not allowed for your organisation or token.",
    )
    JURISDICTION_BLOCKED = (
        "jurisdiction_blocked",
        403,
        Exit.POLICY,
        Area.DECISION,
        "This release may not be shared with your jurisdiction.",
    )
    RELEASE_WITHDRAWN = (
        "release_withdrawn",
        403,
        Exit.POLICY,
        Area.DECISION,
        "This release was withdrawn.",
    )
    CHECKPOINT_PULLED = (
        "checkpoint_pulled",
        403,
        Exit.POLICY,
        Area.DECISION,
        "This checkpoint was withdrawn.",
    )
    WINDOW_NOT_OPEN = (
        "window_not_open",
        403,
        Exit.WINDOW,
        Area.DECISION,
        "Your window for this release has not opened yet.",
    )
    WINDOW_CLOSED = (
        "window_closed",
        403,
        Exit.WINDOW,
        Area.DECISION,
        "Your window for this release has closed.",
    )
    GRANT_REVOKED = (
        "grant_revoked",
        403,
        Exit.GRANT,
        Area.DECISION,
        "This grant was revoked.",
    )
    GRANT_EXPIRED = (
        "grant_expired",
        403,
        Exit.GRANT,
        Area.DECISION,
        "This grant has expired.",
    )
    QUOTA_EXHAUSTED = (
        "quota_exhausted",
        403,
        Exit.QUOTA,
        Area.DECISION,
        "This request would exceed the grant's byte quota.",
    )

    # The API's own refusals.
    NO_WINDOW = (
        "no_window",
        403,
        Exit.WINDOW,
        Area.REQUEST,
        "You have no window for this release.",
        "listing checkpoints or reading a manifest without a window for the release; "
        "asking for a grant without an open or upcoming window",
    )
    GRANT_TOKEN_MISSING = (
        "grant_token_missing",
        403,
        Exit.GRANT,
        Area.REQUEST,
        "Send the grant's signed token as X-Grant-Token.",
        "a download without a grant token",
    )
    GRANT_TOKEN_INVALID = (
        "grant_token_invalid",
        403,
        Exit.GRANT,
        Area.REQUEST,
        "The grant token does not verify.",
        "a grant token that does not verify or names another grant",
    )
    GRANT_TOKEN_IN_QUERY = (
        "grant_token_in_query",
        400,
        Exit.GRANT,
        Area.REQUEST,
        "Send the grant token as the X-Grant-Token header, never in the URL.",
        "the grant token was sent in the URL (`?grant_token=`): send it as `X-Grant-Token`",
    )
    FILE_NOT_FOUND = (
        "file_not_found",
        404,
        Exit.NOT_FOUND,
        Area.REQUEST,
        "The checkpoint has no such file.",
        "no such file in the checkpoint",
    )
    REVISION_NOT_FOUND = (
        "revision_not_found",
        404,
        Exit.NOT_FOUND,
        Area.REQUEST,
        "The release has no such checkpoint.",
        "the Hub-compatible endpoint was asked for a revision that is no checkpoint tag, "
        "commit id or `main` of the release (docs/hub.md)",
    )
    GRANT_REQUEST_NEEDED = (
        "grant_request_needed",
        403,
        Exit.GRANT,
        Area.REQUEST,
        "You hold no grant for this checkpoint; before the public release it needs an "
        "approved grant request.",
        "a Hub-compatible download before the public release, with no grant and no request: "
        "the message says how to file one (docs/hub.md)",
    )
    GRANT_REQUEST_PENDING = (
        "grant_request_pending",
        403,
        Exit.GRANT,
        Area.REQUEST,
        "Your grant request for this checkpoint waits for approval.",
        "a Hub-compatible download before the public release while the partner's grant "
        "request waits for its approvals",
    )
    RANGE_NOT_SATISFIABLE = (
        "range_not_satisfiable",
        416,
        Exit.REFUSED,
        Area.REQUEST,
        "Send one range that starts inside the file.",
        "several ranges, a range past the end, or an empty suffix (`Content-Range: bytes */size`)",
    )
    TOO_MANY_FILES = (
        "too_many_files",
        400,
        Exit.REFUSED,
        Area.REQUEST,
        "Ask for at most 256 files per request.",
        "a batch authorization (`POST /api/v1/grants/{id}/authorizations`) names more than "
        "256 files: split it",
    )
    PRECONDITION_FAILED = (
        "precondition_failed",
        412,
        Exit.REFUSED,
        Area.REQUEST,
        "Drop If-Match and If-Unmodified-Since, or fetch the file again from its manifest.",
        '`If-Match` names no ETag of the file (`"<sha256>"`), or `If-Unmodified-Since` is '
        "before the checkpoint's registration: nothing debited",
    )
    VARIANT_NOT_READY = (
        "variant_not_ready",
        503,
        Exit.NETWORK,
        Area.REQUEST,
        "Your copy of this file is still being written; try again after Retry-After seconds.",
        "a file of a fingerprinted release whose copy for this partner is not ready yet "
        "(every file, marked or not, waits until the partner's key commitment is sealed; "
        "a failed copy is being retried): `Retry-After` says when to ask again; the "
        "manifest and the Hub endpoint answer it too while any of the checkpoint's copies "
        "is not ready (docs/fingerprints.md)",
    )
    INVALID = (
        "invalid",
        400,
        Exit.REFUSED,
        Area.REQUEST,
        "The request does not validate.",
        "the body (or an action's values, or an audit export's filters) does not validate "
        "(`fields` says where)",
    )
    THROTTLED = (
        "throttled",
        429,
        Exit.THROTTLED,
        Area.REQUEST,
        "Too many requests for this token or address.",
        "too many requests for this token (or, without one, this address), refused ones "
        "included (see *Rate limit*; `Retry-After`)",
    )
    NOTHING_SEALED = (
        "nothing_sealed",
        409,
        Exit.REFUSED,
        Area.REQUEST,
        "The audit log has no checkpoint yet.",
        "an audit export asked for before the audit log has its first checkpoint",
    )
    ERROR = (
        "error",
        500,
        Exit.NETWORK,
        Area.REQUEST,
        "The server failed to answer.",
        "a DRF error no other code names (a fault: it should not happen)",
    )

    # The edge (partners.api.edge): input no view could serve, and rewritten errors.
    PATH_INVALID = (
        "path_invalid",
        400,
        Exit.REFUSED,
        Area.EDGE,
        "The path holds a control character.",
        "the URL path holds a control character (NUL included)",
    )
    QUERY_INVALID = (
        "query_invalid",
        400,
        Exit.REFUSED,
        Area.EDGE,
        "The query string could not be read.",
        "a query parameter holds a control character, or the query string is malformed",
    )
    MALFORMED_REQUEST = (
        "malformed_request",
        400,
        Exit.REFUSED,
        Area.EDGE,
        "The body is not valid JSON (UTF-8, no NaN or Infinity).",
        "the body is not valid JSON, or not UTF-8",
    )
    JSON_TOO_DEEP = (
        "json_too_deep",
        400,
        Exit.REFUSED,
        Area.EDGE,
        "The JSON body nests too deep.",
        "the JSON body nests deeper than 32 levels",
    )
    TEXT_INVALID = (
        "text_invalid",
        400,
        Exit.REFUSED,
        Area.EDGE,
        "A string in the body holds a lone surrogate: it is not text.",
        "a JSON string holds a lone surrogate (`\\ud800`): it is not text",
    )
    CURSOR_INVALID = (
        "cursor_invalid",
        400,
        Exit.REFUSED,
        Area.EDGE,
        "This cursor was not given out by this server.",
        "`cursor` is not one this server gave out for this list (cursors are signed)",
    )
    BAD_REQUEST = (
        "bad_request",
        400,
        Exit.REFUSED,
        Area.EDGE,
        "The request could not be read.",
        "a request the server could not read (e.g. a bad `Host`)",
    )
    CSRF_FAILED = (
        "csrf_failed",
        403,
        Exit.REFUSED,
        Area.EDGE,
        "CSRF verification failed.",
        "a cookie-authenticated unsafe request without a CSRF token",
    )
    NOT_FOUND = (
        "not_found",
        404,
        Exit.NOT_FOUND,
        Area.EDGE,
        "No such route or object.",
        "no such route, no such object (or not yours), or an id no object can have "
        "(not a number, or above 2^63-1)",
    )
    METHOD_NOT_ALLOWED = (
        "method_not_allowed",
        405,
        Exit.REFUSED,
        Area.EDGE,
        "This route does not answer that method.",
        "the route does not answer this method (`Allow` lists those it does); `OPTIONS` on "
        "every route (no CORS, no metadata)",
    )
    NOT_ACCEPTABLE = (
        "not_acceptable",
        406,
        Exit.REFUSED,
        Area.EDGE,
        "This API answers JSON only.",
        "`Accept` excludes JSON",
    )
    BODY_TOO_LARGE = (
        "body_too_large",
        413,
        Exit.REFUSED,
        Area.EDGE,
        "The body is too large.",
        "`Content-Length` above `DATA_UPLOAD_MAX_MEMORY_SIZE` (2.5 MB by default)",
    )
    URI_TOO_LONG = (
        "uri_too_long",
        414,
        Exit.REFUSED,
        Area.EDGE,
        "The path or the query string is too long.",
        "a path longer than 2048 characters or a query string longer than 4096",
    )
    UNSUPPORTED_MEDIA_TYPE = (
        "unsupported_media_type",
        415,
        Exit.REFUSED,
        Area.EDGE,
        "Send JSON.",
        "a body that is not `application/json`",
    )
    HEADER_TOO_LARGE = (
        "header_too_large",
        431,
        Exit.REFUSED,
        Area.EDGE,
        "A header is too large.",
        "a header longer than 8192 bytes, or 32768 in all",
    )
    SERVER_ERROR = (
        "server_error",
        500,
        Exit.NETWORK,
        Area.EDGE,
        "The server failed to answer; the failure is logged.",
        "a fault of the server: the detail never says more",
    )
    UPSTREAM_UNAVAILABLE = (
        "upstream_unavailable",
        502,
        Exit.NETWORK,
        Area.EDGE,
        "The application server could not be reached; try again.",
        "answered by nginx: the application server is down or restarting",
    )
    UPSTREAM_TIMEOUT = (
        "upstream_timeout",
        504,
        Exit.NETWORK,
        Area.EDGE,
        "The application server did not answer in time; try again.",
        "answered by nginx: the application server did not answer within `proxy_read_timeout`",
    )

    # Refused changes (partners.actions): the portal shows the message, the staff API
    # (and the partner API, for a grant request) answers a problem.
    REASON_REQUIRED = (
        "reason_required",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "Say why: the reason is kept in the audit trail.",
        "revoking, suspending, pulling or rejecting needs a reason for the audit trail",
    )
    PARTNER_EXISTS = (
        "partner_exists",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "A partner with this slug already exists.",
        "the partner's slug is taken",
    )
    RELEASE_EXISTS = (
        "release_exists",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "A release with this slug already exists.",
        "the release's slug is taken",
    )
    PARTNER_STATUS_CONFLICT = (
        "partner_status_conflict",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "The partner's status does not allow this change.",
        "e.g. reinstating a partner that is not suspended, or anything on a terminated partner",
    )
    WINDOW_INVALID = (
        "window_invalid",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "The window must open before it closes.",
        "the window would open after it closes, lift its embargo before it opens, move to "
        "another pair, or close before grants issued in it",
    )
    WINDOW_OVERLAP = (
        "window_overlap",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "This partner already has a window for this release that overlaps these times.",
        "the partner already has an overlapping window for the release",
    )
    GRANT_OUTLIVES_WINDOW = (
        "grant_outlives_window",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "A grant cannot outlive its window.",
        "the grant's expiry is after its window closes",
    )
    GRANT_WINDOW_MISMATCH = (
        "grant_window_mismatch",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "The window is for another partner or release.",
        "the window belongs to another partner or release (a database rule)",
    )
    GRANT_EXISTS = (
        "grant_exists",
        409,
        Exit.GRANT,
        Area.ACTION,
        "This partner already has an active grant for this checkpoint.",
        "the partner already holds an active grant for the checkpoint",
    )
    REQUEST_EXISTS = (
        "request_exists",
        409,
        Exit.GRANT,
        Area.ACTION,
        "This partner already has a pending request for this checkpoint.",
        "the partner already has a pending request for the checkpoint",
    )
    APPROVAL_REQUIRED = (
        "approval_required",
        403,
        Exit.REFUSED,
        Area.ACTION,
        "Early access needs an approved request.",
        "early access (before the release's public time) cannot be issued directly: it needs "
        "a request approved by `ACCESSCTL_EARLY_ACCESS_APPROVALS` staff members",
    )
    PUBLIC_TIME_EARLIER = (
        "public_time_earlier",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "A release's public time never moves earlier.",
        "a release's public time never moves earlier once set (see *The two-person rule* below)",
    )
    FINGERPRINT_PATTERNS_INVALID = (
        "fingerprint_patterns_invalid",
        400,
        Exit.REFUSED,
        Area.ACTION,
        "Fingerprint patterns are a list of 1 to 32 non-empty glob patterns of tensor names.",
        "a release's fingerprint patterns are not a list of 1 to 32 non-empty strings of at "
        "most 200 characters (glob patterns of tensor names, e.g. `*.weight`)",
    )
    FINGERPRINT_PATTERNS_MATCH_NOTHING = (
        "fingerprint_patterns_match_nothing",
        400,
        Exit.REFUSED,
        Area.ACTION,
        "The fingerprint patterns mark no tensor of the release's safetensors files.",
        "fingerprinting is on and its patterns mark no tensor (2-D F32, F16 or BF16, name "
        "matching) of any safetensors file of the release's checkpoints: turning it on, "
        "changing the patterns or registering such a checkpoint is refused, so that no "
        "partner gets an unmarked copy believed marked",
    )
    FINGERPRINT_FIXED = (
        "fingerprint_fixed",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "Partners' marked copies of this release exist: its fingerprint settings are fixed.",
        "changing a release's fingerprinting (on/off, patterns, alpha) once partners' marked "
        "copies of it exist: their keys are committed and their copies may be out; make a "
        "new release instead (docs/fingerprints.md)",
    )
    EARLY_ACCESS_UNAPPROVED = (
        "early_access_unapproved",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "This would serve bytes before the public time without the early-access approvals.",
        "the change would let a grant serve bytes before the public time without the "
        "early-access approvals: moving the public time later while an active or exhausted "
        "grant of the release lacks them, or (defence in depth, whatever the path) issuing a "
        "grant before the public time on a request that does not hold them",
    )
    SCHEDULE_ARGUMENTS_FIXED = (
        "schedule_arguments_fixed",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "The arguments of a lifecycle task are part of what runs and cannot be changed.",
        "a lifecycle task's args or kwargs were changed: they are part of what runs",
    )
    SCHEDULE_TOO_SLOW = (
        "schedule_too_slow",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "A lifecycle task may run at most ten times less often than shipped.",
        "a lifecycle task's schedule would run it more than ten times less often than shipped "
        "(to stop it, switch it off: the dashboard says so)",
    )
    ACCOUNT_IS_MEMBER = (
        "account_is_member",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "This person acts for a partner: remove them from the partner first.",
        "a partner member cannot be made staff (their partner tokens would act as staff)",
    )
    SELF_APPROVAL = (
        "self_approval",
        403,
        Exit.REFUSED,
        Area.ACTION,
        "You cannot approve a request you filed.",
        "the staff member who filed a request cannot approve it",
    )
    ALREADY_APPROVED = (
        "already_approved",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "You already approved this request.",
        "one person cannot give two of the approvals",
    )
    REQUEST_DECIDED = (
        "request_decided",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "The request was already decided.",
        "the request was already approved or rejected",
    )
    QUOTA_INVALID = (
        "quota_invalid",
        400,
        Exit.QUOTA,
        Area.ACTION,
        "A quota is between 1 and 2^63-1 bytes.",
        "quota not between 1 and 2^63-1 bytes (the database's limit), or not an integer; "
        "any path (partner API, staff API, portal), staff-issued grants included, with one "
        "grant.refused event",
    )
    QUOTA_TOO_LARGE = (
        "quota_too_large",
        400,
        Exit.QUOTA,
        Area.ACTION,
        "The quota is above the release's limit.",
        "a grant request's quota is above the release's limit: its `quota_factor` (staff set "
        "it per release in the portal, 1 to 1000, default 4) times the checkpoint's total "
        "size. Checked in `request_grant`, so the partner API, the portal and staff filing a "
        "request all get it; staff issuing a grant directly decide the quota themselves "
        "(bounded by `quota_invalid` only); the detail gives the limit in bytes",
    )
    GRANT_INVALID = (
        "grant_invalid",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "A grant must expire in the future.",
        "expiry not in the future",
    )
    CONFIRMATION_REQUIRED = (
        "confirmation_required",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "Confirm the windows this change ends.",
        "moving a partner to a jurisdiction that an open or upcoming window's release blocks "
        "ends that access; `update_partner` refuses unless the caller confirms exactly the "
        "windows it ends (`confirm_ended_windows`, the ids `queries.access_ended_by_move` "
        "lists), so a window set after the confirmation page was shown cannot end unseen. "
        "Confirmed, the same transaction closes the windows (an upcoming one ends the instant "
        "it opens: the database keeps `opens_at < closes_at`), revokes their active grants "
        "(one grant revocation each, with its email) and records `window.ended` (reason "
        "`jurisdiction_blocked`, with the grants revoked) and `partner.updated` (with `ended`)",
    )
    FIELD_NOT_EDITABLE = (
        "field_not_editable",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "This field is not editable.",
        "an update action asked to change a field it does not edit (portal and commands)",
    )
    ARTIFACT_CHANGED = (
        "artifact_changed",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "A registered file has other bytes: nothing is replaced.",
        "re-registering a checkpoint found a file whose bytes differ from the registered ones",
    )
    ARTIFACT_PATH_INVALID = (
        "artifact_path_invalid",
        400,
        Exit.REFUSED,
        Area.ACTION,
        "A file's path is not valid.",
        "a file's path is empty, longer than 500 characters (or its key than 1024 bytes), "
        "starts with `/`, has an empty, `.` or `..` segment, holds a backslash or a control "
        "character (NUL included), or is listed twice. Paths are taken as sent, never trimmed",
    )
    STORAGE_KEY_NOT_DERIVED = (
        "storage_key_not_derived",
        400,
        Exit.REFUSED,
        Area.ACTION,
        "A file's storage key is not the derived one.",
        "a file's `storage_key` is not `{release}/{tag}/{path}`, the key the server derives: "
        "a checkpoint's files live under its own release and tag",
    )
    ARTIFACT_MISSING = (
        "artifact_missing",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "No object at the file's storage key.",
        "at registration the object is not in artifact storage",
    )
    ARTIFACT_SIZE_MISMATCH = (
        "artifact_size_mismatch",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "The object holds another number of bytes.",
        "at registration the object holds another number of bytes than `size`",
    )
    ARTIFACT_DIGEST_MISMATCH = (
        "artifact_digest_mismatch",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "The object's bytes do not have the declared SHA-256.",
        "at registration the object's bytes do not have the declared `sha256`: local storage "
        "hashes the file; S3 compares the object's `ChecksumSHA256` when it has a full-object "
        "one (upload with `ChecksumAlgorithm=SHA256` in one PUT to have it checked)",
    )
    ARTIFACT_EMBARGOED_ELSEWHERE = (
        "artifact_embargoed_elsewhere",
        403,
        Exit.REFUSED,
        Area.ACTION,
        "These bytes belong to a release with a later public time.",
        "a file's SHA-256 already belongs to another release whose public time is later than "
        "this release's (or now, if later), or that was withdrawn: a grant here would serve "
        "those bytes before their own rules allow",
    )
    NO_ARTIFACTS = (
        "no_artifacts",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "A checkpoint needs at least one file.",
    )
    SECOND_FACTOR_REQUIRED = (
        "second_factor_required",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "Give a current code from your authenticator app.",
        "making a staff token needs a current code from the maker's own authenticator app "
        "(or a backup code); none was given (or the account has no device)",
    )
    SECOND_FACTOR_INVALID = (
        "second_factor_invalid",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "That code is not valid (or was already used).",
        "the staff token maker's authentication code does not verify (wrong, reused, or "
        "throttled after failures)",
    )
    TOKEN_INVALID_USER = (
        "token_invalid_user",
        409,
        Exit.TOKEN,
        Area.ACTION,
        "You no longer act for this partner.",
        "a token invitation is for an active partner member only (staff make their own); a "
        "claim or rotation by someone no longer acting for the partner",
    )
    TOKEN_INVALID_SCOPES = (
        "token_invalid_scopes",
        409,
        Exit.TOKEN,
        Area.ACTION,
        "These scopes are not allowed for this kind of token.",
        "scopes not allowed for the kind of token",
    )
    TOKEN_INVALID_EXPIRY = (
        "token_invalid_expiry",
        409,
        Exit.TOKEN,
        Area.ACTION,
        "A token's expiry is in the future and within the maximum.",
        "expiry not in the future or beyond `ACCESSCTL_TOKEN_MAX_DAYS`",
    )
    MEMBER_EMAIL_MISSING = (
        "member_email_missing",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "The member has no email address to send the link to.",
        "the member has no email address for the one-time link",
    )
    INVITATION_INVALID = (
        "invitation_invalid",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "This link is not valid.",
        "the claim code is unknown",
    )
    INVITATION_USED = (
        "invitation_used",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "This link was already used; ask for a new one.",
        "the claim code was already used",
    )
    INVITATION_EXPIRED = (
        "invitation_expired",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "This link has expired; ask for a new one.",
        "the claim code is past its time",
    )
    INVITATION_CANCELLED = (
        "invitation_cancelled",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "This invitation was cancelled.",
        "the invitation was cancelled (the member was removed)",
    )
    MEMBER_IS_STAFF = (
        "member_is_staff",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "Lab staff cannot act for a partner.",
        "lab staff cannot act for a partner",
    )
    MEMBER_EXISTS = (
        "member_exists",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "This person already acts for a partner.",
        "a person acts for one partner at most",
    )
    CONTACT_EXISTS = (
        "contact_exists",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "The partner already has a contact at this address.",
        "the partner already has a contact at that address",
    )
    REVOCATION_IN_PROGRESS = (
        "revocation_in_progress",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "The partner's suspension is still being fanned out; retry in a minute.",
        "reinstating a partner whose suspension is still being fanned out (retry in a minute)",
    )

    # Leak attribution: submitting a suspect file set (partners.actions.detections).
    SUSPECT_FILES_COUNT = (
        "suspect_files_count",
        400,
        Exit.REFUSED,
        Area.ACTION,
        "Send between 1 and 16 suspect files.",
        "a detection needs 1 to 16 suspect files",
    )
    SUSPECT_FILE_INVALID = (
        "suspect_file_invalid",
        400,
        Exit.REFUSED,
        Area.ACTION,
        "A suspect file must be a safetensors or GGUF file.",
        "a suspect file is empty, or its first bytes are not a safetensors header or GGUF's magic",
    )
    SUSPECT_TOO_LARGE = (
        "suspect_too_large",
        413,
        Exit.REFUSED,
        Area.ACTION,
        "The suspect files are larger than this server accepts.",
        "the suspect files together pass `ACCESSCTL_DETECTION_MAX_BYTES` (default 20 GiB)",
    )
    FINGERPRINT_OFF = (
        "fingerprint_off",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "This release does not fingerprint its partners' copies.",
        "a detection for a release with fingerprinting off",
    )
    NO_FINGERPRINT_KEYS = (
        "no_fingerprint_keys",
        409,
        Exit.REFUSED,
        Area.ACTION,
        "No partner has received a marked copy of this release yet.",
        "a detection for a release no partner has a fingerprint key for (no grant issued "
        "since fingerprinting was turned on)",
    )

    # The portal's own forms (never an API answer).
    INVALID_LOGIN = (
        "invalid_login",
        None,
        Exit.REFUSED,
        Area.PORTAL,
        "Wrong username, password or authentication code. Enter all three; codes change "
        "every 30 seconds.",
        "the portal's sign-in form, for any wrong combination of username, password and code: "
        "one message, so the page never says which part was right; the audit event "
        "(`staff.sign_in_failed`) holds the reason",
    )

    # The CLI's own failures (never sent by the server).
    VERIFICATION_FAILED = (
        "verification_failed",
        None,
        Exit.VERIFICATION,
        Area.CLI,
        "A file or the manifest does not verify.",
        "a file's size or SHA-256 differs from the signed manifest, the manifest's signature "
        "does not verify against the keys, the manifest names an unsafe path, or an answer "
        "is not the bytes asked for (another length or ETag: a proxy that rewrites answers); "
        "never retried",
    )
    USAGE = (
        "usage",
        None,
        Exit.USAGE,
        Area.CLI,
        "Bad arguments, or not logged in.",
        "bad arguments (one line, with the `--help` to read), not logged in, an unreadable "
        "key file, a directory that cannot be written, no file matching `--include`",
    )
    NETWORK = (
        "network",
        None,
        Exit.NETWORK,
        Area.CLI,
        "The server could not be reached.",
        "the server or storage could not be reached, or kept failing (5xx, a cut connection) "
        "over 6 attempts with backoff (a 5xx that is a problem gives up with its own code); "
        "or an answer is not the API's JSON (a proxy's page)",
    )
    STORAGE_REFUSED = (
        "storage_refused",
        None,
        Exit.NETWORK,
        Area.CLI,
        "Storage refused the presigned URL the server gave, twice.",
        "storage (S3) refused a presigned URL (HTTP 400, 401 or 403), and again after the CLI "
        "asked the API for a new one; the message names the likely cause: the URL expired "
        "before use, clock skew between the server and storage (with the offset measured "
        "from the `Date` headers), or neither (the signing credentials revoked, say)",
    )
    DIRECTORY_LOCKED = (
        "directory_locked",
        None,
        Exit.BUSY,
        Area.CLI,
        "Another accessctl download is using this directory.",
        "another `accessctl download` holds the directory's lock (`DIR/.accessctl/lock`, "
        "`flock`, released when that process ends, even by `kill -9`)",
    )
    NO_GRANT = (
        "no_grant",
        None,
        Exit.GRANT,
        Area.CLI,
        "You hold no active grant for this checkpoint.",
        "you hold no grant for the checkpoint: the message gives the `accessctl grants "
        "request` line to ask for one",
    )
    REQUEST_PENDING = (
        "request_pending",
        None,
        Exit.GRANT,
        Area.CLI,
        "Your grant request waits for approval.",
    )


_BY_VALUE: dict[str, Code] = {member.value: member for member in Code}


def lookup(code: str) -> Code | None:
    """The registered code spelled ``code``, or ``None``."""
    return _BY_VALUE.get(code)
