#!/usr/bin/env bash
# Create (or reuse) a virtual environment and install the project into it.
# Usage: scripts/setup_env.sh EXTRAS     (e.g. "dev" or "experiments")
# The venv lives in $FLAMO_VENV (default: .venv). torch 2.13.0 is installed first so pip
# takes the CPU build; the project's own requirement is a range that 2.13.0 satisfies.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
venv="${FLAMO_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
"$venv/bin/python" -m pip install -q "torch==2.13.0"
"$venv/bin/python" -m pip install -q -e ".[$extras]"
