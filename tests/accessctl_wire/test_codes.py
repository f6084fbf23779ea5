"""The code registry (``client/accessctl_wire/codes.py``): every code used is registered, and a
registered code never changes meaning (``docs/codes.json``, edited by hand, on purpose)."""

import ast
import json
import logging
import re
from pathlib import Path

import pytest
import yaml
from rest_framework import exceptions

from accessctl.audit.exports import ExportError
from accessctl.codes import (
    Area,
    Code,
    CodeError,
    Exit,
    api_codes,
    block,
    generated_blocks,
    snapshot,
)
from accessctl_wire.client import CliError
from partners.api import edge
from partners.api.errors import Problem
from partners.api.problems import DRF_CODES
from partners.decisions import DETAIL, Reason
from partners.errors import ActionError, ActionForbidden

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ROOT / "docs" / "codes.json"

# Calls whose first positional argument is a code, and those whose second is.
FIRST = {"ActionError", "ExportError", "TokenFailed", "CliError", "registered", "Failure"}
SECOND = {"Problem", "_reject"}
# Keywords that name a code, on any call.
KEYWORDS = {"code", "reason_code"}


def _sources():
    for package in ("partners", "accessctl", "client/accessctl_cli", "client/accessctl_wire"):
        for source in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in source.parts:
                yield source


def _uses():
    """Every code the source passes to a refusal as a literal, with where: string
    literals (``ActionError("grant_exists", ...)``, ``Problem(409, "x", ...)``,
    ``code="..."``) and registry members (``Code.X``, checked at import anyway). For
    ``Problem`` the status literal comes too."""
    for source in _sources():
        relative = source.relative_to(ROOT)
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            position = 0 if name in FIRST else 1 if name in SECOND else None
            values = []
            if position is not None and len(node.args) > position:
                values.append(node.args[position])
            values += [k.value for k in node.keywords if k.arg in KEYWORDS]
            for value in values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    status = None
                    if name == "Problem" and isinstance(node.args[0], ast.Constant):
                        status = node.args[0].value
                    yield value.value, status, f"{relative}:{node.lineno}"


def test_the_scan_sees_the_refusals():
    """The scan is not vacuous: it finds codes of each kind of refusal."""
    found = {code for code, _, _ in _uses()}
    assert {"grant_exists", "window_closed", "token_malformed"} <= found
    assert {"usage", "invalid_login", "nda_expired"} <= found


def test_every_code_used_is_registered():
    unknown = sorted(
        {f"{code} ({where})" for code, _, where in _uses() if code not in Code.__members__.values()}
    )
    assert not unknown, (
        "register these codes in client/accessctl_wire/codes.py (docs/architecture.md, "
        f"'Codes: how to add a code'): {unknown}"
    )


def test_every_problem_status_literal_is_the_registrys():
    wrong = sorted(
        f"{where}: Problem({status}, {code!r}) but the registry says {Code(code).status}"
        for code, status, where in _uses()
        if status is not None and code in Code.__members__.values() and Code(code).status != status
    )
    assert not wrong, wrong


def test_a_registered_code_never_changes_meaning():
    """docs/codes.json is the record of what each shipped code means to a client (its
    status and the CLI's exit family). Changing one is a deliberate edit of that file;
    removing one fails whatever the file says: codes never change once shipped."""
    shipped = json.loads(SNAPSHOT.read_text())
    current = snapshot()
    removed = sorted(set(shipped) - set(current))
    assert not removed, f"codes never change once shipped: restore {removed} in the registry"
    changed = {
        code: (shipped[code], current[code]) for code in shipped if shipped[code] != current[code]
    }
    assert not changed, (
        f"these codes changed meaning (shipped, now): {changed}; if that is deliberate (a "
        "documented bug fixed), edit docs/codes.json in the same commit"
    )
    added = sorted(set(current) - set(shipped))
    assert not added, f"add the new codes {added} to docs/codes.json"


def test_no_code_is_registered_twice():
    # ``@unique`` refuses an alias at import; this says so if it is ever dropped.
    assert len(Code.__members__) == len(Code) == len({c.value for c in Code})
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", c.value) for c in Code)


def test_every_code_has_a_detail_and_a_when():
    assert all(code.detail and code.when and code.area and code.exit for code in Code)


def test_http_codes_and_client_codes_are_apart():
    assert {c for c in Code if c.status is None} == {
        c for c in Code if c.area in {Area.CLI, Area.PORTAL}
    }


# The registry drives the server.


def test_an_unregistered_code_raises_at_construction():
    with pytest.raises(CodeError, match="no_such_code"):
        ActionError("no_such_code", "Nope.")
    with pytest.raises(CodeError):
        ExportError("no_such_code", "Nope.")
    with pytest.raises(CodeError):
        Problem(403, "no_such_code", "Nope.")


def test_a_problem_with_another_status_than_the_registrys_raises():
    with pytest.raises(CodeError, match="window_closed"):
        Problem(404, "window_closed", "Closed.")


def test_in_production_an_unregistered_code_is_logged_and_still_refuses(settings, caplog):
    settings.ACCESSCTL_STRICT_CODES = False
    with caplog.at_level(logging.ERROR, logger="accessctl.codes"):
        refused = ActionError("no_such_code", "Nope.")
    assert (refused.code, refused.status) == ("no_such_code", 409)
    assert "no_such_code" in caplog.text
    assert Problem(404, "window_closed", "x").status_code == 403  # the registry wins


@pytest.mark.parametrize("code", [c for c in Code if c.area is Area.ACTION])
def test_an_action_refusal_takes_its_status_and_detail_from_the_registry(code):
    refused = ActionError(code)
    assert (refused.code, refused.status, refused.message) == (code, code.status, code.detail)
    assert ActionError(code.value, "Custom.").code is code


def test_forbidden_is_the_registrys():
    assert ActionForbidden("grant.issue").status == Code.FORBIDDEN.status == 403


@pytest.mark.parametrize("exc_type", list(DRF_CODES))
def test_drf_errors_keep_their_status_which_is_the_registrys(exc_type):
    args = {exceptions.MethodNotAllowed: ("GET",), exceptions.UnsupportedMediaType: ("x",)}
    assert exc_type(*args.get(exc_type, ())).status_code == DRF_CODES[exc_type].status


def test_the_decision_reasons_are_registry_members():
    for reason in Reason:
        assert Code[reason.name] == reason and Code[reason.name].status is not None
        assert DETAIL[reason] == Code[reason.name].detail


def test_the_edge_codes_are_the_registrys_edge_area():
    statuses = {400, 403, 404, 405, 406, 413, 414, 415, 431, 500, 502, 504}  # 502, 504: nginx
    assert {c.status for c in edge.EDGE_CODES} <= statuses
    assert str(edge.JSON_MAX_DEPTH) in Code.JSON_TOO_DEEP.when
    assert str(edge.URL_PATH_MAX) in Code.URI_TOO_LONG.when
    assert str(edge.QUERY_STRING_MAX) in Code.URI_TOO_LONG.when
    assert str(edge.HEADER_VALUE_MAX) in Code.HEADER_TOO_LARGE.when
    assert str(edge.HEADERS_TOTAL_MAX) in Code.HEADER_TOO_LARGE.when


# The registry drives the CLI.


@pytest.mark.parametrize("code", list(Code))
def test_the_cli_exit_status_is_the_registrys(code):
    assert CliError(code.value, "x").exit_status == code.exit


def test_grant_exists_exits_with_the_grant_status_not_the_tokens():
    assert CliError("grant_exists", "x").exit_status == Exit.GRANT == 7


def test_a_code_the_cli_does_not_know_is_another_refusal():
    assert CliError("http_502", "x").exit_status == Exit.REFUSED


# The registry drives the docs and the schema.


@pytest.mark.parametrize(
    ("relative", "name"),
    [(relative, name) for relative, blocks in generated_blocks().items() for name in blocks],
)
def test_the_docs_hold_the_generated_tables(relative, name):
    assert block(name, generated_blocks()[relative][name]) in (ROOT / relative).read_text(), (
        f"{relative}: regenerate with `python -m accessctl.codes`"
    )


def test_every_code_is_in_the_docs():
    docs = "".join(
        (ROOT / "docs" / name).read_text() for name in ("api.md", "decisions.md", "cli.md")
    )
    missing = sorted(c.value for c in Code if f"`{c.value}`" not in docs)
    assert not missing, missing


def test_the_openapi_code_enum_is_the_registry():
    schema = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    problem = schema["components"]["schemas"]["Problem"]["properties"]["code"]
    assert problem["enum"] == api_codes()
