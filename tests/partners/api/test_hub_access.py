"""Who may download decides before any name is looked at (docs/hub.md, *What a refusal
tells*): a partner that may download nothing of a release gets the same answer on every
Hub route whatever revision and file it names, existing or made up, and no answer to it
carries ``X-Repo-Commit``. Generated: {each refusal state} x {existing / made-up revision}
x {existing / made-up file} x {every Hub route}. Plain HTTP through Django's test client
(the status and headers are the point here; tests/partners/api/test_hub.py drives the real
client)."""

import itertools
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from accessctl.audit.models import AuditEvent
from partners import actions
from partners.manifests import commit_id, manifest
from partners.models import EmbargoWindow, Grant
from tests import factories as f

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
FILES = {"config.json": b'{"model_type": "test"}', "weights/a.safetensors": b"x" * 100}
REVISIONS = ["main", "step-100", "{commit}", "step-999", "f" * 40]  # 3 real, 2 made up
PATHS = ["config.json", "weights/a.safetensors", "nope.json", "weights/nope.bin"]


class World:
    def __init__(
        self, *, public_in=-DAY, opens=-DAY, scopes=("read", "grants:request", "download")
    ):
        self.partner = f.partner()
        self.release = f.release(public_in=public_in)
        self.checkpoint = f.stored_checkpoint(self.release, FILES, tag="step-100")
        self.window = f.window(self.release, self.partner, opens=opens, closes=20 * DAY)
        self.user = f.partner_user(self.partner)
        self.token = f.token(self.user, scopes=scopes)
        self.commit = commit_id(manifest(self.checkpoint))
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.token}")

    def newer(self, tag: str = "step-200") -> str:
        """The lab registers a newer checkpoint; its commit id."""
        checkpoint = f.stored_checkpoint(self.release, {"config.json": b"{}"}, tag=tag)
        return commit_id(manifest(checkpoint))


def _window_not_open(w: World) -> None:
    pass  # World(opens=+1 day)


def _window_closed(w: World) -> None:
    # Behind the actions' back: set_window refuses a window that has closed already (and
    # no grant may outlive its window).
    Grant.objects.filter(window=w.window).update(
        issued_at=timezone.now() - 2 * DAY, expires_at=timezone.now() - DAY - timedelta(hours=1)
    )
    EmbargoWindow.objects.filter(pk=w.window.pk).update(
        opens_at=timezone.now() - 2 * DAY,
        closes_at=timezone.now() - DAY,
        embargo_lifts_at=timezone.now() - 2 * DAY,
    )


def _withdrawn(w: World) -> None:
    actions.withdraw_release(actor=f.staff("Security officer"), release=w.release, reason="t")


def _pulled(w: World) -> None:
    for checkpoint in w.release.checkpoints.all():
        actions.pull_checkpoint(actor=f.staff("Release manager"), checkpoint=checkpoint, reason="t")


def _grant_revoked(w: World) -> None:
    for checkpoint in w.release.checkpoints.all():
        grant = f.grant(checkpoint, w.partner)
        actions.revoke_grant(actor=f.staff("Release manager"), grant=grant, reason="t")


def _quota_exhausted(w: World) -> None:
    for checkpoint in w.release.checkpoints.all():
        grant = f.grant(checkpoint, w.partner)
        Grant.objects.filter(pk=grant.pk).update(status=Grant.Status.EXHAUSTED)


def _suspended(w: World) -> None:
    actions.suspend_partner(actor=f.staff("Security officer"), partner=w.partner, reason="t")


def _request_needed(w: World) -> None:
    pass  # World(public_in=+10 days): before the public time, no grant


def _request_pending(w: World) -> None:
    for checkpoint in w.release.checkpoints.all():
        actions.request_grant(actor=w.user, partner=w.partner, checkpoint=checkpoint)


def _no_scope(w: World) -> None:
    pass  # World(scopes without grants:request): no grant, none issued on first use


STATES = {
    "window_not_open": (_window_not_open, {"opens": DAY}),
    "window_closed": (_window_closed, {}),
    "release_withdrawn": (_withdrawn, {}),
    "checkpoint_pulled": (_pulled, {}),
    "grant_revoked": (_grant_revoked, {}),
    "quota_exhausted": (_quota_exhausted, {}),
    "partner_suspended": (_suspended, {}),
    "grant_request_needed": (_request_needed, {"public_in": 10 * DAY}),
    "grant_request_pending": (_request_pending, {"public_in": 10 * DAY}),
    "grant_request_needed/scope": (_no_scope, {"scopes": ("read", "download")}),
}


def _routes(w: World, revision: str, path: str):
    """Every Hub route naming (revision, path) as far as it names them."""
    repo, api = f"lab/{w.release.slug}", f"/api/models/lab/{w.release.slug}"
    c = w.client
    yield "HEAD resolve", c.head(f"/{repo}/resolve/{revision}/{path}")
    yield "GET resolve", c.get(f"/{repo}/resolve/{revision}/{path}")
    yield "model info", c.get(f"{api}/revision/{revision}")
    yield "tree", c.get(f"{api}/tree/{revision}?recursive=true")
    yield "subtree", c.get(f"{api}/tree/{revision}/{path}")
    yield "paths-info", c.post(f"{api}/paths-info/{revision}", {"paths": [path]})
    yield "model info at main", c.get(api)
    yield "auth-check", c.get(f"{api}/auth-check")


def _answer(response) -> tuple:
    """What a caller learns, apart from request-specific fields (the problem's
    ``instance``, the request id); a HEAD's body is empty, so it is the GET's that is
    compared."""
    body = response.json() if response.content else None
    if body is not None:
        for key in ("instance", "request_id"):
            body.pop(key, None)
    headers = {
        name: response.headers.get(name)
        for name in ("X-Error-Code", "X-Error-Message", "X-Repo-Commit", "Content-Type")
    }
    return response.status_code, headers, body


@pytest.mark.parametrize("state", list(STATES))
def test_a_partner_that_may_download_nothing_learns_no_names(state):
    setup, world_args = STATES[state]
    w = World(**world_args)
    new_commit = w.newer()
    setup(w)
    answers: dict[str, list[str]] = {}
    bodies: dict[str, list[str]] = {}
    for revision, path in itertools.product(REVISIONS, PATHS):
        revision = revision.format(commit=w.commit)
        for route, response in _routes(w, revision, path):
            asked = f"{route} {revision} {path}"
            status, headers, body = _answer(response)
            answers.setdefault(json.dumps([status, headers]), []).append(asked)
            if route != "HEAD resolve":
                bodies.setdefault(json.dumps(body, sort_keys=True), []).append(asked)
    # One answer for everything: the refusal, naming no revision.
    for seen in (answers, bodies):
        assert len(seen) == 1, "\n".join(f"{a}: {names[:3]}" for a, names in seen.items())
    ((status, headers),) = [json.loads(key) for key in answers]
    (body,) = [json.loads(key) for key in bodies]
    assert status in {403, 404} and body["code"] == state.split("/")[0]
    assert headers["X-Repo-Commit"] is None
    said = str(list(answers)) + str(list(bodies))
    assert w.commit not in said and new_commit not in said
    # Each refusal was recorded (one event per request).
    recorded = AuditEvent.objects.filter(reason=body["code"], outcome="denied")
    assert recorded.count() >= len(REVISIONS) * len(PATHS) * 8


def test_a_revoked_grants_refusal_names_the_grant_in_the_audit_trail():
    w = World()
    _grant_revoked(w)
    grant = Grant.objects.get(partner=w.partner)
    w.client.head(f"/lab/{w.release.slug}/resolve/main/nope.json")
    event = AuditEvent.objects.filter(action="download.denied").latest("id")
    assert (event.target_type, event.target_id) == ("partners.grant", str(grant.pk))
    assert event.reason == "grant_revoked" and event.changes["artifact"] == "nope.json"


def test_a_partner_that_may_download_learns_what_is_missing():
    w = World()
    api = f"/api/models/lab/{w.release.slug}"
    missing = w.client.head(f"/lab/{w.release.slug}/resolve/main/nope.json")
    assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "EntryNotFound"
    assert missing.headers["X-Repo-Commit"] == w.commit
    no_revision = w.client.get(f"{api}/revision/step-999")
    assert no_revision.status_code == 404
    assert no_revision.headers["X-Error-Code"] == "RevisionNotFound"
    assert "X-Repo-Commit" not in no_revision.headers


@pytest.mark.parametrize(
    "v1_state", ["grant_revoked", "quota_exhausted", "window_closed", "release_withdrawn"]
)
def test_v1_refuses_a_grant_the_same_whatever_file_is_named(v1_state):
    """API v1 is keyed by the grant: its owner, refused, learns no file names either."""
    w = World()
    grant = f.grant(w.checkpoint, w.partner)
    signed = w.client.get(f"/api/v1/grants/{grant.pk}").json()["token"]  # while usable
    if v1_state == "grant_revoked":
        actions.revoke_grant(actor=f.staff("Release manager"), grant=grant, reason="t")
    elif v1_state == "quota_exhausted":
        Grant.objects.filter(pk=grant.pk).update(status=Grant.Status.EXHAUSTED)
    else:
        STATES[v1_state][0](w)
    for headers in ({"HTTP_X_GRANT_TOKEN": signed}, {}):
        answers = set()
        for path in PATHS:
            response = w.client.get(f"/api/v1/grants/{grant.pk}/files/{path}", **headers)
            answers.add((response.status_code, response.json()["code"]))
        assert len(answers) == 1, answers
        assert {status for status, _ in answers} == {403}


# -- paths of the Hub's shape that name no repository here; no DEBUG page anywhere ---------

ELSEWHERE = [
    "/other/v4/resolve/main/config.json",
    "/datasets/lab/v4/resolve/main/data.parquet",
    "/spaces/lab/v4/resolve/main/app.py",
    "/api/datasets/lab/v4",
    "/api/datasets/lab/v4/revision/main",
    "/api/spaces/lab/v4",
    "/api/datasets",
]


@pytest.mark.parametrize("path", ELSEWHERE)
@pytest.mark.parametrize("method", ["get", "head"])
def test_a_hub_path_naming_no_repository_here_is_repo_not_found(path, method, settings):
    settings.DEBUG = True
    w = World()
    response = getattr(w.client, method)(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response["X-Error-Code"] == "RepoNotFound"
    if method == "get":
        assert response.json()["code"] == "not_found"
    # Recorded as every API refusal is.
    assert AuditEvent.objects.filter(reason="not_found", outcome="denied").count() == 1


UNKNOWN = ["/nothing-here", "/portal/nothing-here/", "/api/v1/nothing-here", "/lab/v4", "/x/y"]


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("path", UNKNOWN)
def test_no_path_answers_the_debug_404_page(path, debug, settings, client):
    settings.DEBUG = debug
    response = client.get(path, follow=True)
    assert response.status_code == 404
    body = response.content.decode()
    assert "DEBUG = True" not in body and "URLconf" not in body and "api/v1/" not in body
    if path.startswith(("/api/", "/lab/")):
        assert response["Content-Type"] == "application/problem+json"
    else:
        assert response["Content-Type"].startswith("text/html") and "Not found" in body


def test_a_views_http404_is_the_plain_page_with_debug_on(settings, client):
    """A page raising Http404 (an object that is not there) shows the plain page, not
    Django's technical one naming the view."""
    settings.DEBUG = True
    user = f.superuser()
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    response = client.get("/admin/auth/user/999999/password/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "DEBUG = True" not in body and "Raised by" not in body and "Not found" in body


# -- revisions holding "/" -----------------------------------------------------------------

RAW = {  # how the path arrives: decoded only (runserver, the test client), or with the
    # raw request line too (gunicorn's RAW_URI, nginx's and uWSGI's REQUEST_URI)
    "decoded": lambda uri: {},
    "RAW_URI": lambda uri: {"RAW_URI": uri},
    "REQUEST_URI": lambda uri: {"REQUEST_URI": uri},
}


@pytest.mark.parametrize("arrives", list(RAW))
@pytest.mark.parametrize("revision", ["refs/pr/1", "refs/convert/parquet"])
def test_a_revision_with_slashes_is_revision_not_found_by_its_whole_name(revision, arrives):
    w = World()
    encoded = revision.replace("/", "%2F")
    repo, api = f"lab/{w.release.slug}", f"/api/models/lab/{w.release.slug}"
    for uri, method in [
        (f"/{repo}/resolve/{encoded}/config.json", "head"),
        (f"/{repo}/resolve/{encoded}/config.json", "get"),
        (f"{api}/revision/{encoded}", "get"),
        (f"{api}/tree/{encoded}", "get"),
        (f"{api}/tree/{encoded}/weights", "get"),
    ]:
        response = getattr(w.client, method)(uri, **RAW[arrives](uri))
        assert response.status_code == 404, uri
        assert response["X-Error-Code"] == "RevisionNotFound", uri
        assert repr(revision) in response["X-Error-Message"], uri
        assert "X-Repo-Commit" not in response


# -- OPTIONS shows no internal text --------------------------------------------------------


def test_options_answers_405_without_the_views_docstrings():
    w = World()
    grant = f.grant(w.checkpoint, w.partner)
    api = f"/api/models/lab/{w.release.slug}"
    for path in [
        f"/lab/{w.release.slug}/resolve/main/config.json",
        api,
        f"{api}/tree/main",
        f"{api}/paths-info/main",
        f"{api}/auth-check",
        "/api/whoami-v2",
        f"/api/v1/grants/{grant.pk}/files/config.json",
        "/api/v1/grants/",
        "/api/v1/me",
    ]:
        response = w.client.options(path)
        assert response.status_code == 405, path
        assert response["Content-Type"] == "application/problem+json", path
        body = response.json()
        assert set(body) <= {"type", "title", "status", "detail", "code", "instance", "error"}
        assert "description" not in response.content.decode()
        assert "renders" not in body and "parses" not in body
