"""Every script in examples/ runs as the README tells a user to run it (from another folder,
one torch thread) and prints or writes what its docstring promises."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.name for p in (REPO / "examples").glob("*.py"))


def _run(script, cwd, *args):
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(REPO / "examples" / script), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_every_example_is_tested():
    assert EXAMPLES == ["fdn_impulse_response.py", "fit_biquads.py"]


def test_fdn_impulse_response_writes_its_figure(tmp_path):
    out = tmp_path / "ir.png"
    stdout = _run("fdn_impulse_response.py", tmp_path, "--out", str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", stdout


def test_fit_biquads_reduces_the_loss(tmp_path):
    stdout = _run("fit_biquads.py", tmp_path)
    words = stdout.split()  # "loss before B dB^2, after A dB^2"
    before, after = float(words[2]), float(words[5])
    assert after < 1e-2 * before, stdout
