#!/usr/bin/env bash
# Install the project with its experiment extras and run every experiment into results/.
# Quick sizes by default; pass --full for the sizes committed under results/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh experiments
quick="--quick"
if [ "${1:-}" = "--full" ]; then quick=""; shift; fi
exec "${FLAMO_VENV:-.venv}/bin/python" -m experiments run all $quick "$@"
