#!/usr/bin/env bash
# Creates or refreshes .venv from requirements.lock (exact pins), then installs this project editable.
# Re-runs only when the lock file or pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.onewindow-installed
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "OneWindow needs Python 3.11 or newer")'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# Some machines' pip configuration names local package folders that do not exist; pip warns once per package.
# Those lines are noise for someone starting the demo, so drop just them (pip's exit status is kept).
quiet_pip() { .venv/bin/python -m pip "$@" 2>&1 | { grep -v '^WARNING: Location .* is ignored' || true; }; }
echo "Setting up .venv from requirements.lock (first run only) …" >&2
quiet_pip install --quiet --disable-pip-version-check -r requirements.lock
quiet_pip install --quiet --disable-pip-version-check --no-deps -e .
echo "$want" > "$stamp"
