"""Partner API v1. Every query goes through a partner-scoped selector."""

from base64 import b64decode
from collections.abc import Sequence
from typing import Any, cast
from urllib import parse

from django.conf import settings
from django.core import signing
from django.db.models import Count, QuerySet, Sum
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, pagination, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from accessctl.actors import acting_user
from accessctl.audit.events import AuditAction, record
from accessctl.audit.models import Outcome
from accessctl.codes import Code
from accessctl.signing.keys import sign_tokens
from partners import actions, queries, rules, states
from partners.errors import ActionError
from partners.manifests import VariantsNotReady, signed_manifest
from partners.models import Checkpoint, EmbargoWindow, Grant, GrantRequest, Partner, Release

from . import serializers as s
from .auth import PartnerCaller, caller_partner, presented_token
from .errors import Hidden, Problem, failure_problem

__all__ = [
    "CheckpointListView",
    "GrantDetailView",
    "GrantListView",
    "GrantRequestDetailView",
    "ManifestView",
    "MeView",
    "ReleaseListView",
    "variants_not_ready",
]


class Cursor(pagination.CursorPagination):
    """Cursor pagination whose cursors are signed: a cursor is this server's own output or
    400 ``cursor_invalid``, never a value decoded from whatever a client wrote (DRF's
    cursor carries the position it filters on). A cursor is bound to the list that gave it
    out (its URL's path is in the signature): another list refuses it."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    @staticmethod
    def signer(path: str) -> signing.Signer:
        return signing.Signer(salt=f"accessctl.api.cursor:{path}")

    def encode_cursor(self, cursor: pagination.Cursor) -> str:
        url = super().encode_cursor(cursor)
        query = parse.parse_qs(parse.urlsplit(url).query, keep_blank_values=True)
        encoded = query[self.cursor_query_param][0]
        signed = self.signer(parse.urlsplit(url).path).sign(encoded)
        return replace_query_param(url, self.cursor_query_param, signed)

    def decode_cursor(self, request: Request) -> pagination.Cursor | None:
        presented = request.query_params.get(self.cursor_query_param)
        if presented is None:
            return None
        try:
            encoded = self.signer(request.path).unsign(presented)
            tokens = parse.parse_qs(b64decode(encoded.encode("ascii")).decode("ascii"))
            position = tokens.get("p", [None])[0]
            return pagination.Cursor(
                offset=pagination._positive_int(
                    tokens.get("o", ["0"])[0], cutoff=self.offset_cutoff
                ),
                reverse=bool(int(tokens.get("r", ["0"])[0])),
                # An id: every list is ordered by ``-id``.
                position=None if position is None else int(position),
            )
        except (signing.BadSignature, ValueError, UnicodeError) as exc:
            raise Problem(
                400, "cursor_invalid", "This cursor was not given out by this server."
            ) from exc


class NoStore(APIView):
    # For views whose answers carry a secret (signed grant tokens, a new token): no cache,
    # shared or private, may keep them, whatever the answer (a refusal included). A
    # comment, not a docstring: the schema would show it as the endpoints' description.

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response


class PartnerView(APIView):
    permission_classes = [PartnerCaller]
    required_scope = "read"

    @property
    def partner(self) -> Partner:
        return caller_partner(self.request)


def open_window(partner: Partner, release: Release) -> EmbargoWindow:
    """The partner's open window for the release, or a 403 saying why there is none."""
    now = timezone.now()
    window = queries.window_for_display(partner, release, now)
    result = rules.window_access(
        now=now,
        release_slug=release.slug,
        opens_at=window.opens_at if window else None,
        closes_at=window.closes_at if window else None,
    )
    if isinstance(result, rules.Failure):
        raise failure_problem(403, result)
    # Not None: ``window_access`` refuses a missing window (``no_window``).
    return cast(EmbargoWindow, window)


def readable(partner: Partner, checkpoint: Checkpoint) -> EmbargoWindow:
    """The partner's open window, if the checkpoint's file list may be read: refused as a
    download of it would be (a manifest, a Hub repository's files list what to fetch):
    403 ``release_withdrawn``, ``checkpoint_pulled``, or ``open_window``'s refusal. (The
    checkpoint list still shows such a checkpoint, as pulled.)"""
    if checkpoint.release.status == Release.Status.WITHDRAWN:
        raise Problem(403, "release_withdrawn", f"Release {checkpoint.release.slug} was withdrawn.")
    if states.checkpoint_state(checkpoint) == Checkpoint.Status.PULLED:
        raise Problem(403, "checkpoint_pulled", f"Checkpoint {checkpoint} was pulled.")
    return open_window(partner, checkpoint.release)


def variants_not_ready(
    request: Request, checkpoint: Checkpoint, waiting: VariantsNotReady
) -> Problem:
    """503 ``variant_not_ready`` (with ``Retry-After``) for a checkpoint of a fingerprinted
    release whose files the partner's copies do not all exist of yet: its manifest (and
    Hub revision) would name bytes the partner cannot have. Recorded here as
    ``api.denied`` naming the checkpoint (the refusal evidence rule writes 4xx only)."""
    seconds = settings.ACCESSCTL_VARIANT_RETRY_SECONDS
    token = presented_token(request)
    record(
        AuditAction.API_DENIED,
        actor=acting_user(request),
        target=checkpoint,
        partner_id=token.partner_id,
        outcome=Outcome.DENIED,
        reason=Code.VARIANT_NOT_READY.value,
        changes={
            "checkpoint": str(checkpoint.pk),
            "files": waiting.paths[:20],
            "path": request.path[:300],
            "method": request.method,
            "prefix": token.prefix,
        },
        client_address=request.META.get("REMOTE_ADDR"),
    )
    return Problem(
        503,
        Code.VARIANT_NOT_READY,
        f"Your copy of {checkpoint} is still being written (its files are marked for your "
        f"organisation); try again in {seconds} seconds.",
        headers={"Retry-After": str(seconds)},
        recorded=True,
    )


def grant_tokens(grants: list[Grant]) -> dict[int, str]:
    """A signed token for each usable grant: valid from the window's opening to expiry."""
    usable = [g for g in grants if g.status in {Grant.Status.ACTIVE, Grant.Status.EXHAUSTED}]
    signed = sign_tokens(
        [
            {
                "sub": f"grant:{g.pk}",
                "grant": g.pk,
                "partner": g.partner_id,
                "checkpoint": g.checkpoint_id,
                "nbf": int(g.window.opens_at.timestamp()),
                "exp": int(g.expires_at.timestamp()),
            }
            for g in usable
        ]
    )
    return {g.pk: token for g, token in zip(usable, signed, strict=True)}


@extend_schema(responses=s.MeSerializer, summary="The token's partner, scopes and expiry")
class MeView(PartnerView, APIView):
    def get(self, request: Request) -> Response:
        token, partner = presented_token(request), self.partner
        return Response(
            {
                "user": request.user.get_username(),
                "partner": {
                    "slug": partner.slug,
                    "legal_name": partner.legal_name,
                    "jurisdiction": str(partner.jurisdiction),
                    "status": partner.status,
                    "nda_expires_at": partner.nda_expires_at.isoformat(),
                },
                "token": {
                    "name": token.name,
                    "prefix": token.prefix,
                    "scopes": token.scopes,
                    "expires_at": token.expires_at.isoformat(),
                },
            }
        )


@extend_schema(summary="Releases you have a window for, with the window's state")
class ReleaseListView(PartnerView, generics.ListAPIView):
    serializer_class = s.ReleaseSerializer
    pagination_class = Cursor

    def get_queryset(self) -> QuerySet[Release]:
        return queries.visible_releases_with_windows(self.partner)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        now = timezone.now()
        rows = [
            {
                "slug": r.slug,
                "name": r.name,
                "public_release_at": r.public_release_at,
                "status": r.status,
                "withdrawn_at": r.withdrawn_at,
                "window": queries.display_window(queries.prefetched_windows(r), now),
            }
            for r in page or []
        ]
        return self.get_paginated_response(s.ReleaseSerializer(rows, many=True).data)


@extend_schema(summary="Checkpoints of a release, while your window is open")
class CheckpointListView(PartnerView, generics.ListAPIView):
    serializer_class = s.CheckpointSerializer
    pagination_class = Cursor

    def get_queryset(self) -> QuerySet[Checkpoint]:
        release = queries.partner_release(self.partner, self.kwargs["slug"])
        open_window(self.partner, release)
        return (
            Checkpoint.objects.filter(release=release)
            .select_related("release")
            .annotate(file_count=Count("artifacts"), byte_count=Sum("artifacts__size"))
        )


@extend_schema(
    summary="Files, sizes and SHA-256 of a checkpoint, signed by the lab",
    responses={
        200: OpenApiResponse(
            response=OpenApiTypes.OBJECT,
            description="{manifest: {release, checkpoint, tag, training_step, files: [{path, size, "
            "sha256}]}, signature: {alg, kid, signature}}: Ed25519 over the manifest's canonical "
            "JSON (sorted keys, no spaces, UTF-8).",
        )
    },
)
class ManifestView(PartnerView, APIView):
    def get(self, request: Request, checkpoint_id: int) -> Response:
        checkpoint = queries.partner_checkpoint(self.partner, checkpoint_id)
        readable(self.partner, checkpoint)
        try:
            return Response(signed_manifest(checkpoint, self.partner))
        except VariantsNotReady as waiting:
            raise variants_not_ready(request, checkpoint, waiting) from None


class GrantListView(NoStore, PartnerView, generics.ListAPIView):
    """Your grants (GET), or ask for one (POST: 201 issued, 202 waiting for approval)."""

    serializer_class = s.GrantSerializer
    pagination_class = Cursor

    def get_queryset(self) -> QuerySet[Grant]:
        return queries.partner_grants(self.partner)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = list(self.paginate_queryset(self.get_queryset()) or [])
        data = s.GrantSerializer(page, many=True, context={"grant_tokens": grant_tokens(page)}).data
        return self.get_paginated_response(data)

    def get_permissions(self) -> Sequence[Any]:  # DRF's stub names a private protocol
        if self.request.method == "POST":
            self.required_scope = "grants:request"
        return super().get_permissions()

    @extend_schema(
        request=s.GrantRequestInputSerializer,
        responses={201: s.GrantSerializer, 202: s.GrantRequestSerializer},
        summary="Request a grant for a checkpoint",
    )
    def post(self, request: Request) -> Response:
        data = s.GrantRequestInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        checkpoint, allowed = queries.windowed_checkpoint(
            self.partner, data.validated_data["checkpoint"]
        )
        try:
            # For a release whose export policy blocks the partner, the action refuses
            # (``jurisdiction_blocked``) and records it; the answer stays 404, as for
            # anything the partner cannot see.
            grant_request = actions.request_grant(
                actor=acting_user(request),
                partner=self.partner,
                checkpoint=checkpoint,
                quota_bytes=data.validated_data.get("quota_bytes"),
                note=data.validated_data["note"],
            )
        except ActionError as exc:
            if not allowed:  # the refusal's event is the action's (partners.api.evidence)
                raise Hidden(exc.code, evidence=exc.evidence) from exc
            raise
        if grant_request.status == GrantRequest.Status.APPROVED:
            grant = queries.partner_grant(self.partner, grant_request.grant.pk)
            body = s.GrantSerializer(grant, context={"grant_tokens": grant_tokens([grant])}).data
            return Response(
                body,
                status=status.HTTP_201_CREATED,
                headers={"Location": f"/api/v1/grants/{grant.pk}"},
            )
        return Response(
            s.GrantRequestSerializer(grant_request).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": f"/api/v1/grant-requests/{grant_request.pk}"},
        )


@extend_schema(
    responses=s.GrantSerializer, summary="One grant, with quota left and its signed token"
)
class GrantDetailView(NoStore, PartnerView, APIView):
    def get(self, request: Request, grant_id: int) -> Response:
        grant = queries.partner_grant(self.partner, grant_id)
        return Response(
            s.GrantSerializer(grant, context={"grant_tokens": grant_tokens([grant])}).data
        )


@extend_schema(responses=s.GrantRequestSerializer, summary="A grant request and its state")
class GrantRequestDetailView(PartnerView, APIView):
    def get(self, request: Request, request_id: int) -> Response:
        return Response(
            s.GrantRequestSerializer(queries.partner_grant_request(self.partner, request_id)).data
        )
