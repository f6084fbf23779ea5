"""The layering is a contract: ``lint-imports`` (import-linter) checks ``.importlinter``
against this tree's imports, and any broken contract fails the test command."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def test_import_contracts_are_kept():
    run = subprocess.run(
        [LINT_IMPORTS, "--config", str(ROOT / ".importlinter"), "--no-cache"],
        cwd=ROOT,
        # This tree's packages (the server's and client/'s), not whatever the venv's
        # editable installs point at.
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'client'}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # Every contract in the file was read and kept (none silently skipped).
    declared = (ROOT / ".importlinter").read_text().count("[importlinter:contract:")
    assert f"Contracts: {declared} kept, 0 broken." in run.stdout, run.stdout
