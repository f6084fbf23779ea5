"""The partner installs the client distribution (``client/``) into a clean venv, as the
README says: no Django, no server, and the README's CLI lines parse exactly as printed."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The server's distribution and what only it needs: none may come with the client.
SERVER_ONLY = {"accessctl", "django", "djangorestframework", "celery", "kombu", "boto3"}
SERVER_ONLY |= {"psycopg", "psycopg-binary", "gunicorn", "django-storages"}
# This tree's checkout is not on the path of anything run in the clean venv.
ENV = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}


def run(*args, cwd, timeout=300):
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{shlex.join(map(str, args))}\n{done.stdout}\n{done.stderr}"
    return done


def build_wheel(source, out):
    """``python -m build --wheel`` where the venv has ``build`` (the dev extra), else
    pip's own wheel builder: the same setuptools build from ``client/pyproject.toml``."""
    has_build = subprocess.run(
        [sys.executable, "-m", "build", "--version"], capture_output=True, timeout=60
    )
    if has_build.returncode == 0:
        run(sys.executable, "-m", "build", "--wheel", "--outdir", out, source, cwd=source)
    else:
        run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", out, source, cwd=source)
    (wheel,) = out.glob("accessctl_client-*.whl")
    return wheel


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh venv (no system site-packages) with only the client wheel and what it
    declares, from the package index."""
    work = tmp_path_factory.mktemp("client-dist")
    # A copy, so that the build leaves nothing behind in the checkout.
    source = shutil.copytree(
        ROOT / "client",
        work / "client",
        ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"),
    )
    wheel = build_wheel(source, work / "wheels")
    run(sys.executable, "-m", "venv", work / "venv", cwd=work)
    bin_ = work / "venv" / "bin"
    run(bin_ / "python", "-m", "pip", "install", "--quiet", wheel, cwd=work)
    return bin_


def test_the_client_installs_no_django_and_no_server(venv):
    listed = run(venv / "python", "-m", "pip", "list", "--format=json", cwd=venv)
    installed = {d["name"].lower().replace("_", "-") for d in json.loads(listed.stdout)}
    assert "accessctl-client" in installed
    assert not installed & SERVER_ONLY, installed & SERVER_ONLY
    shown = run(venv / "python", "-m", "pip", "show", "accessctl-client", cwd=venv).stdout
    (requires,) = re.findall(r"^Requires: (.*)$", shown, flags=re.MULTILINE)
    assert sorted(requires.split(", ")) == ["cryptography", "httpx", "rich"]


def test_every_module_of_the_client_imports_with_only_what_it_declares(venv):
    probe = run(
        venv / "python",
        "-c",
        "import importlib, pkgutil, sys\n"
        "for top in ('accessctl_cli', 'accessctl_wire'):\n"
        "    package = importlib.import_module(top)\n"
        "    for module in pkgutil.walk_packages(package.__path__, top + '.'):\n"
        "        if module.name != 'accessctl_cli.__main__':\n"
        "            importlib.import_module(module.name)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'accessctl'}))",
        cwd=venv,
    )
    assert probe.stdout.strip() == "[]"


def test_the_console_scripts_run_without_a_warning(venv):
    for helped in (
        run(venv / "accessctl", "--help", cwd=venv),
        run(venv / "python", "-m", "accessctl_cli", "--help", cwd=venv),
        run(venv / "accessctl-verify-export", "--help", cwd=venv),
    ):
        assert helped.stdout.startswith("usage: "), helped.stdout
        assert helped.stderr == ""


def test_the_offline_verifier_names_a_key_it_cannot_read(venv, tmp_path):
    missing = subprocess.run(
        [
            venv / "accessctl-verify-export",
            tmp_path / "export.jsonl",
            "--public-key",
            tmp_path / "jwks.json",
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: cannot read the public key")


def readme_cli_lines():
    """The ``accessctl ...`` lines of the shell block in the README's partner section,
    comments dropped."""
    section = (ROOT / "README.md").read_text().split("## For partner engineers")[1]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.DOTALL)[1]
    return [
        line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("accessctl ")
    ]


def test_the_readme_shows_the_cli_lines_this_test_runs():
    assert readme_cli_lines()[0] == "accessctl login --server https://accessctl.lab.example"
    assert len(readme_cli_lines()) >= 5


@pytest.mark.parametrize("line", readme_cli_lines())
def test_the_readmes_cli_lines_parse_as_printed(venv, line):
    """Each line with ``--help`` appended: argparse accepts everything before it, then
    prints the command's help (no server is asked)."""
    helped = run(venv / "accessctl", *shlex.split(line)[1:], "--help", cwd=venv)
    assert helped.stdout.startswith("usage: accessctl"), helped.stdout
