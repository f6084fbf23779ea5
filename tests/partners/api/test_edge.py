"""Hostile input gets a clear answer: every route under /api/ (enumerated from the URL
resolver, so a new route is covered the day it is added) x every kind of malformed input
answers problem+json with a documented ``code``: never a 500, never HTML. And each refusal
is evidence: exactly one audit event naming its target and that code (``download.denied``
on the download route)."""

import json
import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve

from partners.api.edge import csrf_failure
from tests import factories as f
from tests.evidence import last_event_id, the_refusal_since

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[3]
DOCS = (ROOT / "docs" / "api.md").read_text() + (ROOT / "docs" / "decisions.md").read_text()
DOCUMENTED = set(re.findall(r"`([a-z][a-z0-9_]*)`", DOCS))
PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")
# A well-formed value for each converter: the routes are reached, then one value is spoiled.
GOOD = {"id": "1", "slug": "fuzz-v1", "path": "model.bin", "str": "jsonl"}


def api_routes(patterns=None, prefix=""):
    """(route, view) of every pattern under /api/, from the live resolver."""
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from api_routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and route.startswith("api/"):
            yield route, pattern.callback


ROUTES = sorted({route for route, _ in api_routes()})


def methods_of(route):
    view = dict(api_routes())[route]
    cls = getattr(view, "cls", None) or getattr(view, "view_class", None)
    return {m for m in ("get", "post", "put") if hasattr(cls, m)}


def url(route, **spoiled):
    def fill(match):
        name, converter = match["name"], match["converter"] or "str"
        return spoiled.get(name, GOOD[converter])

    return "/" + PARAM.sub(fill, route)


def params(route, converter=None):
    return [
        m["name"] for m in PARAM.finditer(route) if converter is None or m["converter"] == converter
    ]


@pytest.fixture
def callers(settings):
    settings.ACCESSCTL_API_RATE = "1000000/min"
    partner = f.partner("fuzz-gpu")
    release = f.release("fuzz-v1")
    f.window(release, partner)
    f.grant(f.stored_checkpoint(release, {"model.bin": b"x" * 64}), partner)
    return {
        "partner": f.token(f.partner_user(partner)),
        "staff": f.token(f.superuser(), scopes=["staff"]),
    }


def call(callers, route, method, target, *, body=None, content_type="application/json", **headers):
    caller = "staff" if route.startswith("api/v1/staff/") else "partner"
    client = Client(raise_request_exception=False)
    kwargs = {"HTTP_AUTHORIZATION": f"Bearer {callers[caller]}", **headers}
    if body is not None:
        kwargs.update(data=body, content_type=content_type)
    return getattr(client, method)(target, **kwargs)


def assert_problem(response, status=None, code=None):
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("application/problem+json"), response.content[
            :200
        ]
        body = json.loads(response.content)
        assert body["code"] in DOCUMENTED, body
        assert body["status"] == response.status_code
        assert "Traceback" not in response.content.decode()
        if code:
            assert body["code"] == code, body
    if status:
        assert response.status_code == status, response.content[:300]


DOWNLOAD_ROUTES = {
    "api/v1/grants/<id:grant_id>/files/<path:path>",
    "api/v1/grants/<id:grant_id>/authorizations",
}


def assert_evidence(response, before, route=None):
    """A refusal (4xx) wrote exactly one event, with a target and the answered code."""
    if not 400 <= response.status_code < 500:
        return
    refusal = the_refusal_since(before, json.loads(response.content)["code"])
    if route is not None:
        assert (refusal.action == "download.denied") == (route in DOWNLOAD_ROUTES), refusal.action


def _cases():
    for route in ROUTES:
        methods = methods_of(route)
        first = sorted(methods)[0]
        for name in params(route):
            yield route, first, f"nul-in-{name}", {name: "a%00b"}, {}, (400, "path_invalid")
            yield route, first, f"control-in-{name}", {name: "a%1b%7f"}, {}, (400, "path_invalid")
        for name in params(route, "id"):
            yield route, first, f"huge-{name}", {name: "9" * 20}, {}, (404, "not_found")
            yield (
                route,
                first,
                f"bigint-plus-one-{name}",
                {name: str(2**63)},
                {},
                (404, "not_found"),
            )
            yield route, first, f"non-numeric-{name}", {name: "abc"}, {}, (404, "not_found")
            yield route, first, f"negative-{name}", {name: "-1"}, {}, (404, "not_found")
        for name in params(route, "slug"):
            yield route, first, f"long-{name}", {name: "s" * 1000}, {}, (None, None)
        yield route, first, "bad-cursor", {}, {"query": "?cursor=junk%21"}, (None, None)
        yield route, first, "control-in-query", {}, {"query": "?cursor=%00"}, (400, "query_invalid")
        yield route, first, "long-query", {}, {"query": "?x=" + "y" * 5000}, (414, "uri_too_long")
        yield route, first, "long-path", {}, {"suffix": "z" * 3000}, (414, "uri_too_long")
        yield (
            route,
            first,
            "huge-header",
            {},
            {"headers": {"HTTP_X_JUNK": "j" * 9000}},
            (
                431,
                "header_too_large",
            ),
        )
        yield (
            route,
            first,
            "range-junk",
            {},
            {"headers": {"HTTP_RANGE": "bytes=" + "9" * 5000}},
            (None, None),
        )
        yield route, "patch", "wrong-method", {}, {"body": "{}"}, (405, "method_not_allowed")
        yield (
            route,
            first,
            "oversized-body",
            {},
            # Past every route's limit (a detection's upload takes up to 20 GiB).
            {"headers": {"CONTENT_LENGTH": str(10**13)}},
            (
                413,
                "body_too_large",
            ),
        )
        yield (
            route,
            first,
            "not-acceptable",
            {},
            {"headers": {"HTTP_ACCEPT": "text/html"}},
            (
                None,
                None,
            ),
        )
        for method in sorted(methods & {"post", "put"}):
            deep = "[" * 100_000 + "]" * 100_000
            yield route, method, "deep-json", {}, {"body": deep}, (None, None)
            yield (
                route,
                method,
                "json-junk",
                {},
                {"body": '{"reason": "\\ud800", "x": NaN'},
                (None, None),
            )
            yield (
                route,
                method,
                "huge-int",
                {},
                {"body": json.dumps({"checkpoint": 10**30, "quota_bytes": 2**64, "size": 2**63})},
                (None, None),
            )
            yield (
                route,
                method,
                "digits",
                {},
                {"body": '{"checkpoint": ' + "1" * 5000 + "}"},
                (None, None),
            )
            yield (
                route,
                method,
                "wrong-content-type",
                {},
                {"body": "x=1", "content_type": "text/plain"},
                (None, None),
            )


CASES = list(_cases())


@pytest.mark.parametrize(
    ("route", "method", "kind", "spoiled", "extra", "expected"),
    CASES,
    ids=[f"{c[0]}:{c[2]}" for c in CASES],
)
def test_malformed_input_gets_a_documented_problem(
    callers, route, method, kind, spoiled, extra, expected
):
    target = url(route, **spoiled) + extra.get("suffix", "") + extra.get("query", "")
    before = last_event_id()
    response = call(
        callers,
        route,
        method,
        target,
        body=extra.get("body"),
        content_type=extra.get("content_type", "application/json"),
        **extra.get("headers", {}),
    )
    assert_problem(response, *expected)
    # A suffix makes a path no route of its own unless the route ends in a parameter.
    matched = route if kind != "long-path" or route.endswith(">") else "(no route)"
    assert_evidence(response, before, matched)


def test_every_route_is_in_the_matrix():
    """A guard in NetBox's manner: a route under /api/ with no cases fails here."""
    assert {c[0] for c in CASES} == set(ROUTES)
    assert len(ROUTES) >= 25


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/api/v1/nope", ("api.route", "/api/v1/nope")),
        ("/api/v1/grants/abc", ("partners.grant", "abc")),  # what it asked for, as it was
        ("/api/", ("api.route", "/api/")),
        ("/api/v2/me", ("api.route", "/api/v2/me")),
    ],
)
def test_unmatched_routes_are_problems_even_in_debug(settings, path, target):
    settings.DEBUG = True
    before = last_event_id()
    response = Client().get(path)
    assert_problem(response, 404, "not_found")
    refusal = the_refusal_since(before, "not_found", "api.denied")
    assert (refusal.target_type, refusal.target_id) == target


@pytest.mark.urls("tests.partners.api.edge_urls")
@pytest.mark.parametrize("debug", [True, False])
def test_a_server_error_is_a_problem_without_details(settings, debug):
    settings.DEBUG = debug
    response = Client(raise_request_exception=False).get("/api/v1/crash")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "server_error"
    assert (
        "SECRET" not in response.content.decode() and "Traceback" not in response.content.decode()
    )
    assert set(body) == {"type", "title", "status", "detail", "code"}


def test_pages_outside_the_api_keep_their_own_errors(settings):
    settings.DEBUG = False
    response = Client().get("/admin/nope/")
    assert not response.get("Content-Type", "").startswith("application/problem+json")


def test_csrf_failure_under_the_api_is_a_problem(rf):
    assert_problem(csrf_failure(rf.post("/api/v1/grants/")), 403, "csrf_failed")
    assert not csrf_failure(rf.post("/admin/"))["Content-Type"].startswith("application/problem")


SLASH_METHODS = ("get", "post", "put", "patch", "delete")


def _resolves(path):
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("route", ROUTES)
def test_a_missing_or_extra_trailing_slash_is_a_404_never_a_redirect(
    settings, callers, route, debug
):
    """APPEND_SLASH's redirect would drop a body (and is a 500 in DEBUG for a POST):
    under /api/ the URL with a slash too many or too few is a 404 ``not_found`` naming
    the right one, with its event, whatever the method and the mode."""
    settings.DEBUG = debug
    routed = url(route)
    toggled = routed[:-1] if routed.endswith("/") else routed + "/"
    assert_problem(call(callers, route, "get", routed))  # no redirect either way
    if _resolves(toggled):  # a <path:> ends the route: both spellings are its paths
        return
    for method in SLASH_METHODS:
        before = last_event_id()
        body = None if method == "get" else {"quota_bytes": 1}
        response = call(callers, route, method, toggled, body=body)
        assert_problem(response, 404, "not_found")
        if routed == toggled + "/":
            assert f"{routed} is one" in response.json()["detail"]
        the_refusal_since(before, "not_found", "api.denied")


@pytest.mark.parametrize("route", ROUTES)
def test_no_format_override_nor_suffix(callers, route):
    """``?format=`` is an ordinary (unknown) query parameter, never a renderer choice
    that 404s outside the schema, and ``.json`` suffixes are not routes."""
    plain = call(callers, route, "get", url(route))
    for fmt in ("xml", "api", "json", "yaml"):
        answer = call(callers, route, "get", url(route) + f"?format={fmt}")
        assert answer.status_code == plain.status_code, (fmt, answer.content[:200])
        assert_problem(answer)
    assert "format" not in route  # no format_suffix_patterns: no ``.json`` routes


def test_a_cursor_is_refused_by_any_list_but_its_own(callers):
    """Cursors are signed with their list's path: one list's cursor is not another's."""
    partner = f.partner("cursor-gpu")
    for n in range(3):
        release = f.release(f"cursor-v{n}")
        f.window(release, partner)
        f.grant(f.stored_checkpoint(release, {"model.bin": b"x" * 64}), partner, quota_bytes=64)
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {f.token(f.partner_user(partner))}"}
    releases = client.get("/api/v1/releases/?page_size=1", **auth).json()
    grants = client.get("/api/v1/grants/?page_size=1", **auth).json()
    assert releases["next"] and grants["next"]
    for own, other in (
        (releases["next"], "/api/v1/grants/"),
        (grants["next"], "/api/v1/releases/"),
    ):
        assert client.get(own, **auth).status_code == 200
        cursor = own.split("cursor=")[1].split("&")[0]
        before = last_event_id()
        refused = client.get(f"{other}?cursor={cursor}", **auth)
        assert_problem(refused, 400, "cursor_invalid")
        the_refusal_since(before, "cursor_invalid")
