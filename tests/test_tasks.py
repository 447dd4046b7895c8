"""The task runner in this process: store, hashing, seeds, resume, failures, refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import gated_experiment
import task_experiment
from experiments import registry, runner, tasks
from experiments.cli import main
from experiments.executors import SerialExecutor
from experiments.tasks import Task, TaskStore

REPO = Path(__file__).resolve().parents[1]


def _meta(out: Path, name: str = "tasked") -> dict:
    return json.loads((out / name / "meta.json").read_text())


def _store_files(out: Path, name: str = "tasked") -> dict[str, bytes]:
    root = out / ".runner" / f"{name}.tasks"
    return {p.name: p.read_bytes() for p in sorted(root.glob("*.npz"))}


# -- the stored record --------------------------------------------------------------------
def test_results_round_trip_exactly_with_their_types(tmp_path):
    result = {"f": 0.1, "neg0": -0.0, "nan": float("nan"), "inf": -float("inf"), "i": 3, "b": True,
              "none": None, "s": "x", "list": [1, (2.5, "y")], "np_scalar": np.float32(1.5),
              "a32": np.linspace(0, 1, 7, dtype=np.float32), "c128": np.array([1 + 2j, -0.5j]),
              "i64": np.arange(5), "t": torch.tensor([[1.0, 2.0]], dtype=torch.float64),
              "nested": {"deep": [np.ones((2, 3), dtype=np.float64)]}}
    path = tmp_path / "r.npz"
    path.write_bytes(tasks.encode_record({"k": 1}, result))
    back = tasks.decode_record(path)["result"]
    assert back["f"] == 0.1 and str(back["neg0"]) == "-0.0" and np.isnan(back["nan"])
    assert back["inf"] == -float("inf") and back["i"] == 3 and back["b"] is True and back["none"] is None
    assert back["list"] == [1, [2.5, "y"]] and back["np_scalar"] == 1.5
    assert back["a32"].dtype == np.float32 and np.array_equal(back["a32"], result["a32"])
    assert back["c128"].dtype == np.complex128 and np.array_equal(back["c128"], result["c128"])
    assert back["i64"].dtype == np.int64 and np.array_equal(back["t"], [[1.0, 2.0]])
    assert np.array_equal(back["nested"]["deep"][0], np.ones((2, 3)))


@pytest.mark.parametrize("bad, where", [
    ({"x": {1, 2}}, "['x']"),
    ({"x": [object()]}, "['x'][0]"),
    ({3: 1.0}, "keys must be strings"),
    ({"x": np.array(["a"], dtype=object)}, "only numeric arrays"),
])
def test_results_that_cannot_be_stored_are_refused_naming_the_place(bad, where):
    with pytest.raises(TypeError, match=re_escape(where)):
        tasks.encode_record({}, bad)


def re_escape(text):
    import re

    return re.escape(text)


def test_params_must_be_json_data():
    with pytest.raises(TypeError, match=re_escape("params['grid']")):
        tasks.canonical({"grid": np.arange(3)})
    assert tasks.canonical({"b": (1, 2), "a": np.float64(0.5)}) == '{"a":0.5,"b":[1,2]}'


def test_task_seed_depends_on_the_task_not_the_order():
    a = tasks.task_seed("e", 0, '{"i":1}')
    assert a == tasks.task_seed("e", 0, '{"i":1}')
    assert len({a, tasks.task_seed("e", 1, '{"i":1}'), tasks.task_seed("e", 0, '{"i":2}'),
                tasks.task_seed("f", 0, '{"i":1}')}) == 4
    assert 0 <= a < 2**32


def test_digest_covers_params_seed_dtype_and_code(tmp_path, tasked):
    store = TaskStore(tmp_path)
    base = [Task("a", {"x": 1})]

    def digest(task_list=base, seed=0, dtype="float32"):
        return tasks.specs_for("tasked", task_experiment, task_list, seed, "cpu", dtype, store)[0]["digest"]

    d = digest()
    assert d == digest([Task("renamed", {"x": 1})])  # the key is a label, not an input
    assert len({d, digest([Task("a", {"x": 2})]), digest(seed=1), digest(dtype="float64")}) == 4


def test_task_lists_are_checked(tmp_path, tasked):
    store = TaskStore(tmp_path)
    with pytest.raises(ValueError, match="duplicate task key 'a'"):
        tasks.specs_for("tasked", task_experiment, [Task("a", {}), Task("a", {"x": 1})], 0, "cpu",
                        "float32", store)
    with pytest.raises(ValueError, match="non-empty list"):
        tasks.specs_for("tasked", task_experiment, [], 0, "cpu", "float32", store)
    with pytest.raises(TypeError, match=r"tasks\(cfg\)\[0\] must be a Task"):
        tasks.specs_for("tasked", task_experiment, [("a", {})], 0, "cpu", "float32", store)


def test_code_version_reads_the_sources():
    v = tasks.code_version("tasked", task_experiment)
    files = tasks.code_files(["smoke"])
    assert REPO / "flamo" / "grid.py" in files and REPO / "experiments" / "tasks.py" in files
    assert REPO / "experiments" / "smoke.py" not in files  # another experiment's own module
    assert len(v) == 32 and v != tasks.code_version("smoke", registry.load("smoke"))
    # an experiment built on another one's module hashes that module too
    registered = set(registry.names())
    assert tasks.imported_experiments(REPO / "experiments" / "colorless_ablation.py", registered) == {"colorless_fdn"}
    assert tasks.imported_experiments(REPO / "experiments" / "rir_fit.py", registered) == set()


def test_a_worker_with_other_code_refuses_the_task(tmp_path, tasked):
    spec = tasks.specs_for("tasked", task_experiment, [Task("a", {"i": 0, "sleep_s": 0, "fail": False})],
                           0, "cpu", "float32", TaskStore(tmp_path))[0]
    outcome = tasks.execute_task(dict(spec, code="0" * 32))
    assert outcome["error"].startswith("CodeMismatchError") and "same commit" in outcome["error"]
    assert "data" in tasks.execute_task(spec)


# -- runs ----------------------------------------------------------------------------------
def test_task_run_seeds_each_task_with_one_thread_and_records_times(tmp_path, tasked):
    out = tmp_path / "R"
    assert main(["run", "tasked", "--quick", "--out", str(out)]) == 0
    df = pd.read_csv(out / "tasked" / "values.csv")
    assert list(df.key) == ["t0", "t1", "t2", "t3"] and set(df.threads) == {1}
    assert df.rng.nunique() == 4 and df.np.nunique() == 4 and df.seed.nunique() == 4
    meta = _meta(out)
    assert meta["executor"] == {"kind": "serial", "workers": 1}
    info = meta["tasks"]
    assert (info["count"], info["computed"], info["reused"]) == (4, 4, 0)
    assert [t["key"] for t in info["per_task"]] == ["t0", "t1", "t2", "t3"]
    assert info["store"] == ".runner/tasked.tasks" and len(_store_files(out)) == 4
    assert set(info["projected_wall_s"]) == {"1", "2", "16", "64"}
    assert "## tasked" in (out / "summary.md").read_text()
    assert "4 tasks" in (out / "summary.md").read_text()

    # a task's result does not depend on the order: the same tasks reversed give the same rows
    monkey_tasks = task_experiment.tasks
    try:
        task_experiment.tasks = lambda cfg: list(reversed(monkey_tasks(cfg)))
        out2 = tmp_path / "R2"
        assert main(["run", "tasked", "--quick", "--out", str(out2)]) == 0
    finally:
        task_experiment.tasks = monkey_tasks
    df2 = pd.read_csv(out2 / "tasked" / "values.csv").sort_values("key").reset_index(drop=True)
    pd.testing.assert_frame_equal(df, df2, check_exact=True)


def test_rerun_reuses_finished_tasks_and_a_changed_config_recomputes_only_what_changed(
        tmp_path, tasked, monkeypatch):
    out = tmp_path / "R"
    assert main(["run", "tasked", "--quick", "--out", str(out)]) == 0
    first = (out / "tasked" / "values.csv").read_bytes()
    stored = _store_files(out)
    assert main(["run", "tasked", "--quick", "--out", str(out)]) == 0
    assert (_meta(out)["tasks"]["computed"], _meta(out)["tasks"]["reused"]) == (0, 4)
    assert (out / "tasked" / "values.csv").read_bytes() == first
    assert _store_files(out) == stored

    monkeypatch.setenv("TASKED_N", "6")  # two more tasks: only they are computed
    assert main(["run", "tasked", "--quick", "--out", str(out)]) == 0
    info = _meta(out)["tasks"]
    assert (info["computed"], info["reused"]) == (2, 4)
    assert [t["reused"] for t in info["per_task"]] == [True] * 4 + [False] * 2
    assert (out / "tasked" / "values.csv").read_text().startswith(first.decode())

    monkeypatch.setenv("TASKED_N", "3")  # a completed run keeps only the tasks it was reduced from
    assert main(["run", "tasked", "--quick", "--out", str(out)]) == 0
    assert _meta(out)["tasks"]["computed"] == 0
    assert len(_store_files(out)) == 3

    assert main(["run", "tasked", "--quick", "--seed", "1", "--out", str(out)]) == 0
    assert _meta(out)["tasks"]["computed"] == 3  # another run seed is another task


def test_failing_task_is_reported_with_its_config_and_does_not_poison_the_others(
        tmp_path, tasked, monkeypatch, capsys):
    out = tmp_path / "R"
    assert main(["run", "tasked", "--quick", "--out", str(out)]) == 0
    before = (out / "tasked" / "values.csv").read_bytes()
    monkeypatch.setenv("TASKED_N", "6")
    monkeypatch.setenv("TASKED_FAIL", "1,4")
    assert main(["run", "tasked", "--quick", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "2 of 6 tasks of tasked failed" in err
    assert 't1 {"fail":true,"i":1,"sleep_s":0.0}: ValueError: task 1 told to fail' in err
    assert "t4" in err and "failed: tasked" in err
    assert (out / "tasked" / "values.csv").read_bytes() == before  # the last complete results
    failed = json.loads((out / ".runner" / "tasked.staging" / "failed_tasks.json").read_text())
    assert [f["key"] for f in failed] == ["t1", "t4"] and "Traceback" in failed[0]["traceback"]
    assert failed[0]["params"] == {"fail": True, "i": 1, "sleep_s": 0.0}
    assert len(_store_files(out)) == 4 + 1  # the first run's 4 and t5, which ran after the failures

    monkeypatch.setenv("TASKED_FAIL", "")
    assert main(["run", "tasked", "--quick", "--out", str(out)]) == 0
    info = _meta(out)["tasks"]
    assert (info["computed"], info["reused"]) == (1, 5)  # t4; t1 without the failure is the first run's


def test_killed_client_resumes_where_it_stopped(tmp_path, tasked, monkeypatch):
    monkeypatch.setenv("TASKED_N", "8")
    monkeypatch.setenv("TASKED_SLEEP", "0.3")
    out = tmp_path / "R"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "task_experiment.py"), "run", "tasked",
                             "--quick", "--out", str(out)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = out / ".runner" / "tasked.tasks"
    deadline = time.monotonic() + 180
    while len(list(root.glob("*.npz"))) < 3:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the run did not store 3 tasks in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    done = _store_files(out)
    assert 3 <= len(done) < 8 and not (out / "tasked").exists()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dead holder's lock and staging folder
        assert main(["run", "tasked", "--quick", "--out", str(out)]) == 0
    info = _meta(out)["tasks"]
    assert (info["reused"], info["computed"]) == (len(done), 8 - len(done))
    assert {k: v for k, v in _store_files(out).items() if k in done} == done  # not recomputed

    fresh = tmp_path / "fresh"
    assert main(["run", "tasked", "--quick", "--out", str(fresh)]) == 0
    assert (out / "tasked" / "values.csv").read_bytes() == (fresh / "tasked" / "values.csv").read_bytes()


def test_unreadable_stored_result_is_computed_again(tmp_path, tasked):
    out = tmp_path / "R"
    assert main(["run", "tasked", "--quick", "--out", str(out)]) == 0
    csv = (out / "tasked" / "values.csv").read_bytes()
    victim = sorted((out / ".runner" / "tasked.tasks").glob("*.npz"))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the zip checksum catches it
    victim.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="unreadable stored result"):
        assert main(["run", "tasked", "--quick", "--out", str(out)]) == 0
    assert _meta(out)["tasks"]["computed"] == 1
    assert (out / "tasked" / "values.csv").read_bytes() == csv


def test_work_dir_lives_in_the_store_until_the_task_is_stored(tmp_path, tasked, monkeypatch):
    seen = []

    def run_task(params, tctx):
        (tctx.work_dir / "checkpoint").write_text("x")
        seen.append(tctx.work_dir)
        return {"i": params["i"]}

    monkeypatch.setattr(task_experiment, "run_task", run_task)
    monkeypatch.setattr(task_experiment, "reduce", lambda cfg, results, ctx: ctx.headline(n=len(results)))
    out = tmp_path / "R"
    assert main(["run", "tasked", "--quick", "--out", str(out)]) == 0
    root = (out / ".runner" / "tasked.tasks").resolve()
    assert len(seen) == 4 and all(p.parent == root and p.name.endswith(".work") for p in seen)
    assert not any(p.exists() for p in seen)


# -- refusals and the module contract ------------------------------------------------------
class _FakeParallel(SerialExecutor):
    parallel = True


@pytest.mark.parametrize("name", ["speed_comparison", "competitors"])
def test_speed_measurements_refuse_parallel_executors(tmp_path, name):
    assert registry.timing(name)
    with pytest.raises(runner.RunRefusedError, match="measures speed"):
        runner.run_experiment(name, out_root=tmp_path, quick=True, executor=_FakeParallel())
    assert not (tmp_path / name).exists()


def test_experiment_without_tasks_runs_in_process_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "experiments.gated", gated_experiment.module())
    monkeypatch.setattr(registry, "EXPERIMENTS", [*registry.EXPERIMENTS, "gated"])
    monkeypatch.delenv("GATE", raising=False)
    with pytest.warns(RuntimeWarning, match="has no tasks"):
        meta = runner.run_experiment("gated", out_root=tmp_path, quick=True, executor=_FakeParallel())
    assert meta["executor"]["kind"] == "serial" and "tasks" not in meta


def test_module_contract_names_the_problem(monkeypatch):
    both = types.ModuleType("experiments.both")
    both.DESCRIPTION, both.Config = "x", task_experiment.Config
    both.run, both.tasks, both.run_task, both.reduce = print, print, print, print
    half = types.ModuleType("experiments.half")
    half.DESCRIPTION, half.Config, half.tasks = "x", task_experiment.Config, print
    monkeypatch.setitem(sys.modules, "experiments.both", both)
    monkeypatch.setitem(sys.modules, "experiments.half", half)
    monkeypatch.setattr(registry, "EXPERIMENTS", ["both", "half"])
    with pytest.raises(registry.InvalidExperimentError, match="both run"):
        registry.load("both")
    with pytest.raises(registry.InvalidExperimentError, match="run_task, reduce missing"):
        registry.load("half")


def test_benchmarks_refuse_to_time_inside_a_task():
    env = dict(os.environ, PYTHONPATH=str(REPO), **{tasks.TASK_ENV: "some/task"})
    proc = subprocess.run([sys.executable, "-c", "import benchmarks.workloads"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "contention" in proc.stderr
