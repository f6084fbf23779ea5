"""The authority model (``partners.authority``): one table, consulted by every action.

Generated over the table: every operation x every role, the self-only rules against other
people's credentials, and a static check that every action that takes an ``actor``
consults the table before it writes (a new action that forgets fails here).
"""

import ast
from pathlib import Path

import pytest

from partners.authority import RULES, Operation, Subject, as_markdown, authorize, may
from partners.errors import ActionForbidden
from partners.roles import ROLES
from tests import factories as f

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = ROOT / "partners" / "actions"

# Actions that take an ``actor`` but are not operations of the table, and why.
NOT_OPERATIONS = {
    # The download decision is the pure rule function (partners/decisions.py), applied
    # to the partner's token on every request; ``actor`` is only who is recorded.
    "authorize_download",
    "authorize_downloads",  # the same decision, once per file of a batch
    # Called only from inside actions that have already authorized their operation
    # (revoke_grant and update_partner; remove_member and the account actions; every
    # revocation).
    "start_revocation",
    "end_grant",
    "revoke_member_credentials",
    "revoke_tokens",  # remove_member's and the account actions' shared step
    # Leak attribution: a partner's key commitment and pending copies, made inside the
    # actions that give it a checkpoint (issuing a grant, turning fingerprinting on,
    # registering files), which authorized their own operation.
    "prepare_variants",
    "prepare_release_variants",
}


def _actions_taking_an_actor() -> dict[str, ast.FunctionDef]:
    found = {}
    for path in sorted(ACTIONS.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if (
                isinstance(node, ast.FunctionDef)
                and not node.name.startswith("_")
                and any(a.arg == "actor" for a in node.args.kwonlyargs)
            ):
                found[f"{path.stem}.{node.name}"] = node
    return found


def _calls(node: ast.AST) -> set[str]:
    return {
        n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", "")
        for n in ast.walk(node)
        if isinstance(n, ast.Call)
    }


def _helpers_calling_authorize() -> set[str]:
    names = set()
    for path in ACTIONS.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and "authorize" in _calls(node):
                names.add(node.name)
    return names


@pytest.mark.parametrize("name", sorted(_actions_taking_an_actor()))
def test_every_action_consults_the_authority_table(name):
    node = _actions_taking_an_actor()[name]
    if node.name in NOT_OPERATIONS:
        return
    calls = _calls(node)
    assert "authorize" in calls or calls & _helpers_calling_authorize(), (
        f"{name} takes an actor but never calls authority.authorize(): every state change "
        "must be an operation of partners.authority.RULES"
    )


def test_every_operation_is_used_by_the_code():
    source = "\n".join(
        p.read_text()
        for p in (ROOT / "partners").rglob("*.py")
        if p.name != "authority.py" and "migrations" not in p.parts
    )
    unused = [op.name for op in Operation if f"Operation.{op.name}" not in source]
    assert not unused, f"operations no entry point checks: {unused}"


def test_the_security_doc_shows_the_table_as_it_is_in_the_code():
    doc = (ROOT / "docs" / "security.md").read_text()
    assert as_markdown() in doc, "docs/security.md's authority table is stale: paste as_markdown()"


@pytest.mark.django_db
@pytest.mark.parametrize("operation", [op for op, rule in RULES.items() if rule.permission])
@pytest.mark.parametrize("role", [*ROLES, None])
def test_each_role_may_exactly_what_its_permissions_say(operation, role):
    user = f.staff(role)
    app_label, codename = RULES[operation].permission.split(".")
    holds = role is not None and (app_label, codename) in ROLES[role]
    assert may(user, operation) is holds
    if not holds:
        with pytest.raises(ActionForbidden) as refused:
            authorize(user, operation)
        assert refused.value.code == "forbidden" and str(operation) in refused.value.message


@pytest.mark.django_db
@pytest.mark.parametrize("operation", [op for op, r in RULES.items() if r.subject is Subject.SELF])
def test_credentials_act_only_for_their_owner(operation):
    owner, other = f.superuser(), f.superuser()
    assert may(owner, operation, owner)
    assert not may(owner, operation, other), "a superuser may not act as another person"


@pytest.mark.django_db
@pytest.mark.parametrize("operation", list(Operation))
def test_nobody_inactive_and_no_partner_member_acts_as_staff(operation):
    inactive = f.superuser(is_active=False)
    assert not may(inactive, operation)
    member = f.partner_user(f.partner())
    if RULES[operation].staff_only:
        assert not may(member, operation)


@pytest.mark.django_db
def test_a_partner_member_requests_only_for_their_own_partner():
    mine, theirs = f.partner(), f.partner()
    member = f.partner_user(mine)
    assert may(member, Operation.GRANT_REQUEST, mine)
    assert not may(member, Operation.GRANT_REQUEST, theirs)
    assert not may(f.staff("Partner manager"), Operation.GRANT_REQUEST, mine)
    assert may(f.staff("Release manager"), Operation.GRANT_REQUEST, mine)
