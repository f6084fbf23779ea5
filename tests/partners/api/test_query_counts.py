"""Query-count pins on the hot paths: token lookup, authorization, the partner lists,
the download and the portal's dashboard.

The download path's speed comes from doing its work in a fixed, small number of
statements (docs/benchmarks.md). Each path here is measured twice, before and after the
data grows (more releases, checkpoints, grants, windows and requests), and must issue
the same number of queries both times (no N+1) and exactly the number pinned in
tests/query_counts.json. A change that adds a query fails here; if the query is meant,
change the pin in the same commit, so the cost is a visible line in the diff.
"""

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from partners import actions
from tests import factories as f

pytestmark = pytest.mark.django_db

PINS = json.loads((Path(__file__).parents[2] / "query_counts.json").read_text())
DAY = timedelta(days=1)
FILES = {"model.safetensors": b"\x00" * 1024, "config.json": b"{}"}


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


class World:
    """One partner with a grant on a stored checkpoint; ``grow()`` adds rows of every
    kind the measured paths read, for this partner and for another."""

    def __init__(self) -> None:
        self.partner = f.partner("aurora-gpu")
        self.release = f.release("frontier")
        self.checkpoint = f.stored_checkpoint(self.release, FILES)
        f.window(self.release, self.partner)
        self.grant = f.grant(self.checkpoint, self.partner)
        self.member = f.partner_user(self.partner)
        self.partner_api = bearer(f.token(self.member))
        self.compliance = f.staff("Compliance")
        self.staff_api = bearer(f.token(self.compliance, scopes=["staff"]))
        self.manager = f.staff("Release manager")
        self.grown = 0

    def grow(self) -> None:
        self.grown += 1
        other = f.partner()
        for _ in range(3):
            release = f.release()
            f.window(release, self.partner)
            f.window(release, other)
            f.many_grants(self.partner, release, 3, prefix=f"mine{self.grown}")
            f.many_grants(other, release, 2, prefix=f"theirs{self.grown}")
            actions.request_grant(
                actor=self.member,
                partner=self.partner,
                checkpoint=f.checkpoint(release, tag=f"requested{self.grown}"),
                note="bring-up",
            )

    def grant_token(self) -> str:
        return self.partner_api.get(f"/api/v1/grants/{self.grant.pk}").json()["token"]


def _portal(world: World, client) -> Callable[[], object]:
    device = TOTPDevice.objects.create(user=world.manager, name="phone", confirmed=True)
    client.force_login(world.manager)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return lambda: client.get("/admin/")


def _object(
    world: World, client, model: str, pk: int, page: str = "change", *, superuser: bool = False
) -> Callable[[], object]:
    if superuser:
        world.manager = f.superuser()
    _portal(world, client)
    return lambda: client.get(f"/admin/partners/{model}/{pk}/{page}/")


PATHS: dict[str, Callable[[World, object], Callable[[], object]]] = {
    "token lookup: GET /api/v1/me": lambda w, c: lambda: w.partner_api.get("/api/v1/me"),
    "partner list: GET /api/v1/releases/": lambda w, c: (
        lambda: w.partner_api.get("/api/v1/releases/")
    ),
    "partner list: GET /api/v1/releases/<slug>/checkpoints/": lambda w, c: (
        lambda: w.partner_api.get(f"/api/v1/releases/{w.release.slug}/checkpoints/")
    ),
    "partner list: GET /api/v1/grants/": lambda w, c: lambda: w.partner_api.get("/api/v1/grants/"),
    "grant with its signed token: GET /api/v1/grants/<id>": lambda w, c: (
        lambda: w.partner_api.get(f"/api/v1/grants/{w.grant.pk}")
    ),
    "staff authorization, refused: POST /api/v1/staff/grants/<id>/revoke": lambda w, c: (
        lambda: w.staff_api.post(
            f"/api/v1/staff/grants/{w.grant.pk}/revoke", {"reason": "x"}, "json"
        )
    ),
    "portal dashboard: GET /admin/": lambda w, c: _portal(w, c),
    # An object's page with its story (partners/admin/pages.py) and buttons.
    "portal partner page: GET /admin/partners/partner/<id>/change/": lambda w, c: _object(
        w, c, "partner", w.partner.pk
    ),
    "portal release page: GET /admin/partners/release/<id>/change/": lambda w, c: _object(
        w, c, "release", w.release.pk
    ),
    "portal grant page: GET /admin/partners/grant/<id>/change/": lambda w, c: _object(
        w, c, "grant", w.grant.pk
    ),
    "portal suspend confirmation: GET /admin/partners/partner/<id>/suspend/": lambda w, c: _object(
        w, c, "partner", w.partner.pk, "suspend", superuser=True
    ),
    # The Hub-compatible endpoint (docs/hub.md): the client's metadata calls.
    "hub: GET /api/models/lab/<release>/revision/main": lambda w, c: (
        lambda: w.partner_api.get(f"/api/models/lab/{w.release.slug}/revision/main")
    ),
    "hub: HEAD /lab/<release>/resolve/main/<path>": lambda w, c: (
        lambda: w.partner_api.head(f"/lab/{w.release.slug}/resolve/main/model.safetensors")
    ),
}


def _count(request: Callable[[], object]) -> int:
    request()  # warm: sessions, caches and the signing key are read once per process
    with CaptureQueriesContext(connection) as queries:
        response = request()
    assert response.status_code < 500, response
    return len(queries)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_the_hot_paths_issue_their_pinned_number_of_queries(path, client):
    world = World()
    request = PATHS[path](world, client)
    small = _count(request)
    world.grow()
    world.grow()
    large = _count(request)
    assert small == large, f"{path}: {small} queries, then {large} once the data grew (N+1)"
    assert large == PINS.get(path), (
        f"{path}: {large} queries, pinned at {PINS.get(path)} in tests/query_counts.json"
    )


def test_a_download_is_decided_debited_and_audited_in_pinned_queries():
    """The download itself: token lookup, the grant with everything the rules read, the
    file's lease locked, and the debit with its audit event and the lease's change in one
    statement (partners/actions/downloads.py); the other two are the transaction's
    SAVEPOINT and RELEASE here (BEGIN and COMMIT in a server, which the test's own
    transaction turns into savepoints)."""
    world = World()
    path = "download: GET /api/v1/grants/<id>/files/<path>"

    def download() -> int:
        token = world.grant_token()
        with CaptureQueriesContext(connection) as queries:
            response = world.partner_api.get(
                f"/api/v1/grants/{world.grant.pk}/files/model.safetensors",
                HTTP_X_GRANT_TOKEN=token,
            )
            assert response.status_code == 200
            b"".join(response.streaming_content)
        return len(queries)

    download()
    small = download()
    world.grow()
    large = download()
    assert small == large, f"{path}: {small} queries, then {large} once the data grew (N+1)"
    assert large == PINS.get(path), (
        f"{path}: {large} queries, pinned at {PINS.get(path)} in tests/query_counts.json"
    )


SERVER_PATH = "download, as a server runs it (autocommit, the file's lease exists): GET files"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_servers_download_makes_one_statement_for_the_lease(s3_mode):
    """Outside a test's transaction (as gunicorn runs it), a file whose lease row exists:
    the token lookup, the grant with the file and its lease, and one statement for the
    lease's charge, the debit and its audit event (``_charge_read``). Without the lease read
    it was four: BEGIN and the lease row's lock, then the debit and COMMIT, two of them
    round trips."""
    world = World()
    token = world.grant_token()

    def download() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = world.partner_api.get(
                f"/api/v1/grants/{world.grant.pk}/files/model.safetensors",
                HTTP_X_GRANT_TOKEN=token,
            )
            assert response.status_code == 302, response.content
        return len(queries)

    download()  # the file's first request makes its lease row (two statements)
    small = download()
    world.grow()
    large = download()
    assert small == large, f"{SERVER_PATH}: {small} queries, then {large} once the data grew"
    assert large == PINS.get(SERVER_PATH), (
        f"{SERVER_PATH}: {large} queries, pinned at {PINS.get(SERVER_PATH)}"
    )


def _prepared() -> set[str]:
    """The statements this connection has prepared (PostgreSQL's own view of them), each
    as its first 40 characters, whitespace collapsed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return {" ".join(row[0].split())[:40] for row in cursor.fetchall()}


# The three statements of a server's download (accessctl/db.py): the token lookup, the
# grant with its file and lease, and the lease's charge with the debit and its event.
HOT = {
    "SELECT t.id, t.user_id, t.partner_id, t.",
    "SELECT g.id, g.status, g.expires_at, g.q",
    "WITH held AS ( SELECT id FROM partners_d",
}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("prepare", [True, False], ids=["prepared", "turned-off"])
def test_a_servers_download_runs_its_statements_prepared(s3_mode, settings, prepare):
    """PostgreSQL plans the download path's statements once per connection, not per
    request (planning the grant's seven-table join cost three times running it, measured
    in docs/benchmarks.md); ``DATABASE_PREPARED_STATEMENTS=false``, for a pooler that
    cannot keep prepared statements, prepares none, and the download is the same."""
    settings.ACCESSCTL_DB_PREPARE = prepare
    world = World()
    token = world.grant_token()
    url = f"/api/v1/grants/{world.grant.pk}/files/model.safetensors"
    connection.close()  # a new connection: nothing prepared in it yet
    for _ in range(3):  # the first makes the lease row; the next two take the hot path
        response = world.partner_api.get(url, HTTP_X_GRANT_TOKEN=token)
        assert response.status_code == 302, response.content
    prepared = _prepared()
    if prepare:
        assert prepared >= HOT, prepared
    else:
        assert not prepared & HOT, prepared
    world.grant.refresh_from_db()
    assert world.grant.bytes_used == 1024  # charged once, whichever way it ran


def test_every_pin_is_measured():
    """A pin without a measurement is a promise nobody checks."""
    from tests.partners.portal.test_matrix import PORTAL_PATHS

    measured = (
        set(PATHS)
        | {"download: GET /api/v1/grants/<id>/files/<path>", SERVER_PATH}
        | set(PORTAL_PATHS)
    )
    assert set(PINS) == measured
