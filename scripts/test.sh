#!/usr/bin/env bash
# Install the project with its test extras into a virtual environment and run the tests.
# Extra arguments go to pytest, e.g. scripts/test.sh -k grid
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh dev
exec "${FLAMO_VENV:-.venv}/bin/python" -m pytest -q "$@"
