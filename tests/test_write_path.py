"""One write path: a static check that no model is written outside an actions module.

Every state change is an action (docs/architecture.md, "Where each kind of logic lives"):
``partners/actions/`` for the domain, and the platform's declared action modules below
(the platform may not import the domain, so its few writes live beside its models). This
test reads the source (``ast``, nothing is imported) and fails on a model write anywhere
else: ``.save(``, ``.delete(``, ``.objects.create(``, a queryset's ``.update(`` or
``.delete(``, ``bulk_create``, ``bulk_update``, ``get_or_create``, ``update_or_create``,
``create_user``, or raw ``INSERT``/``UPDATE``/``DELETE`` SQL. Migrations and tests are
not scanned. An exception is a (file, function) pair in ``EXCEPTIONS`` with its reason:
a new write in the same file but another function still fails.
"""

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("accessctl", "client/accessctl_cli", "client/accessctl_wire", "partners")

ACTION_MODULES = ("partners/actions/",)
# The platform's action modules: each function in them that writes is the one place its
# change happens, with its audit event where a person causes it.
PLATFORM_ACTIONS = {
    "accessctl/signing/actions.py": "key rotation (audited) and the first key",
    "accessctl/audit/retention.py": "the audited retention procedure, with its minimum",
    "accessctl/audit/sealing.py": "sealing: leaves, tree nodes and signed checkpoints",
    "accessctl/audit/exports.py": "an export's request (audited), progress and failure",
}
EXCEPTIONS = {
    ("accessctl/audit/events.py", "record"): "the audit recorder itself",
    ("accessctl/audit/events.py", "insert_sql"): (
        "the recorder's INSERT, embedded in the hot path's one debit statement "
        "(partners/actions/downloads.py)"
    ),
    ("partners/api/evidence.py", "record_refusal"): (
        "a refused request's one audit event, written after the refused change rolled back"
    ),
    ("partners/portal_refusals.py", "_record"): (
        "a portal page or action refused for lack of permission: its one audit event, "
        "written after the admin's transaction rolled back"
    ),
    ("partners/refusals.py", "settle"): (
        "an action's refusal evidence, written after the action's transaction rolled back"
    ),
    ("partners/api/auth.py", "TokenAuthentication.authenticate"): (
        "the token's last-use stamp: a conditional one-row UPDATE at most once a minute, "
        "with its token.used event in the same transaction, on every request's path"
    ),
    ("partners/notify.py", "queue"): (
        "the mail outbox: rows queued inside the calling action's transaction"
    ),
    ("partners/notify.py", "_claim"): "the mail outbox's lease (delivery bookkeeping)",
    ("partners/notify.py", "send_due"): "the mail outbox's delivery status",
    ("partners/roles.py", "sync_roles"): "the role groups, run by a data migration only",
    ("partners/fingerprints_store.py", "current_secret"): (
        "the lab's fingerprint secret, made once on first use inside the action that needs it "
        "(the grant that commits a key), as the first signing key is"
    ),
    ("partners/my_account.py", "_qr_data_uri"): "an SVG image written to memory, not a model",
    ("partners/management/commands/seed_demo.py", "Command._staff"): (
        "demo staff accounts and their TOTP device, for a local demo database only"
    ),
    ("partners/management/commands/seed_demo.py", "Command._domain"): (
        "demo partner users (the domain objects themselves are made by actions)"
    ),
}

_ALWAYS = {
    "save",
    "bulk_create",
    "bulk_update",
    "get_or_create",
    "update_or_create",
    "create_user",
    "create_superuser",
}
# ``update``/``create``/``delete`` are model writes on a manager or queryset (a dict's
# ``update`` or a cache's ``delete(key)`` is not): called on a chain through one of these,
# or ``obj.delete()`` with no arguments.
_QUERYSET = {
    "objects",
    "_default_manager",
    "filter",
    "exclude",
    "all",
    "select_for_update",
    "annotate",
    "alias",
    "order_by",
    "select_related",
    "only",
    "using",
}
_SQL = re.compile(r"\b(INSERT\s+INTO|UPDATE\s+[\w\".]+\s+SET|DELETE\s+FROM)\b", re.IGNORECASE)


def _chain(node: ast.AST) -> list[str]:
    names = []
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            names.append(node.attr)
            node = node.value
        else:
            if isinstance(node, ast.Name):
                names.append(node.id)
            return names


def _is_write(call: ast.Call) -> str | None:
    if not isinstance(call.func, ast.Attribute):
        return None
    name, receiver = call.func.attr, _chain(call.func.value)
    if name == "save":
        if any("storage" in part for part in receiver):
            return None  # a file storage's save, not a model's
        if any(k.arg == "commit" for k in call.keywords):
            return None  # ModelForm/formset.save(commit=False) writes nothing
        return ".save("
    if name in _ALWAYS:
        return f".{name}("
    if name in {"update", "create", "delete"} and _QUERYSET & set(receiver):
        return f".{name}("
    if name == "delete" and not call.args and not call.keywords:
        return ".delete()"
    return None


class _Writes(ast.NodeVisitor):
    def __init__(self) -> None:
        self.scope: list[str] = []
        self.found: list[tuple[str, int, str]] = []
        self.docstrings: set[int] = set()

    def _enter(self, node: ast.AST, name: str | None) -> None:
        body = getattr(node, "body", [])
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            self.docstrings.add(id(body[0].value))
        if name:
            self.scope.append(name)
        self.generic_visit(node)
        if name:
            self.scope.pop()

    def visit_Module(self, node: ast.Module) -> None:
        self._enter(node, None)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._enter(node, node.name)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._enter(node, node.name)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Call(self, node: ast.Call) -> None:
        if what := _is_write(node):
            self.found.append((".".join(self.scope), node.lineno, what))
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        text = node.value if isinstance(node.value, str) else ""
        if id(node) not in self.docstrings and (match := _SQL.search(text)):
            self.found.append((".".join(self.scope), node.lineno, f"SQL {match[1]!r}"))


def _sources() -> Iterator[tuple[str, str]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if "/migrations/" not in rel:
                yield rel, path.read_text()


def writes_outside_actions(sources: Iterator[tuple[str, str]]) -> list[str]:
    offending = []
    for rel, text in sources:
        if rel.startswith(ACTION_MODULES) or rel in PLATFORM_ACTIONS:
            continue
        visitor = _Writes()
        visitor.visit(ast.parse(text, rel))
        for function, line, what in visitor.found:
            if (rel, function) not in EXCEPTIONS:
                offending.append(f"{rel}:{line} in {function or '<module>'}: {what}")
    return offending


def test_models_are_written_only_by_actions():
    offending = writes_outside_actions(_sources())
    assert not offending, (
        "Model writes outside an actions module (move them into an action in "
        "partners/actions/ or a declared platform action module, or list a justified "
        "exception in tests/test_write_path.py):\n" + "\n".join(offending)
    )


def test_every_exception_is_still_needed():
    """An exception whose write went away is removed, so the list stays the truth."""
    used = set()
    for rel, text in _sources():
        visitor = _Writes()
        visitor.visit(ast.parse(text, rel))
        used |= {(rel, function) for function, _, _ in visitor.found}
    assert set(EXCEPTIONS) <= used, set(EXCEPTIONS) - used
    assert all((ROOT / path).exists() for path in PLATFORM_ACTIONS)


SNIPPETS = [
    "def f(obj):\n    obj.save()\n",
    "def f(M):\n    M.objects.create(a=1)\n",
    "def f(M):\n    M.objects.filter(a=1).update(a=2)\n",
    "def f(M):\n    M.objects.filter(a=1).delete()\n",
    "def f(obj):\n    obj.delete()\n",
    "def f(M):\n    M.objects.bulk_create([])\n",
    "def f(M):\n    M.objects.bulk_update([], ['a'])\n",
    "def f(M):\n    M.objects.get_or_create(a=1)\n",
    "def f(M):\n    M.objects.update_or_create(a=1)\n",
    "def f(U):\n    U.objects.create_user('x')\n",
    "def f(c):\n    c.execute('INSERT INTO t (a) VALUES (1)')\n",
    "def f(c):\n    c.execute('update partners_grant set status = 1')\n",
    "def f(c):\n    c.execute('DELETE FROM t')\n",
]
NOT_WRITES = [
    "def f(d):\n    d.update({'a': 1})\n",
    "def f(h):\n    h.update(b'x')\n",
    "def f(cache):\n    cache.delete('k')\n",
    "def f(formset):\n    formset.save(commit=False)\n",
    "def f(name, fh):\n    storage().save(name, fh)\n",
    'def f():\n    """Updates the row: UPDATE t SET is in the docstring only."""\n',
]


def test_the_check_sees_every_kind_of_write():
    for snippet in SNIPPETS:
        assert writes_outside_actions(iter([("partners/api/x.py", snippet)])), snippet
        assert not writes_outside_actions(iter([("partners/actions/x.py", snippet)])), snippet
    for snippet in NOT_WRITES:
        assert not writes_outside_actions(iter([("partners/api/x.py", snippet)])), snippet
