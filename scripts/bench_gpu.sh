#!/usr/bin/env bash
# asv on a GPU machine: every benchmark's cuda case, results saved under
# results/asv/<machine>/ for the current commit. Usage: scripts/bench_gpu.sh MACHINE_NAME
# Needs asv and torch with CUDA in the current Python (no project install: ASV_PYTHONPATH).
# forkserver, not the config's spawn: the server imports torch once and never touches CUDA,
# so each forked benchmark initializes CUDA itself, and a pass takes a fraction of the time.
set -euo pipefail
cd "$(dirname "$0")/.."
machine=${1:?usage: scripts/bench_gpu.sh MACHINE_NAME}
export FLAMO_BENCH_DEVICES=cuda ASV_PYTHONPATH=$PWD
python -m asv machine --yes --machine "$machine" >/dev/null
# Not --quick: its single call per benchmark includes CUDA's lazy initialization and
# cuBLAS/cuSOLVER set-up. A short warm-up and 3 samples in one round: ~170 s on an H200.
python -m asv run --python=same --launch-method forkserver --machine "$machine" \
    -a warmup_time=0.1 -a repeat=3 -a number=1 -a rounds=1 \
    --set-commit-hash "$(git rev-parse HEAD)" --show-stderr
# asv rewrote results/asv/benchmarks.json with the cuda-only parameters: describe the full
# suite again, so that the committed file matches the benchmarks' code.
FLAMO_BENCH_DEVICES=cpu,cuda python -m asv run --python=same --bench just-discover >/dev/null
