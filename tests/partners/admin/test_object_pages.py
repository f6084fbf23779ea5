"""An object's portal page tells its whole story, and its buttons go through a
confirmation page that restates the impact, asks why, and then calls the list action's
own function (so every rule holds as on every other path).

Pages: partner (windows, grants with use, tokens with last use, members, downloads,
open requests), release (windows with state, checkpoints, grants, policy), grant (use,
download events, its signed token's lifetime); each in a fixed number of queries.
Buttons: suspend, revoke, pull, kill switch, approve, reject.
"""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accessctl.audit.models import AuditEvent
from partners import actions
from partners.forbidden import PORTAL_OPERATIONS
from partners.models import (
    Checkpoint,
    Grant,
    GrantApproval,
    GrantRequest,
    Partner,
    Release,
    Revocation,
)
from tests import factories as f
from tests.accessctl.test_admin_matrix import changed_tables, fingerprint
from tests.accessctl.test_portal import portal_client
from tests.evidence import last_event_id

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
FILES = {"model.safetensors": b"\x00" * 4096, "config.json": b"{}"}


@pytest.fixture
def world():
    partner = f.partner("aurora")
    release = f.release("v3", public_in=-DAY)
    checkpoint = f.stored_checkpoint(release, FILES)
    f.window(release, partner)
    grant = f.grant(checkpoint, partner, quota_bytes=8192)
    f.authorize(grant, requested_bytes=2048)
    member = f.partner_user(partner)
    f.token(member)
    upcoming = f.release("v4", public_in=30 * DAY)
    f.window(upcoming, partner)
    request = actions.request_grant(
        actor=member, partner=partner, checkpoint=f.checkpoint(upcoming), quota_bytes=4096
    )
    return {
        "partner": partner,
        "release": release,
        "checkpoint": checkpoint,
        "grant": grant,
        "member": member,
        "request": request,
        "upcoming": upcoming,
    }


def _as(client: Client, role: str | None):
    return portal_client(client, f.superuser() if role is None else f.staff(role))


def _page(c: Client, name: str, pk: int) -> str:
    response = c.get(reverse(f"admin:partners_{name}_change", args=[pk]))
    assert response.status_code == 200
    return response.content.decode()


def _section(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}".*?</(table|dl|p)>', html, re.S)
    assert match, f"no #{element_id} on the page"
    return match[0]


# The pages


def test_partner_page_shows_windows_grants_tokens_members_downloads_and_requests(world, client):
    html = _page(_as(client, "Security officer"), "partner", world["partner"].pk)
    assert "v3" in _section(html, "story-windows") and "Open" in _section(html, "story-windows")
    grants = _section(html, "story-grants")
    assert f"grant #{world['grant'].pk}" in grants
    assert '<progress max="100" value="25"' in grants and "2.0 KiB of 8.0 KiB" in grants
    token = world["member"].access_tokens.get()
    assert token.prefix in _section(html, "story-tokens")
    assert world["member"].username in _section(html, "story-members")
    downloads = _section(html, "story-downloads")
    assert "success" in downloads and "2.0 KiB" in downloads
    assert f"request #{world['request'].pk}" in _section(html, "story-requests")


def test_release_page_shows_windows_with_state_checkpoints_grants_and_policy(world, client):
    html = _page(_as(client, "Release manager"), "release", world["release"].pk)
    assert "aurora" in _section(html, "story-windows")
    assert "Open" in _section(html, "story-windows")
    checkpoints = _section(html, "story-checkpoints")
    assert world["checkpoint"].tag in checkpoints and "4.0 KiB" in checkpoints
    assert f"grant #{world['grant'].pk}" in _section(html, "story-grants")
    assert "All but the listed jurisdictions" in _section(html, "story-policy")


def test_grant_page_shows_use_downloads_and_its_tokens_lifetime(world, client):
    grant = world["grant"]
    html = _page(_as(client, "Compliance"), "grant", grant.pk)
    assert "25%" in _section(html, "story-usage") and "6.0 KiB left" in html
    assert "model.safetensors" in _section(html, "story-downloads")
    token = _section(html, "story-token")
    assert "valid" in token and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", token)


def _grow(world, n: int) -> None:
    """More rows of every kind the pages read, for the partner and the release."""
    for i in range(n):
        other = f.partner()
        release = f.release(public_in=-DAY)
        f.window(release, world["partner"])
        f.window(world["release"], other)
        cp = f.checkpoint(release, tag=f"grow{i}")
        grant = f.grant(cp, world["partner"])
        f.authorize(grant)
        f.grant(f.checkpoint(world["release"], tag=f"theirs{i}"), other)
        f.token(f.partner_user(world["partner"]))
        f.authorize(world["grant"])
        actions.request_grant(
            actor=world["member"],
            partner=world["partner"],
            checkpoint=f.checkpoint(world["upcoming"], tag=f"req{i}"),
            quota_bytes=1,
        )


def _count(c: Client, url: str) -> int:
    c.get(url)  # warm: session, permissions cache
    with CaptureQueriesContext(connection) as queries:
        assert c.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("name", ["partner", "release", "grant", "grantrequest"])
def test_object_pages_issue_a_fixed_number_of_queries(world, client, name):
    c = _as(client, None)
    obj = {
        "partner": world["partner"],
        "release": world["release"],
        "grant": world["grant"],
        "grantrequest": world["request"],
    }[name]
    url = reverse(f"admin:partners_{name}_change", args=[obj.pk])
    small = _count(c, url)
    _grow(world, 4)
    large = _count(c, url)
    if small != large:  # name the repeated queries
        with CaptureQueriesContext(connection) as queries:
            c.get(url)
        print("\n".join(q["sql"][:300] for q in queries.captured_queries))
    assert small == large, f"{name}: {small} queries, then {large} with more rows (N+1)"


# The buttons: offered by role and state


def _buttons(html: str) -> set[str]:
    return set(re.findall(r'id="button-(\w+)"', html))


@pytest.mark.parametrize(
    ("role", "page", "offered"),
    [
        ("Security officer", "partner", {"suspend"}),
        ("Partner manager", "partner", {"suspend"}),
        ("Release manager", "partner", set()),
        ("Compliance", "partner", set()),
        ("Security officer", "grant", {"revoke"}),
        ("Release manager", "grant", {"revoke"}),
        ("Compliance", "grant", set()),
        ("Security officer", "checkpoint", {"pull"}),
        ("Partner manager", "checkpoint", set()),
        ("Security officer", "release", {"withdraw"}),
        ("Release manager", "release", set()),
        ("Release manager", "grantrequest", {"approve", "reject"}),
        ("Security officer", "grantrequest", set()),
    ],
)
def test_buttons_are_offered_to_whom_the_authority_table_allows(world, client, role, page, offered):
    obj = {
        "partner": world["partner"],
        "grant": world["grant"],
        "checkpoint": world["checkpoint"],
        "release": world["release"],
        "grantrequest": world["request"],
    }[page]
    assert _buttons(_page(_as(client, role), page, obj.pk)) == offered


def test_no_button_where_it_would_change_nothing(world, client):
    c = _as(client, None)
    actions.suspend_partner(actor=None, partner=world["partner"], reason="x")
    assert "suspend" not in _buttons(_page(c, "partner", world["partner"].pk))
    url = reverse("admin:partners_partner_suspend", args=[world["partner"].pk])
    # Reached by its address, the page says up front that it would change nothing.
    page = c.get(url).content.decode()
    assert "Refused: aurora is already suspended: suspend would change nothing." in page
    assert 'id="confirm-form"' not in page
    response = c.post(url, {"reason": "again"})
    assert response.status_code == 302 and response["Location"].endswith(
        f"/partner/{world['partner'].pk}/change/"
    )


@pytest.mark.parametrize(
    ("name", "kind", "undo", "state"),
    [
        ("partners_grant_revoke", "grant", "revoke", "revoked"),
        ("partners_checkpoint_pull", "checkpoint", "pull", "pulled"),
        ("partners_release_withdraw", "release", "withdraw", "withdrawn"),
        ("partners_grantrequest_approve", "request", "reject", "rejected"),
        ("partners_grantrequest_reject", "request", "reject", "rejected"),
    ],
)
def test_every_confirmation_states_up_front_that_it_would_change_nothing(
    world, client, name, kind, undo, state
):
    obj = world[kind]
    do = {
        "revoke": lambda: actions.revoke_grant(actor=None, grant=obj, reason="x"),
        "pull": lambda: actions.pull_checkpoint(actor=None, checkpoint=obj, reason="x"),
        "withdraw": lambda: actions.withdraw_release(actor=None, release=obj, reason="x"),
        "reject": lambda: actions.reject_grant_request(actor=None, request=obj, reason="x"),
    }
    do[undo]()
    page = _as(client, None).get(reverse(f"admin:{name}", args=[obj.pk])).content.decode()
    assert re.search(rf"Refused: [^<]* is already {state}: ", page), page
    assert 'id="confirm-form"' not in page


# The confirmation page


def test_suspend_confirmation_restates_the_impact_and_changes_nothing(world, client):
    c = _as(client, "Security officer")
    before = fingerprint()
    url = reverse("admin:partners_partner_suspend", args=[world["partner"].pk])
    html = c.get(url).content.decode()
    assert not changed_tables(before) - {"django_session"}, "a GET changed something"
    facts = _section(html, "impact-facts")
    assert "Grants that will be revoked</dt><dd>1<" in facts
    assert "Quota left on them</dt><dd>6.0 KiB<" in facts
    assert "People who will lose access</dt><dd>1<" in facts
    assert "Pending requests that will be rejected</dt><dd>1<" in facts
    sentence = _section(html, "impact")
    assert "its 1 usable grant will be revoked and its 1 pending request rejected" in sentence
    assert "(s)" not in html and "1 grants" not in html
    assert f"grant #{world['grant'].pk}" in _section(html, "impact-grants")
    assert 'name="reason"' in html and "csrfmiddlewaretoken" in html


def test_suspend_needs_a_reason_then_suspends_as_the_bulk_action_does(world, client):
    officer = f.staff("Security officer")
    c = portal_client(client, officer)
    url = reverse("admin:partners_partner_suspend", args=[world["partner"].pk])
    refused = c.post(url, {"reason": "  "})
    assert refused.status_code == 400 and "This field is required." in refused.content.decode()
    assert Partner.objects.get(pk=world["partner"].pk).status == Partner.Status.ACTIVE
    done = c.post(url, {"reason": "Leaked weights"})
    assert done.status_code == 302
    revocation = Revocation.objects.get(partner=world["partner"])
    said = [str(m) for m in c.get(done["Location"]).context["messages"]]
    assert said == [
        f'Partner aurora suspended; <a href="/admin/partners/revocation/{revocation.pk}/change/">'
        f"revocation #{revocation.pk}</a> is ending its grants and notifying people."
    ]
    partner = Partner.objects.get(pk=world["partner"].pk)
    assert (partner.status, partner.status_reason) == ("suspended", "Leaked weights")
    event = AuditEvent.objects.get(action="partner.suspended")
    assert event.actor == officer and event.changes["reason"] == "Leaked weights"
    assert Revocation.objects.get(partner=partner).requested_by == officer


def test_the_confirmation_needs_csrf(world, client):
    officer = f.staff("Security officer")
    c = portal_client(Client(enforce_csrf_checks=True), officer)
    url = reverse("admin:partners_partner_suspend", args=[world["partner"].pk])
    assert c.post(url, {"reason": "no token"}).status_code == 403
    assert Partner.objects.get(pk=world["partner"].pk).status == Partner.Status.ACTIVE


def test_revoke_pull_and_kill_switch_from_their_pages(world, client):
    c = _as(client, "Security officer")
    grant = world["grant"]
    assert (
        c.post(
            reverse("admin:partners_grant_revoke", args=[grant.pk]), {"reason": "r1"}
        ).status_code
        == 302
    )
    assert Grant.objects.get(pk=grant.pk).status == Grant.Status.REVOKED
    cp = world["checkpoint"]
    page = c.get(reverse("admin:partners_checkpoint_pull", args=[cp.pk])).content.decode()
    assert "Nobody will be able to download v3:" in page
    c.post(reverse("admin:partners_checkpoint_pull", args=[cp.pk]), {"reason": "r2"})
    assert Checkpoint.objects.get(pk=cp.pk).status == Checkpoint.Status.PULLED
    release = world["release"]
    page = c.get(reverse("admin:partners_release_withdraw", args=[release.pk])).content.decode()
    assert "Kill switch" in page and "Open windows that will end</dt><dd>1<" in page
    c.post(reverse("admin:partners_release_withdraw", args=[release.pk]), {"reason": "r3"})
    assert Release.objects.get(pk=release.pk).status == Release.Status.WITHDRAWN
    assert list(
        AuditEvent.objects.filter(
            action__in=["grant.revoked", "checkpoint.pulled", "release.withdrawn"]
        )
        .order_by("pk")
        .values_list("action", "changes__reason")
    ) == [("grant.revoked", "r1"), ("checkpoint.pulled", "r2"), ("release.withdrawn", "r3")]


def test_reject_from_the_requests_page(world, client):
    c = _as(client, "Release manager")
    url = reverse("admin:partners_grantrequest_reject", args=[world["request"].pk])
    assert c.post(url, {"reason": "not this quarter"}).status_code == 302
    request = GrantRequest.objects.get(pk=world["request"].pk)
    assert (request.status, request.rejection_reason) == ("rejected", "not this quarter")


# The two-person rule holds on the button as on every path


def test_approve_button_keeps_four_eyes(world, client, settings):
    settings.ACCESSCTL_EARLY_ACCESS_APPROVALS = 2
    first, second = f.staff("Release manager"), f.staff("Release manager")
    filed = actions.request_grant(
        actor=first,
        partner=world["partner"],
        checkpoint=f.checkpoint(world["upcoming"], tag="staff-filed"),
        quota_bytes=10,
    )
    url = reverse("admin:partners_grantrequest_approve", args=[filed.pk])
    own = portal_client(client, first)
    # The requester is told before pressing anything: the button is disabled, its page
    # states the refusal the action would make, and offers nothing to press.
    change = _page(own, "grantrequest", filed.pk)
    assert 'id="button-approve" class="object-button disabled"' in change
    assert "You filed this request; another staff member must approve it." in change
    assert url not in change
    page = own.get(url).content.decode()
    assert "Refused: You filed this request" in page and 'id="confirm-form"' not in page
    refused = own.post(url, {"reason": "mine"})
    assert refused.status_code == 400  # shown again with the action's refusal
    assert not GrantApproval.objects.filter(request=filed).exists()
    assert AuditEvent.objects.filter(action="grant_request.refused", actor=first).exists()

    other = portal_client(Client(), second)
    page = other.get(url).content.decode()
    assert "1 more approval will be needed" in page and "Refused" not in page
    assert "Already approved by</dt><dd>nobody yet<" in page
    assert re.search(r"Window</dt><dd>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC to ", page)
    assert "The grant would expire</dt><dd>" in page
    assert other.post(url, {"reason": "checked the NDA"}).status_code == 302
    after = other.get(url).content.decode()
    assert "Refused: You already approved this request" in after
    assert f"Already approved by</dt><dd>{second} at " in after
    assert 'id="button-approve" class="object-button disabled"' in _page(
        other, "grantrequest", filed.pk
    )
    event = AuditEvent.objects.get(action="grant_request.approved", actor=second)
    assert event.changes["note"] == "checked the NDA"
    again = other.post(url, {"reason": "twice"})
    assert again.status_code == 400
    assert GrantApproval.objects.filter(request=filed).count() == 1
    assert GrantRequest.objects.get(pk=filed.pk).status == GrantRequest.Status.PENDING


# Refused: every button page, for a role without its right, on GET and POST


BUTTON_PAGES = [
    ("partners_partner_suspend", "partner", "Release manager"),
    ("partners_grant_revoke", "grant", "Partner manager"),
    ("partners_checkpoint_pull", "checkpoint", "Partner manager"),
    ("partners_release_withdraw", "release", "Release manager"),
    ("partners_grantrequest_approve", "request", "Security officer"),
    ("partners_grantrequest_reject", "request", "Compliance"),
]


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize(("name", "target", "role"), BUTTON_PAGES)
def test_a_role_without_the_right_is_refused_and_the_refusal_recorded(
    world, client, name, target, role, method
):
    person = f.staff(role)
    c = portal_client(client, person)
    obj = world[target]
    since = last_event_id()
    before = fingerprint()
    url = reverse(f"admin:{name}", args=[obj.pk])
    response = getattr(c, method)(url, {"reason": "try"} if method == "post" else None)
    assert response.status_code == 403
    assert changed_tables(before) - {"django_session"} == {"audit_auditevent"}
    (refused,) = AuditEvent.objects.filter(pk__gt=since)
    label = obj._meta.label_lower
    assert (refused.actor, refused.reason, refused.target_id) == (person, "forbidden", str(obj.pk))
    assert refused.changes["operation"] == str(PORTAL_OPERATIONS[(label, f"url:{name}")])


def test_no_refusal_tells_whether_an_object_exists(client):
    c = _as(client, "Compliance")
    assert c.get(reverse("admin:partners_partner_suspend", args=[999999])).status_code == 403
    c = _as(Client(), "Security officer")
    assert c.get(reverse("admin:partners_partner_suspend", args=[999999])).status_code == 404


def test_grant_requests_open_with_the_time_they_were_filed(world, client):
    html = _page(_as(client, "Release manager"), "grantrequest", world["request"].pk)
    stamp = timezone.localtime(world["request"].requested_at)
    assert stamp.strftime("%Y-%m-%d %H:%M:%S UTC") in html


def test_the_kill_switch_counts_and_lists_upcoming_windows_too(world, client):
    later = f.partner("tessel")
    f.window(world["release"], later, opens=5 * DAY, closes=9 * DAY)
    url = reverse("admin:partners_release_withdraw", args=[world["release"].pk])
    html = _as(client, "Security officer").get(url).content.decode()
    assert "Open windows that will end</dt><dd>1<" in html
    assert "Upcoming windows that will never open</dt><dd>1<" in html
    assert "its 1 open window will end, its 1 upcoming window will never open" in html
    windows = _section(html, "impact-windows")
    assert "aurora" in windows and "tessel" in windows


# Reinstating a suspended partner from its page


def test_a_suspended_partner_is_reinstated_from_its_page(world, client):
    partner = world["partner"]
    actions.suspend_partner(actor=None, partner=partner, reason="audit")
    officer = f.staff("Security officer")
    c = portal_client(client, officer)
    url = reverse("admin:partners_partner_reinstate", args=[partner.pk])
    # Refused up front while the suspension's fan-out still runs.
    assert _buttons(_page(c, "partner", partner.pk)) == {"reinstate"}
    page = c.get(url).content.decode()
    assert "Refused: Partner aurora&#x27;s grants are still being revoked" in page
    assert 'id="confirm-form"' not in page
    actions.cascade_revocation(Revocation.objects.get(partner=partner).pk)
    page = c.get(url).content.decode()
    assert "aurora will be let back in" in page and "Refused" not in page
    assert "Suspended because</dt><dd>audit<" in page
    assert "Revoked grants that stay revoked</dt><dd>1<" in page
    done = c.post(url, {"reason": "audit passed"})
    assert done.status_code == 302
    assert Partner.objects.get(pk=partner.pk).status == Partner.Status.ACTIVE
    event = AuditEvent.objects.get(action="partner.reinstated")
    assert (event.actor, event.changes["reason"]) == (officer, "audit passed")
    said = [str(m) for m in c.get(done["Location"]).context["messages"]]
    assert said == ["Partner aurora reinstated."]
    assert _buttons(_page(c, "partner", partner.pk)) == {"suspend"}


def test_reinstate_is_refused_to_a_role_without_the_right(world, client):
    partner = world["partner"]
    actions.suspend_partner(actor=None, partner=partner, reason="audit")
    person = f.staff("Release manager")
    since = last_event_id()
    url = reverse("admin:partners_partner_reinstate", args=[partner.pk])
    assert portal_client(client, person).post(url, {"reason": "x"}).status_code == 403
    (refused,) = AuditEvent.objects.filter(pk__gt=since, action="partner.refused")
    assert (refused.actor, refused.reason) == (person, "forbidden")
    assert refused.changes["operation"] == "partner.reinstate"
    assert Partner.objects.get(pk=partner.pk).status == Partner.Status.SUSPENDED


# The list's bulk actions say the same refusals before anyone confirms.


@pytest.mark.parametrize(
    ("model", "action", "kind", "undo", "state"),
    [
        ("grant", "revoke", "grant", "revoke", "revoked"),
        ("checkpoint", "pull", "checkpoint", "pull", "pulled"),
        ("release", "withdraw", "release", "withdraw", "withdrawn"),
        ("grantrequest", "reject", "request", "reject", "rejected"),
        ("partner", "suspend", "partner", "suspend", "suspended"),
    ],
)
def test_every_bulk_confirmation_states_up_front_what_it_would_refuse(
    world, client, model, action, kind, undo, state
):
    obj = world[kind]
    do = {
        "revoke": lambda: actions.revoke_grant(actor=None, grant=obj, reason="x"),
        "pull": lambda: actions.pull_checkpoint(actor=None, checkpoint=obj, reason="x"),
        "withdraw": lambda: actions.withdraw_release(actor=None, release=obj, reason="x"),
        "reject": lambda: actions.reject_grant_request(actor=None, request=obj, reason="x"),
        "suspend": lambda: actions.suspend_partner(actor=None, partner=obj, reason="x"),
    }
    c = _as(client, None)
    url = reverse(f"admin:partners_{model}_changelist")
    before = last_event_id()
    fresh = c.post(url, {"action": action, "_selected_action": [obj.pk]}).content.decode()
    assert "will be refused" not in fresh and "bulk-refusals" not in fresh
    do[undo]()
    page = c.post(url, {"action": action, "_selected_action": [obj.pk]}).content.decode()
    assert "0 of 1 selected will change; 1 will be refused" in page, page
    assert re.search(rf": will be refused \([a-z_]+\): [^<]* is already {state}: ", page), page
    assert 'name="reason"' in page  # still asked: confirming reports each refusal again
    # Asking changes nothing and writes nothing but what ``do`` wrote.
    assert not AuditEvent.objects.filter(
        pk__gt=before, action__endswith=".refused", actor__isnull=False
    ).exists()


def test_a_bulk_confirmation_counts_what_will_change_among_the_selected(world, client):
    borealis = f.partner("borealis")
    f.window(world["release"], borealis)
    other = f.grant(world["checkpoint"], borealis, quota_bytes=4096)
    actions.revoke_grant(actor=None, grant=world["grant"], reason="x")
    page = (
        _as(client, "Security officer")
        .post(
            reverse("admin:partners_grant_changelist"),
            {"action": "revoke", "_selected_action": [world["grant"].pk, other.pk]},
        )
        .content.decode()
    )
    assert "1 of 2 selected will change; 1 will be refused" in page
    assert page.count("will be refused (") == 1


def test_a_bulk_reinstatement_says_a_running_suspension_refuses_it(world, client):
    actions.suspend_partner(actor=None, partner=world["partner"], reason="x")
    assert Revocation.objects.filter(status=Revocation.Status.PENDING).exists()
    page = (
        _as(client, None)
        .post(
            reverse("admin:partners_partner_changelist"),
            {"action": "reinstate", "_selected_action": [world["partner"].pk]},
        )
        .content.decode()
    )
    assert "will be refused (revocation_in_progress)" in page
