"""The server's side of the code registry (``accessctl_wire.codes``): resolving a code
given as a string, and the docs tables generated from the registry.

The registry itself is Django-free and lives in the wire package, because the CLI maps
codes to exit statuses from it; everything here is what only the server needs.
``python -m accessctl.codes`` rewrites the generated blocks of the docs (the snapshot of
shipped codes, docs/codes.json, is edited by hand, on purpose: see ``tests/accessctl_wire/test_codes.py``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

from accessctl_wire.codes import Area, Code, Exit, lookup

__all__ = [
    "Area",
    "Code",
    "CodeError",
    "Exit",
    "api_codes",
    "block",
    "codes_markdown",
    "exit_markdown",
    "generated_blocks",
    "registered",
    "snapshot",
    "status_of",
    "strict_codes",
    "write_docs",
]

logger = logging.getLogger(__name__)


class CodeError(ValueError):
    """A refusal was raised with a code the registry does not hold, or with another
    status than the registry's."""


def strict_codes() -> bool:
    """Whether a code error raises (development and tests) or is logged (production)."""
    from django.conf import settings

    return bool(getattr(settings, "ACCESSCTL_STRICT_CODES", False))


def registered(code: Code | str) -> Code | str:
    """``code`` as its registry member. An unregistered code raises in development and
    tests (``ACCESSCTL_STRICT_CODES``, default ``DEBUG``); in production it is logged and
    kept, so a missing registration never turns a refusal into a server error."""
    if isinstance(code, Code):
        return code
    member = lookup(code)
    if member is not None:
        return member
    if strict_codes():
        raise CodeError(
            f"{code!r} is not a registered code: add it to client/accessctl_wire/codes.py "
            "(docs/architecture.md, 'Codes: how to add a code')"
        )
    logger.error("unregistered code %r", code)
    return code


def status_of(code: Code | str, default: int = 409) -> int:
    """The HTTP status the API answers ``code`` with (``default`` for an unregistered
    code in production, or one the API never answers)."""
    member = registered(code)
    if isinstance(member, Code) and member.status is not None:
        return member.status
    return default


def api_codes() -> list[str]:
    """Every code the API can answer with: the OpenAPI ``code`` enum."""
    return sorted(code.value for code in Code if code.status is not None)


def snapshot() -> dict[str, dict[str, int | None]]:
    """What each code means to a client, as committed in docs/codes.json."""
    return {
        code.value: {"status": code.status, "exit": int(code.exit)}
        for code in sorted(Code, key=lambda c: c.value)
    }


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def codes_markdown(*areas: Area, only: Iterable[Code] = (), column: str = "when") -> str:
    """The table of the codes of ``areas`` (or ``only`` these): status, code, CLI exit
    status, when."""
    chosen = set(only)
    members = sorted(
        (code for code in Code if code.area in areas or code in chosen),
        key=lambda c: (c.status or 0, c.value),
    )
    rows = [
        f"| {code.status or '-'} | `{code.value}` | {int(code.exit)} | {_escape(code.when)} |"
        for code in members
    ]
    header = f"| status | code | exit | {column} |"
    return "\n".join([header, "| --- | --- | --- | --- |", *rows])


def exit_markdown() -> str:
    """docs/cli.md's table of exit statuses, each with the codes of its family."""

    def listed(codes: Iterable[Code]) -> str:
        return ", ".join(f"`{code.value}`" for code in sorted(codes, key=lambda c: c.value))

    rows = ["| 0 | done | |"]
    for family in Exit:
        codes = [code for code in Code if code.exit is family]
        if family is Exit.REFUSED:
            named = "every other code, and any code this CLI does not know"
        else:
            named = listed(codes)
        rows.append(f"| {int(family)} | {family.meaning} | {named} |")
    rows.append("| 130 | interrupted (run again to resume) | |")
    return "\n".join(["| exit | meaning | codes |", "| --- | --- | --- |", *rows])


# The refusals of registering a checkpoint, which docs/api.md lists on their own.
REGISTER_CHECKPOINT = (
    Code.ARTIFACT_PATH_INVALID,
    Code.STORAGE_KEY_NOT_DERIVED,
    Code.ARTIFACT_MISSING,
    Code.ARTIFACT_SIZE_MISMATCH,
    Code.ARTIFACT_DIGEST_MISMATCH,
    Code.ARTIFACT_EMBARGOED_ELSEWHERE,
    Code.ARTIFACT_CHANGED,
    Code.NO_ARTIFACTS,
)


def generated_blocks() -> dict[str, dict[str, str]]:
    """Per docs file, the generated blocks it holds, by the name in its marker."""
    return {
        "docs/api.md": {
            "caller": codes_markdown(Area.CALLER, Area.REQUEST),
            "edge": codes_markdown(Area.EDGE),
            "register": codes_markdown(only=REGISTER_CHECKPOINT),
        },
        "docs/decisions.md": {
            "decision": codes_markdown(Area.DECISION, column="the partner is told (`detail`)"),
            "action": codes_markdown(Area.ACTION, Area.PORTAL),
        },
        "docs/cli.md": {"exit": exit_markdown(), "cli": codes_markdown(Area.CLI)},
    }


def _marker(name: str) -> str:
    return f"<!-- generated from client/accessctl_wire/codes.py by `python -m accessctl.codes`: {name} -->"


def block(name: str, text: str) -> str:
    """A generated block as the docs hold it, between its markers."""
    return f"{_marker(name)}\n{text}\n<!-- end generated -->"


def write_docs(root: Path) -> list[str]:
    """Rewrite every generated block under ``root``; the names of the files changed."""
    changed = []
    for relative, blocks in generated_blocks().items():
        path = root / relative
        text = before = path.read_text()
        for name, table in blocks.items():
            pattern = re.compile(re.escape(_marker(name)) + r"\n.*?<!-- end generated -->", re.S)
            if not pattern.search(text):
                raise SystemExit(f"{relative}: no block {name!r} to rewrite")
            text = pattern.sub(lambda _: block(name, table), text)  # noqa: B023
        if text != before:
            path.write_text(text)
            changed.append(relative)
    return changed


if __name__ == "__main__":
    base = Path(__file__).resolve().parent.parent
    print("\n".join(write_docs(base)) or "docs up to date")
