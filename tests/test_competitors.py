"""The competitor harness: its ground truth, and that every adapter builds the same system.

The ground truth of experiments/peers/systems.py is checked against independent
implementations (the baselines' block FDN, the library in float64 at a high alias decay).
The adapters run in their worker processes, as in the experiment: the project's always, the
competitors' when the competitor environment exists (scripts/setup_competitors.sh); each
must reproduce the float64 truth of the system it built and its gradient must match float64
finite differences of the truth loss.
"""

import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import baselines
import flamo
from experiments import registry
from experiments.competitors import METHODS, Config, check
from experiments.peers import systems
from experiments.peers.pool import Pool, competitor_python, side_of

README = Path(__file__).resolve().parents[1] / "README.md"
MATRIX = Path(__file__).resolve().parents[1] / "results" / "competitors" / "matrix.md"


def _t(x):
    return torch.as_tensor(np.asarray(x))


@pytest.mark.parametrize("with_sos", [False, True])
def test_fdn_truth_matches_the_baseline_block_fdn(with_sos):
    case = dict(workload="fdn_geq" if with_sos else "fdn", n=5, nfft=2 ** 13, seed=3, arrangement="forward")
    p = systems.numbers(case)
    sos = flamo.GEQ(_t(p["command_db"]), offset=True).double().sos_at(systems.FS).detach().numpy() if with_sos else None
    g = None if with_sos else p["g"]
    h = systems.fdn_impulse_response(p["m"], p["A"], p["b"], p["c"], 4000, g=g, sos=sos)
    ref = baselines.fdn_impulse_response(4000, _t(p["m"]), _t(p["A"]), _t(p["b"]), _t(p["c"]), 0.0,
                                         g=None if g is None else _t(g),
                                         sos=None if sos is None else _t(sos / sos[..., 3:4])).numpy()
    # Two float64 recursions of different orders of summation: their rounding differs by about
    # eps times the noise gain of the loop's filters, which the GEQ's 31 Hz sections (poles
    # within 1e-3 of the circle) raise by a few hundred (measured 1.1e-12 with the GEQ, 1e-15
    # without); 1e-10 still fails for any wrong coefficient or delay by orders of magnitude.
    assert systems.relative_error(h, ref) < (1e-10 if with_sos else 1e-12)


def test_fdn_truth_feedback_arrangement_matches_frequency_sampling():
    """GEQ after the matrix in the feedback path: the block recursion against the library's
    Recursion(Delay, Series(Matrix, SOS)) in float64: nfft long enough for the response to
    decay by 40 dB or more and every wrap 100 dB down bound the aliasing by 140 dB."""
    n, nfft = 4, 2 ** 16
    case = dict(workload="fdn_geq", n=n, nfft=nfft, seed=1, arrangement="feedback")
    p = systems.numbers(case)
    sos = flamo.GEQ(_t(p["command_db"]), offset=True).double().sos_at(systems.FS).detach()
    loop = flamo.Recursion(flamo.Delay(_t(p["m"]).double()),
                           flamo.Series(flamo.Matrix(n, kind="free", init=_t(p["A"])), flamo.SOS(sos)))
    system = flamo.Series(flamo.Gain(_t(p["b"]).reshape(n, 1)), loop, flamo.Gain(_t(p["c"]).reshape(1, n))).double()
    grid = flamo.Grid(nfft=nfft, fs=systems.FS, alias_decay_db=100.0, dtype=torch.float64)
    ref = system.impulse_response(grid)[:, 0, 0].detach().numpy()
    h = systems.fdn_impulse_response(p["m"], p["A"], p["b"], p["c"], nfft, sos=sos.numpy(), arrangement="feedback")
    assert systems.relative_error(h, ref) < 1e-7


def test_colorless_response_matches_the_library_in_float64():
    case = dict(workload="colorless", n=6, nfft=2 ** 12, seed=0)
    p = systems.numbers(case)
    system = flamo.reverb.build_fdn(delays=p["m"].tolist(), matrix="free", matrix_init=_t(p["A"]),
                                    input_gains=_t(p["b"]), output_gains=_t(p["c"]), dtype=torch.float64)
    grid = flamo.Grid(nfft=2 ** 12, fs=systems.FS, alias_decay_db=systems.ALIAS_DECAY_DB, dtype=torch.float64)
    ref = system.response(grid)[:, 0, 0].detach().numpy()
    H = systems.colorless_response(p["m"], p["A"], p["b"], p["c"], 2 ** 12)
    assert np.abs(H - ref).max() / np.abs(ref).max() < 1e-10
    assert np.allclose(p["A"] @ p["A"].T, np.eye(6), atol=1e-12)  # orthogonal: expm of a skew matrix


def test_fit_parametrization_is_stable_and_identical_in_numpy_and_torch():
    theta = np.random.default_rng(0).normal(scale=5, size=(8, 5))
    sos_np = systems.fit_sos(theta)
    sos_t = systems.fit_sos(torch.as_tensor(theta), torch).numpy()
    assert np.allclose(sos_np, sos_t, rtol=0, atol=1e-15)
    poles = np.concatenate([np.roots(s[3:]) for s in sos_np])
    assert np.abs(poles).max() < systems.FIT_MAX_RADIUS + 1e-12


def test_cascade_fft_size_leaves_the_tail_below_the_threshold():
    length = 12000
    nfft = systems.cascade_nfft(length)
    assert systems.CASCADE_MAX_RADIUS ** (nfft - length) < 10 ** (-systems.TAIL_DB / 20)


def test_timing_experiments_declare_themselves():
    assert registry.timing("competitors") and registry.timing("speed_comparison")
    assert not registry.timing("smoke")


# -- the adapters, in their worker processes -------------------------------------------------
TINY = {
    "fdn": dict(workload="fdn", n=4, nfft=2 ** 15),
    "fdn_geq": dict(workload="fdn_geq", n=4, nfft=2 ** 15, arrangement="forward"),
    "fdn_geq_feedback": dict(workload="fdn_geq", n=4, nfft=2 ** 15, arrangement="feedback"),
    "cascade": dict(workload="cascade", channels=3, length=2000),
    "colorless": dict(workload="colorless", n=6, nfft=2 ** 13),
}
#: float32 accuracy of each kind of method on the tiny cases (output: relative error;
#: gradient: against float64 finite differences of the truth loss); measured values are
#: 10-100x below these bounds (frequency sampling: time aliasing, -55 to -70 dB here).
OUTPUT_DB, GRADIENT = -45.0, 2e-2
#: The library's time method in float32 on the GEQ FDN: the recursion of the GEQ's sections
#: (its 31 Hz band has poles within about 1e-3 of z = 1) rounds to -44.7 / -46.4 dB
#: (forward / feedback arrangement; -237 dB in float64), so its bound is the experiment's
#: equivalence threshold.
OUTPUT_DB_TIME_GEQ = Config().equivalence_db

HAVE_RIVALS = competitor_python().exists()


def _pairs(side):
    return [(key, m) for key, case in TINY.items() for m in METHODS[case["workload"]] if side_of(m) == side]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    with Pool(1, tmp_path_factory.mktemp("workers"), per_method=False) as p:
        p.start(["library"] + (["FLAMO"] if HAVE_RIVALS else []))  # one process per side
        yield p


def _check(pool, key, method, tmp_path):
    case = dict(TINY[key], seed=0)
    nums = systems.numbers(case)
    np.savez(tmp_path / "numbers.npz", **nums)
    worker = pool[method]
    info = worker.call("build", case=case, numbers=str(tmp_path / "numbers.npz"), timeout_s=300)
    result = check(worker, case, nums, info, Config(fd_directions=2), tmp_path, np.random.default_rng(0))
    bound = OUTPUT_DB_TIME_GEQ if (method, case["workload"]) == ("library-time", "fdn_geq") else OUTPUT_DB
    assert result["output_error_db"] < bound, (method, key, result)
    if info["differentiable"]:
        assert result["gradient_error"] < GRADIENT, (method, key, result)
    else:
        assert math.isnan(result["gradient_error"])
    worker.call("release")


@pytest.mark.parametrize("key, method", _pairs("project"))
def test_project_adapters_build_the_same_system(pool, key, method, tmp_path):
    _check(pool, key, method, tmp_path)


@pytest.mark.skipif(not HAVE_RIVALS, reason="competitor environment not built (scripts/setup_competitors.sh)")
@pytest.mark.parametrize("key, method", _pairs("rivals"))
def test_competitor_adapters_build_the_same_system(pool, key, method, tmp_path):
    _check(pool, key, method, tmp_path)


def test_the_competitor_side_imports_flamo_0_2_20_not_this_project(pool):
    if not HAVE_RIVALS:
        pytest.skip("competitor environment not built")
    reply = pool["FLAMO"].call("ping")
    assert reply["torch"].startswith("2.13") and reply["flamo"] == "0.2.20"
    assert pool["library"].call("ping")["flamo"] != "0.2.20"


@pytest.mark.skipif(not MATRIX.exists(), reason="no committed competitors results")
def test_readme_benchmark_matrix_is_the_generated_one():
    """The README's matrix is results/competitors/matrix.md verbatim, never typed by hand:
    the whole block between its markers (copy the file there after a run)."""
    readme = README.read_text(encoding="utf-8")
    start = "<!-- competitors matrix: results/competitors/matrix.md, generated -->\n"
    end = "<!-- end of competitors matrix -->"
    assert readme.count(start) == 1 and readme.count(end) == 1
    block = readme.split(start, 1)[1].split(end, 1)[0]
    assert block.strip() == MATRIX.read_text(encoding="utf-8").strip()



@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_a_worker_busy_in_a_long_call_ends_with_the_run_that_started_it():
    """A run killed with SIGKILL cannot close its workers: the kernel ends them (a worker in
    the middle of a call does not read the closed request pipe)."""
    root = Path(__file__).resolve().parents[1]
    busy = ("import sys, time; sys.path.insert(0, sys.argv[1]); "
            "from experiments.peers.worker import die_with_parent; die_with_parent(); time.sleep(120)")
    run = ("import subprocess, sys, time; "
           f"p = subprocess.Popen([sys.executable, '-c', {busy!r}, {str(root)!r}]); "
           "print(p.pid, flush=True); time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", run], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    time.sleep(1.0)  # the worker has imported and asked for the signal
    parent.kill()
    parent.wait()

    def gone():
        try:
            return Path(f"/proc/{worker}/status").read_text().split("State:")[1].split()[0] in "ZX"
        except (FileNotFoundError, ProcessLookupError):
            return True

    deadline = time.monotonic() + 20
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(), f"worker {worker} still runs after its parent was killed"
