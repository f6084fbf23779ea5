"""No staff role can read a secret through the portal's changelists (issue #11).

Generated: every registered ModelAdmin x every secret field it can reach (directly or
through relations, up to three hops) x lookup kinds must be refused with 400; ordering
by such a field must change nothing; no list column, filter or search field touches one.
A newly registered admin or a new secret field joins the matrix by itself.
"""

from collections import deque

import pytest
from django.contrib import admin
from django.db.models import Model
from django.db.models.constants import LOOKUP_SEP
from django.urls import reverse

from accessctl.admin_secrets import SECRET_FIELDS, touches_secret
from accessctl.signing.keys import current_key
from tests import factories as f
from tests.accessctl.test_portal import portal_client

pytestmark = pytest.mark.django_db

LOOKUPS = {"exact": "0", "startswith": "a", "regex": "^[0-9a-f]", "gt": "0"}
MAX_HOPS = 3


def secret_paths(model: type[Model]) -> list[str]:
    """The shortest path from ``model`` to each secret field it can reach."""
    found: dict[tuple[str, str], str] = {}
    queue = deque([(model, "", 0)])
    seen = {model}
    while queue:
        current, prefix, hops = queue.popleft()
        label = current._meta.label_lower
        for name in sorted(SECRET_FIELDS.get(label, ())):
            found.setdefault((label, name), prefix + name)
        if hops == MAX_HOPS:
            continue
        for field in current._meta.get_fields(include_hidden=False):
            related = getattr(field, "related_model", None)
            if not field.is_relation or related is None or isinstance(related, str):
                continue
            name = getattr(field, "related_query_name", None)
            name = name() if callable(name) and field.auto_created else field.name
            if related not in seen:
                seen.add(related)
                queue.append((related, f"{prefix}{name}{LOOKUP_SEP}", hops + 1))
    return sorted(found.values())


CASES = [
    (model._meta.label_lower, path)
    for model in admin.site._registry
    for path in secret_paths(model)
]
ADMINS = sorted(model._meta.label_lower for model in admin.site._registry)


def _admin(label):
    return next((m, a) for m, a in admin.site._registry.items() if m._meta.label_lower == label)


def _changelist(label):
    model, _ = _admin(label)
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


@pytest.fixture
def superuser_client(client):
    """A superuser (sees every admin) and at least one row holding each secret."""
    user = f.superuser()
    c = portal_client(client, user)
    partner = f.partner()
    f.token(f.partner_user(partner))
    f.invite(f.partner_user(partner))
    f.token(user)  # a staff token, and a backup-code device with a used code
    f.backup_code(user)
    current_key()
    return c


def _count(response):
    return response.context["cl"].result_count


def test_the_matrix_covers_every_secret_field_and_the_known_relations():
    reached = {path.rsplit(LOOKUP_SEP, 1)[-1] for _, path in CASES}
    assert reached >= {"digest", "code_digest", "password", "key", "token"}
    assert ("partners.partner", "access_tokens__digest") in CASES
    assert any(
        label == "partners.grant" and path.endswith("access_tokens__digest")
        for label, path in CASES
    )
    assert len(CASES) >= len(ADMINS)


@pytest.mark.parametrize(("label", "path"), CASES, ids=[f"{a}:{p}" for a, p in CASES])
def test_lookups_on_secret_fields_are_refused(superuser_client, label, path):
    url = _changelist(label)
    baseline = superuser_client.get(url)
    assert baseline.status_code == 200
    count = _count(baseline)
    for kind, value in LOOKUPS.items():
        response = superuser_client.get(url, {f"{path}__{kind}": value})
        assert response.status_code == 400, (kind, response.status_code)
    response = superuser_client.get(url, {path: value})
    assert response.status_code == 400
    for order in (path, f"-{path}"):
        response = superuser_client.get(url, {"o": order})
        assert response.status_code == 200 and _count(response) == count
    # Searching for a digest's characters finds nothing more than searching for nonsense.
    searched = superuser_client.get(url, {"q": "0"})
    assert searched.status_code == 200 and _count(searched) <= count


@pytest.mark.parametrize("label", ADMINS)
def test_no_column_filter_search_or_ordering_touches_a_secret(superuser_client, rf, label):
    model, model_admin = _admin(label)
    request = rf.get("/")
    request.user = superuser_client.session and f.superuser()
    for name in (
        *model_admin.get_list_display(request),
        *model_admin.get_search_fields(request),
        *model_admin.get_sortable_by(request),
        *(model_admin.get_ordering(request) or ()),
    ):
        assert not (isinstance(name, str) and touches_secret(model, name)), name
    for item in model_admin.get_list_filter(request):
        name = item[0] if isinstance(item, tuple | list) else item
        assert not (isinstance(name, str) and touches_secret(model, name)), name
    # Every sortable column: the ordering it applies reaches no secret.
    url = _changelist(label)
    response = superuser_client.get(url)
    assert response.status_code == 200
    columns = len(response.context["cl"].list_display)
    for index in range(columns):
        response = superuser_client.get(url, {"o": f"-{index}"})
        assert response.status_code == 200
        for term in response.context["cl"].queryset.query.order_by:
            assert not (isinstance(term, str) and touches_secret(model, term)), term


def test_the_reported_probe_is_refused(superuser_client):
    """``?digest__startswith=`` one character at a time, as in the issue."""
    url = reverse("admin:partners_accesstoken_changelist")
    for probe in ("digest__startswith", "user__access_tokens__digest__startswith"):
        for char in "0123456789abcdef":
            assert superuser_client.get(url, {probe: char}).status_code == 400


def test_ordinary_filters_still_work(superuser_client):
    url = reverse("admin:partners_accesstoken_changelist")
    response = superuser_client.get(url, {"revoked_at__isnull": "True"})
    assert response.status_code == 200 and _count(response) >= 1
    users = reverse("admin:auth_user_changelist")
    assert superuser_client.get(users, {"is_staff__exact": "1"}).status_code == 200
