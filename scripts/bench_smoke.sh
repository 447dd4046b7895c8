#!/usr/bin/env bash
# CI smoke pass of the asv suite: every benchmark must import and be well formed
# (asv check), and a small, fast subset must run (asv run --quick, results not saved).
# Fails on a broken benchmark. Run from anywhere: bash scripts/bench_smoke.sh
# Uses the current interpreter (`asv ... --python=same`) and this checkout's sources.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
export ASV_PYTHONPATH="$PWD"   # asv drops PYTHONPATH; this is its way to pass it through
# Small workloads only: the 1-channel biquad cascade and its floor, the N = 6 block FDN,
# and the N = 6, nfft = 2^15 FDN through the library and its floor.
SUBSET='^bench_sos\.SOSCascade(Floor)?\.time_.*\(.cpu., 1\)|^bench_time_domain\.BlockFDN\.time_forward_backward\(.cpu., 6\)|^bench_fdn\.FDN(Floor)?Time\.time_forward_backward\(.cpu., 6, 32768\)'
"$PY" -m asv machine --yes >/dev/null
"$PY" -m asv check --python=same
log="$(mktemp)"
"$PY" -m asv run --python=same --quick --dry-run --show-stderr -b "$SUBSET" 2>&1 | tee "$log"
# asv run exits 0 even when a benchmark fails: look for its failure markers.
if grep -Eq "failed|Traceback" "$log"; then
    echo "bench_smoke: a benchmark failed" >&2
    exit 1
fi
grep -Eq "^\[100\.00%\]|^\[ *[0-9.]+%\] ·" "$log" || { echo "bench_smoke: nothing ran" >&2; exit 1; }
echo "bench_smoke: ok"
