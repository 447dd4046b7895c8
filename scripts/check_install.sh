#!/usr/bin/env bash
# A user's install, checked from outside the checkout: a fresh virtual environment with
# only `pip install torch==2.13.0` and `pip install .` (not editable), built from a clean
# copy of this working tree (no stale build/ folder can leak into the wheel). Checks that
# the advertised subpackages import, that site-packages holds no top-level experiments/,
# baselines/, benchmarks/ or tests/, and that the README's fitting example runs in an
# empty folder. CI runs it (.ci/run); most of its ~2 minutes is the torch download.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/src" "$work/run"
git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - | tar -xf - -C "$work/src"
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install -q "torch==2.13.0"
"$py" -m pip install -q "$work/src"
cd "$work/run"
"$py" - <<'PY'
import pathlib, site
import flamo, flamo.functional, flamo.optim, flamo.reverb, flamo.signal  # noqa: E401
site_packages = pathlib.Path(site.getsitepackages()[0])
assert pathlib.Path(flamo.__file__).is_relative_to(site_packages), flamo.__file__
stray = [n for n in ("experiments", "baselines", "benchmarks", "tests") if (site_packages / n).exists()]
assert not stray, f"top-level packages in site-packages: {stray}"
print(f"check_install: flamo {flamo.__version__} from {site_packages}; no stray top-level packages")
PY
# The README's fitting example, as the README shows it (the python block under its heading).
# One torch thread: this tiny workload runs several times slower with two on a busy machine.
OMP_NUM_THREADS=1 "$py" - "$repo/README.md" <<'PY'
import re, sys, time
text = open(sys.argv[1], encoding="utf-8").read()
section = text.split("## Fitting a filter to a target", 1)[1]
code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
t0 = time.perf_counter()
exec(compile(code, "README.md (fitting example)", "exec"), {"__name__": "__main__"})
print(f"check_install: README fitting example ran in {time.perf_counter() - t0:.1f} s")
PY
echo "check_install: ok"
