#!/usr/bin/env bash
# Install the project with its experiment extras and run every experiment.
# Quick sizes by default, into results/quick/ (git-ignored, so the committed full results
# stay untouched); pass --full for the full sizes, written into results/ itself.
# Other arguments go to the runner, e.g. --device cuda or --threads 1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh experiments
mode=(--quick --out results/quick)
if [ "${1:-}" = "--full" ]; then mode=(--out results); shift; fi
exec "${FLAMO_VENV:-.venv}/bin/python" -m experiments run all "${mode[@]}" "$@"
