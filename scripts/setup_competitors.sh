#!/usr/bin/env bash
# Build the competitor environment (FLAMO 0.2.20 and the time-domain filter libraries) from
# nothing, in its own virtual environment: the reference library's import name is also `flamo`,
# so it can never share the project's environment. Idempotent: a complete environment whose
# recipe has not changed is left alone (a stamp file records the recipe).
# Usage: scripts/setup_competitors.sh            (venv in $FLAMO_COMPETITORS_VENV, default .venv-competitors)
# Prints the wall time and the size of the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${FLAMO_COMPETITORS_VENV:-.venv-competitors}"
# The recipe, in order. torch first so pip takes the CPU build; torchlpc's isolated build would
# pull a CUDA torch (8.5 GB), hence --no-build-isolation; philtorch >= 0.6.1 needs torch 2.14.
# Every dependency is pinned by scripts/competitors.lock (pip constraints). FLAMO depends on
# torchaudio, whose PyPI build does not import with CPU torch: only FLAMO's FilterBank needs it.
lock=scripts/competitors.lock
recipe=(
  "torch==2.13.0"
  "numpy scipy setuptools wheel"
  "--no-build-isolation torchlpc==0.7.2"
  "flamo==0.2.20 philtorch==0.6.0 dasp-pytorch==0.0.1 auraloss==0.4.0 pyrato==1.1.0"
)
stamp="$venv/.recipe"
want="$(printf '%s\n' "${recipe[@]}"; cat "$lock")"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
  echo "competitor environment up to date: $venv ($(du -sh "$venv" | cut -f1))"
  exit 0
fi
start=$(date +%s)
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
for step in "${recipe[@]}"; do
  # shellcheck disable=SC2086  # each step is a list of pip arguments
  # pip's notes about this machine's unused local indexes are noise here
  "$venv/bin/python" -m pip install -q -c "$lock" $step 2>&1 | { grep -v "WARNING: Location" || true; }
done
# Smoke: every competitor imports (FLAMO's core, losses and reverb run without torchaudio).
# -I: neither the current folder nor PYTHONPATH on sys.path, so this checkout's own `flamo`
# cannot shadow FLAMO's.
"$venv/bin/python" -I - <<'PY'
import importlib
for name in ("torch", "scipy", "flamo.processor.dsp", "flamo.processor.system", "philtorch",
             "dasp_pytorch", "torchlpc", "auraloss", "pyrato"):
    importlib.import_module(name)
import torch
assert torch.__version__.startswith("2.13.0"), torch.__version__
PY
echo "$want" > "$stamp"
echo "competitor environment built in $(( $(date +%s) - start )) s: $venv ($(du -sh "$venv" | cut -f1))"
