"""The Hugging Face Hub-compatible download endpoint (docs/hub.md).

A partner points the Hub's own tools at accessctl (``HF_ENDPOINT=https://<host>``,
``HF_TOKEN=acx_...``) and downloads with ``hf download``, ``snapshot_download``,
``from_pretrained`` or vLLM. The naming:

- a release is the model repository ``<ACCESSCTL_HUB_ORG>/<release slug>``; a partner sees
  the repositories of releases it has a window for and whose export policy allows it
  (another's, or a blocked one, is ``RepoNotFound``, as a v1 404);
- a checkpoint is a revision, named by its tag or by its commit id (40 hex:
  ``partners.manifests.commit_id``, from its signed manifest); ``main`` is the newest
  checkpoint the partner may download now (``Access``).

Nothing here re-states a rule: the file list is read as a manifest is
(``views.readable``), and a file is sent by ``downloads.send_file``, the v1 download's
own path (the decision, the fair-quota lease debit and the audit event of
``actions.authorize_download``). The bearer token and the partner's grant for the
checkpoint decide; no grant token is needed. A partner that never had a grant for the
checkpoint gets one on first use as ``POST /api/v1/grants/`` would give it
(``actions.request_grant``: issued at once after the public time; before it, a refusal that
says how to ask).

Errors are the API's problem+json (the same codes and the same refusal evidence, under
``edge.is_api_path``), with what the Hub's client reads added: ``X-Error-Code``
(``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo``),
``X-Error-Message`` and an ``error`` member (our code, what happened and what to do; for a
401, whose ``X-Error-Message`` must stay the client's exact text, in ``X-HF-Warning``), and
``X-Repo-Commit`` only on answers about a revision the partner may download (a refusal
never names one: ``Access``). These routes are not in the OpenAPI schema:
their shapes are the Hub's, not DRF's.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import unquote, urlsplit
from uuid import uuid4

from django.conf import settings
from django.core import signing
from django.http import HttpResponseBase
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from accessctl.actors import acting_user
from accessctl.audit.events import AuditAction
from accessctl_wire import formats
from partners import actions, queries, rules, states
from partners.decisions import Reason
from partners.errors import ActionError
from partners.manifests import VariantsNotReady, commit_id, manifest, partner_artifacts
from partners.models import Artifact, Checkpoint, Grant, Partner, Release

from .auth import PartnerCaller, caller_partner, presented_token
from .downloads import grant_refusal, send_file
from .edge import BoundedJSONParser
from .errors import Hidden, Problem
from .views import readable, variants_not_ready

__all__ = [
    "Access",
    "AuthCheckView",
    "ModelInfoView",
    "NoRepositoryView",
    "PathsInfoView",
    "ResolveView",
    "TreeView",
    "WhoAmIView",
    "first_use_refusal",
    "hub_error",
]

MAIN = "main"
DISABLED = "Access to this resource is disabled."  # the client compares it exactly
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"  # likewise
_LFS_SPEC = "https://git-lfs.github.com/spec/v1"

# The Hub's error class for each code that is not simply a gate (``GatedRepo``).
_NOT_FOUND = {"not_found": "RepoNotFound", "revision_not_found": "RevisionNotFound"}
_DISABLED = {"release_withdrawn", "checkpoint_pulled"}
_ADVICE = {
    "no_window": "Ask your lab contact for an embargo window for this release.",
    "window_not_open": "Try again once your window opens (accessctl releases shows when).",
    "window_closed": "Your window for this release has closed: ask your lab contact.",
    "grant_revoked": "Ask your lab contact; the files you already hold stay in your cache.",
    "grant_expired": "Ask for a new grant: accessctl grants request RELEASE:TAG.",
    "quota_exhausted": "Ask your lab contact for a grant with a larger quota.",
    "partner_suspended": "Your organisation's access is suspended: ask your lab contact.",
    "partner_terminated": "Your organisation's access has ended.",
    "nda_expired": "Renew your organisation's NDA with the lab.",
    "address_not_allowed": "Download from an address your organisation registered.",
    # 401s: the header stays the client's exact text (it compares it whole), so the reason
    # and what to do are in the ``error`` member, which the client shows after it.
    "not_authenticated": "Set HF_TOKEN to your accessctl token (acx_...).",
    "token_malformed": (
        "Set HF_TOKEN to your accessctl token (acx_...), not a huggingface.co token."
    ),
    "token_invalid": "Ask your lab contact for a new token.",
    "token_expired": "Ask your lab contact for a new token.",
    "token_revoked": "Ask your lab contact for a new token.",
    "token_membership_ended": "Ask your lab contact: you no longer act for your organisation.",
}


def _header_text(text: str) -> str:
    """One header line: printable ASCII only (a header value is Latin-1 on the wire)."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)[:1000]


def hub_error(response: HttpResponseBase, commit: str | None = None) -> HttpResponseBase:
    """The API's problem ``response`` with the Hub's error headers and ``error`` member
    added (module docstring); the status and the problem's ``code`` stay the API's."""
    try:
        body = json.loads(response.content)  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return response
    if not isinstance(body, dict):
        return response
    code, detail = str(body.get("code", "")), str(body.get("detail", ""))
    message = f"{code}: {detail}"
    if advice := _ADVICE.get(code):
        message = f"{message} {advice}"
    status = response.status_code
    if code == "file_not_found":
        response["X-Error-Code"] = "EntryNotFound"
    elif code in _NOT_FOUND:
        response["X-Error-Code"] = _NOT_FOUND[code]
    elif code in _DISABLED:
        response["X-Error-Message"] = DISABLED
    elif status == 401:
        # The client compares this header whole (any other text on a repository URL would
        # make it RepositoryNotFoundError), and a HEAD has no body for the ``error``
        # member: the reason and what to do ride in X-HF-Warning, which the client prints
        # for every answer (its topic is unique, so each refusal is printed).
        response["X-Error-Message"] = INVALID_CREDENTIALS
        response["X-HF-Warning"] = _header_text(f"accessctl-{code}-{uuid4().hex[:8]}; {message}")
    elif status == 403:
        response["X-Error-Code"] = "GatedRepo"
    if "X-Error-Message" not in response:
        response["X-Error-Message"] = _header_text(message)
    if commit and "X-Repo-Commit" not in response:
        response["X-Repo-Commit"] = commit
    body["error"] = message
    response.content = json.dumps(body)  # type: ignore[attr-defined]
    return response


# -- the repository as the Hub shows it ----------------------------------------------------


def _pointer(artifact: Artifact) -> bytes:
    return f"version {_LFS_SPEC}\noid sha256:{artifact.sha256}\nsize {artifact.size}\n".encode()


def _blob_id(data: bytes) -> str:
    """The git blob id of ``data`` (what the Hub calls a file's ``oid``): a name, not a
    security property."""
    header = f"blob {len(data)}\0".encode()
    return hashlib.sha1(header + data, usedforsecurity=False).hexdigest()


def _file_item(artifact: Artifact) -> dict[str, Any]:
    pointer = _pointer(artifact)
    return {
        "type": "file",
        "oid": _blob_id(pointer),
        "size": artifact.size,
        "path": artifact.path,
        "lfs": {"oid": artifact.sha256, "size": artifact.size, "pointerSize": len(pointer)},
    }


def _directory_item(path: str, commit: str) -> dict[str, Any]:
    oid = hashlib.sha256(f"{commit}:{path}".encode()).hexdigest()[:40]
    return {"type": "directory", "oid": oid, "size": 0, "path": path}


def _directories(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


@dataclass(frozen=True, slots=True)
class Revision:
    """A checkpoint as a revision: its commit id and its files, by path."""

    checkpoint: Checkpoint
    commit: str
    files: dict[str, Artifact]

    def entries(self, base: str, *, recursive: bool) -> list[dict[str, Any]] | None:
        """The tree under ``base`` ("" for the root), sorted by path; ``None`` when
        ``base`` is no directory."""
        prefix = f"{base}/" if base else ""
        found: dict[str, dict[str, Any]] = {}
        for path, artifact in self.files.items():
            if not path.startswith(prefix):
                continue
            depth = path[len(prefix) :].count("/")
            for directory in _directories(path):
                if directory.startswith(prefix) and (
                    recursive or directory[len(prefix) :].count("/") == 0
                ):
                    found[directory] = _directory_item(directory, self.commit)
            if recursive or depth == 0:
                found[path] = _file_item(artifact)
        if base and not found:
            return None
        return [found[path] for path in sorted(found)]

    def info(self, paths: Iterable[str]) -> list[dict[str, Any]]:
        """The items of ``paths`` that exist (files and directories), in the order asked."""
        directories = {d for path in self.files for d in _directories(path)}
        items = []
        for path in paths:
            path = path.strip("/")
            if path in self.files:
                items.append(_file_item(self.files[path]))
            elif path in directories:
                items.append(_directory_item(path, self.commit))
        return items


def _hub_time(moment: datetime) -> str:
    """The Hub's timestamp form (``2024-11-16T00:27:02.123456Z``), which its client parses."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _revision(checkpoint: Checkpoint, partner: Partner) -> Revision:
    """The checkpoint as ``partner`` sees it: a fingerprinted release's files are the
    partner's own copies (their SHA-256s, so the commit id is the partner's too);
    ``VariantsNotReady`` while one is being written."""
    files = partner_artifacts(checkpoint, partner)  # reads the prefetched artifacts
    body = manifest(checkpoint, files=files)
    return Revision(checkpoint, commit_id(body), {a.path: a for a in files})


def _release(partner: Partner, org: str, repo: str) -> Release:
    """The partner's release named by the repository id, or 404 ``RepoNotFound``."""
    if org != settings.ACCESSCTL_HUB_ORG:
        raise Problem(404, "not_found", f"No repository {org}/{repo}.")
    release, allowed = queries.hub_release(partner, repo)
    if not allowed:
        # Export control: no such repository for this partner, but the attempt is evidence.
        raise Hidden(Reason.JURISDICTION_BLOCKED)
    return release


def _find(checkpoints: list[Checkpoint], revision: str, partner: Partner) -> Checkpoint | None:
    """The checkpoint ``revision`` names by tag or commit id (not ``main``); a checkpoint
    whose copies for the partner are being written has no commit id yet."""
    for checkpoint in checkpoints:
        if checkpoint.tag == revision:
            return checkpoint
    if len(revision) == 40:
        for checkpoint in checkpoints:
            try:
                if _revision(checkpoint, partner).commit == revision:
                    return checkpoint
            except VariantsNotReady:
                continue
    return None


def _how_to_ask(checkpoint: Checkpoint) -> str:
    return (
        f"file one with `accessctl grants request {checkpoint}` or POST /api/v1/grants/ "
        f'{{"checkpoint": {checkpoint.pk}}}'
    )


class Access:
    """Who may download what of one release, for one request: decided before any
    revision or file name is looked at, so a caller who may download nothing is refused
    the same way whatever it names (docs/hub.md, *What a refusal tells*).

    A checkpoint may be downloaded now when the partner's grant for it passes the
    download decision (``rules.decide``, for 0 bytes: what a ``HEAD`` gets), or, without
    a grant, when its files are ``readable`` and the first use would issue one
    (``first_use_refusal``). ``main`` is the newest such checkpoint; when there is none,
    every name is refused with the refusal of the newest checkpoint not pulled (else the
    newest)."""

    def __init__(self, request: Request, partner: Partner, release: Release) -> None:
        self.request, self.partner, self.release = request, partner, release
        self.checkpoints = queries.hub_checkpoints(partner, release)
        self.grants = queries.hub_grants(partner, self.checkpoints)
        self._refusals: dict[int, Problem | None] = {}

    def refusal(self, checkpoint: Checkpoint) -> Problem | None:
        """Why the partner may not download ``checkpoint`` now, or ``None``."""
        if checkpoint.pk not in self._refusals:
            self._refusals[checkpoint.pk] = self._decide(checkpoint)
        return self._refusals[checkpoint.pk]

    def _decide(self, checkpoint: Checkpoint) -> Problem | None:
        grant = self.grants.get(checkpoint.pk)
        if grant is None:
            try:
                readable(self.partner, checkpoint)
            except Problem as unreadable:
                return unreadable
            return first_use_refusal(self.request, self.partner, checkpoint)
        return grant_refusal(self.request, grant)

    def main(self) -> Checkpoint:
        """The newest checkpoint the partner may download now, else the refusal."""
        for checkpoint in self.checkpoints:
            if self.refusal(checkpoint) is None:
                return checkpoint
        available = [
            c for c in self.checkpoints if states.checkpoint_state(c) == Checkpoint.Status.AVAILABLE
        ]
        shown = (available or self.checkpoints)[:1]
        if not shown:
            raise Problem(
                404, "revision_not_found", f"Release {self.release.slug} has no checkpoint yet."
            )
        raise cast(Problem, self.refusal(shown[0]))

    def revision(self, revision: str) -> Revision:
        """The revision ``revision`` names (``main``, a tag or a commit id), once the
        partner may download it; else the refusal (the same for every name when the
        partner may download nothing), or 404 ``RevisionNotFound``."""
        if revision == MAIN:
            return self._files(self.main())
        found = _find(self.checkpoints, revision, self.partner)
        if found is not None and self.refusal(found) is None:
            return self._files(found)
        self.main()  # refused whatever the name, when nothing may be downloaded
        if found is not None:
            raise cast(Problem, self.refusal(found))
        raise Problem(
            404,
            "revision_not_found",
            f"Release {self.release.slug} has no checkpoint {revision!r}.",
        )

    def _files(self, checkpoint: Checkpoint) -> Revision:
        try:
            return _revision(checkpoint, self.partner)
        except VariantsNotReady as waiting:
            raise variants_not_ready(self.request, checkpoint, waiting) from None

    def grant(self, checkpoint: Checkpoint) -> Grant | None:
        return self.grants.get(checkpoint.pk)


def first_use_refusal(request: Request, partner: Partner, checkpoint: Checkpoint) -> Problem | None:
    """Why a partner without a grant for ``checkpoint`` (its files ``readable``) would not
    get one on first use, as ``POST /api/v1/grants/`` would give it: before the public
    time a request must be approved (403 ``grant_request_pending`` or
    ``grant_request_needed``, saying how to file it); after it, the token must have the
    scope ``grants:request``. ``None``: the first use issues one."""
    how = _how_to_ask(checkpoint)
    if rules.is_early_access(timezone.now(), checkpoint.release.public_release_at):
        if queries.pending_request_exists(partner, checkpoint):
            return Problem(
                403,
                "grant_request_pending",
                f"Your grant request for {checkpoint} waits for the lab's approval; "
                "downloads work once it is approved.",
            )
        return Problem(
            403,
            "grant_request_needed",
            f"Before the public release, {checkpoint} needs an approved grant request: {how}.",
        )
    if "grants:request" not in presented_token(request).scopes:
        return Problem(
            403,
            "grant_request_needed",
            f"You hold no grant for {checkpoint} and this token cannot ask for one "
            f"(it lacks the scope 'grants:request'): {how}.",
        )
    return None


def _as_written(request: Request, revision: str, path: str, index: int) -> tuple[str, str]:
    """The revision and the path after it as the client wrote them, a revision holding
    ``/`` included (``refs/pr/1``, which the client sends as ``refs%2Fpr%2F1``).

    The server decodes ``%2F`` before routing, so the route may have cut the revision at
    its first slash. The raw request line, where the server keeps it (gunicorn's
    ``RAW_URI``, uWSGI's and nginx's ``REQUEST_URI``), says where it ends: its
    ``index``-th path segment (after ``SCRIPT_NAME``'s). Without it, a revision ``refs``
    followed by two segments is read as ``refs/<kind>/<name>``, the Hub's only revisions
    with slashes (a checkpoint's tag has none: such a revision is RevisionNotFound)."""
    raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    if raw:
        script = request.META.get("SCRIPT_NAME", "").strip("/")
        segments = urlsplit(raw).path.split("/")[len(script.split("/")) if script else 0 :]
        if len(segments) > index:
            return unquote(segments[index]), unquote("/".join(segments[index + 1 :]))
        return revision, path
    if revision == "refs":
        parts = path.split("/", 2)
        if len(parts) >= 2:
            return "/".join(["refs", *parts[:2]]), "/".join(parts[2:])
    return revision, path


# -- views -----------------------------------------------------------------------------------


@extend_schema(exclude=True)
class HubView(APIView):
    """A partner's token, the caller rules and the API's rate, as every v1 view; errors
    with the Hub's headers (``hub_error``)."""

    permission_classes = [PartnerCaller]
    required_scope = "read"
    # What a refused request named, for its audit event (partners.api.evidence).
    url_collections = {"repo": "releases", "path": "files"}
    commit: str | None = None

    def handle_exception(self, exc: Exception) -> Response:
        # DRF's stub says Response; the API's handler answers a plain problem response.
        return cast(Response, hub_error(super().handle_exception(exc), self.commit))

    def access(self, org: str, repo: str) -> Access:
        partner = caller_partner(self.request)
        return Access(self.request, partner, _release(partner, org, repo))

    def revision(self, org: str, repo: str, revision: str) -> Revision:
        """The revision, once the partner may download it (``Access``)."""
        found = self.access(org, repo).revision(revision)
        self.commit = found.commit
        return found


class ModelInfoView(HubView):
    """``GET /api/models/{org}/{repo}[/revision/{revision}]``: the repository at a
    revision: ``sha`` (the commit id) and ``siblings`` (every file, with its SHA-256)."""

    def get(self, request: Request, org: str, repo: str, revision: str = MAIN) -> Response:
        found = self.revision(org, repo, revision)
        checkpoint = found.checkpoint
        siblings = []
        for artifact in found.files.values():
            item = _file_item(artifact)
            siblings.append(
                {
                    "rfilename": artifact.path,
                    "size": artifact.size,
                    "blobId": item["oid"],
                    "lfs": {
                        "sha256": artifact.sha256,
                        "size": artifact.size,
                        "pointerSize": item["lfs"]["pointerSize"],
                    },
                }
            )
        repo_id = f"{org}/{repo}"
        return Response(
            {
                "_id": repo_id,
                "id": repo_id,
                "modelId": repo_id,
                "author": org,
                "sha": found.commit,
                "lastModified": _hub_time(checkpoint.registered_at),
                "createdAt": _hub_time(checkpoint.registered_at),
                "private": True,
                "gated": "manual",
                "disabled": False,
                "tags": [f"checkpoint:{checkpoint.tag}"],
                "siblings": siblings,
            },
            headers={"X-Repo-Commit": found.commit},
        )


class TreeView(HubView):
    """``GET /api/models/{org}/{repo}/tree/{revision}[/{path}]?recursive=true``: the
    files and directories, sorted by path, ``ACCESSCTL_HUB_TREE_PAGE`` a page, the next
    page in ``Link: <url>; rel="next"`` (its ``cursor`` is signed: 400
    ``cursor_invalid`` for any other)."""

    def get(self, request: Request, org: str, repo: str, revision: str, path: str = "") -> Response:
        revision, path = _as_written(request, revision, path, 6)
        found = self.revision(org, repo, revision)
        recursive = request.query_params.get("recursive", "").lower() in {"true", "1"}
        entries = found.entries(path.strip("/"), recursive=recursive)
        if entries is None:
            raise Problem(404, "file_not_found", f"The checkpoint has no directory {path!r}.")
        signer = signing.Signer(salt=f"accessctl.hub.tree:{request.path}")
        start = 0
        if (cursor := request.query_params.get("cursor")) is not None:
            try:
                start = int(signer.unsign(cursor))
            except (signing.BadSignature, ValueError) as exc:
                raise Problem(
                    400, "cursor_invalid", "This cursor was not given out by this server."
                ) from exc
        size = settings.ACCESSCTL_HUB_TREE_PAGE
        headers = {"X-Repo-Commit": found.commit}
        if start + size < len(entries):
            url = replace_query_param(
                request.build_absolute_uri(), "cursor", signer.sign(str(start + size))
            )
            headers["Link"] = f'<{url}>; rel="next"'
        return Response(entries[start : start + size], headers=headers)


class PathsInfoView(HubView):
    """``POST /api/models/{org}/{repo}/paths-info/{revision}`` (form field ``paths``,
    repeated): the items of the paths that exist, as the tree lists them."""

    parser_classes = [FormParser, MultiPartParser, BoundedJSONParser]

    def post(self, request: Request, org: str, repo: str, revision: str) -> Response:
        found = self.revision(org, repo, revision)
        data: Any = request.data
        paths = data.getlist("paths") if hasattr(data, "getlist") else data.get("paths", [])
        if isinstance(paths, str):
            paths = [paths]
        return Response(
            found.info(str(p) for p in paths[:1000]),
            headers={"X-Repo-Commit": found.commit},
        )


class AuthCheckView(HubView):
    """``GET /api/models/{org}/{repo}/auth-check``: 200 when the partner may download
    ``main`` now (``Access``), else the refusal a download of it would get; nothing is
    charged or issued."""

    def get(self, request: Request, org: str, repo: str) -> Response:
        self.revision(org, repo, MAIN)
        return Response({"access": "granted"})


class NoRepositoryView(HubView):
    """A path of the Hub's shape that names no repository here: another organisation's
    ``/{org}/{repo}/resolve/...``, a dataset's or a space's (``/datasets/...``,
    ``/api/datasets/...``, ``/spaces/...``, ``/api/spaces/...``): 404 ``RepoNotFound``."""

    def get(self, request: Request, **kwargs: str) -> Response:
        raise Problem(404, "not_found", "No such repository.")

    head = post = get


class WhoAmIView(HubView):
    """``GET /api/whoami-v2``: the token's holder, as the Hub's client reads it."""

    def get(self, request: Request) -> Response:
        token, partner = presented_token(request), caller_partner(request)
        return Response(
            {
                "type": "user",
                "id": str(token.user_id),
                "name": request.user.get_username(),
                "fullname": partner.legal_name,
                "orgs": [{"type": "org", "name": partner.slug}],
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": token.name, "role": "read"},
                },
            }
        )


def _warning(grant: Grant, repo_id: str, now: datetime) -> str | None:
    """``X-HF-Warning`` (``topic; message``, printed once a topic) when the grant expires
    within ``ACCESSCTL_HUB_WARN_HOURS`` or has used ``ACCESSCTL_HUB_WARN_QUOTA`` of its
    quota, as it stood before this request."""
    notes = []
    left = grant.expires_at - now
    if left <= timedelta(hours=settings.ACCESSCTL_HUB_WARN_HOURS):
        hours = max(0, int(left.total_seconds() // 3600))
        notes.append(
            f"your grant #{grant.pk} expires at {formats.moment(grant.expires_at)} (in {hours} h)"
        )
    if grant.bytes_used >= settings.ACCESSCTL_HUB_WARN_QUOTA * grant.quota_bytes:
        share = 100 * grant.bytes_used // max(grant.quota_bytes, 1)
        notes.append(
            f"your grant #{grant.pk} has used {grant.bytes_used} of {grant.quota_bytes} "
            f"bytes ({share}%)"
        )
    if not notes:
        return None
    return _header_text(f"accessctl-grant-{grant.pk}; {repo_id}: {'; '.join(notes)}.")


class ResolveView(HubView):
    """``GET``/``HEAD /{org}/{repo}/resolve/{revision}/{path}``: one file, as
    ``GET /api/v1/grants/{id}/files/{path}`` sends it (``downloads.send_file``: Range,
    preconditions, the mode, the debit), plus ``X-Repo-Commit``, ``X-Linked-Etag``
    (``"<sha256>"``) and ``X-Linked-Size``. An absent file is 404 ``EntryNotFound`` with
    ``X-Repo-Commit``."""

    required_scope = "download"
    refusal_event = AuditAction.DOWNLOAD_DENIED

    def get(
        self, request: Request, org: str, repo: str, revision: str, path: str
    ) -> HttpResponseBase:
        revision, path = _as_written(request, revision, path, 4)
        partner = caller_partner(request)
        access = self.access(org, repo)
        found = access.revision(revision)
        self.commit = found.commit
        if path not in found.files:
            raise Problem(
                404,
                "file_not_found",
                f"The checkpoint has no file {path!r}.",
                headers={"X-Repo-Commit": found.commit},
            )
        grant = access.grant(found.checkpoint) or self._first_use(partner, found.checkpoint)
        grant, artifact = queries.download_target(partner, grant.pk, path)
        assert artifact is not None  # noqa: S101 (the revision lists it)
        response = send_file(request, grant, artifact, via="hub")
        response["X-Repo-Commit"] = found.commit
        response["X-Linked-Etag"] = f'"{artifact.sha256}"'
        response["X-Linked-Size"] = str(artifact.size)
        if warning := _warning(grant, f"{org}/{repo}", timezone.now()):
            response["X-HF-Warning"] = warning
        return response

    def head(
        self, request: Request, org: str, repo: str, revision: str, path: str
    ) -> HttpResponseBase:
        return self.get(request, org, repo, revision, path)

    def _first_use(self, partner: Partner, checkpoint: Checkpoint) -> Grant:
        """A grant for a partner that never had one for the checkpoint (``Access`` found
        that the first use issues one), as ``POST /api/v1/grants/`` gives it."""
        try:
            grant_request = actions.request_grant(
                actor=acting_user(self.request), partner=partner, checkpoint=checkpoint
            )
        except ActionError as exc:
            # The client asks for several files at once: a concurrent first use issued it
            # (request_grant serializes on the partner's row, so it is committed now).
            issued = queries.hub_grant(partner, checkpoint)
            if exc.code != "grant_exists" or issued is None:
                raise
            return issued
        assert grant_request.grant is not None  # noqa: S101 (after the public time: issued)
        return grant_request.grant
