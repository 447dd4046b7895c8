"""Tests for the experiment runner package ``experiments``."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from experiments import io, registry, runner
from experiments.cli import main
from experiments.summary import write_summary

REPO = Path(__file__).resolve().parents[1]

META_KEYS = {
    "git_commit", "git_dirty", "versions", "device", "device_name", "dtype", "torch_threads",
    "seed", "quick", "wall_time_s", "start_time_utc", "config", "command", "files",
}


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    """Run ``smoke --quick`` once into a temporary results folder."""
    out = tmp_path_factory.mktemp("results")
    assert main(["run", "smoke", "--quick", "--out", str(out)]) == 0
    return out


def test_list_contains_smoke(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "smoke" in out
    assert "lfilter" in out  # the description is shown


def test_list_subprocess():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "experiments", "list"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "smoke" in proc.stdout


def test_run_smoke_writes_outputs(smoke_results):
    exp = smoke_results / "smoke"
    for name in ["errors.csv", "impulse_responses.png", "meta.json", "headline.json"]:
        assert (exp / name).is_file(), name
    assert (smoke_results / "summary.md").is_file()

    meta = json.loads((exp / "meta.json").read_text())
    assert META_KEYS <= set(meta)
    assert meta["quick"] is True and meta["seed"] == 0 and meta["dtype"] == "float32"
    assert {"python", "torch", "numpy", "scipy", "pandas", "matplotlib", "flamo"} <= set(meta["versions"])
    assert meta["config"]["n_samples"] == 1024
    assert set(meta["files"]) == {"errors.csv", "impulse_responses.png", "headline.json"}

    df = pd.read_csv(exp / "errors.csv")
    assert list(df.columns) == ["pole", "n_samples", "dtype", "max_abs_error"]
    headline = json.loads((exp / "headline.json").read_text())
    assert headline["max_abs_error"] == pytest.approx(df["max_abs_error"].max())
    assert headline["max_abs_error"] < 1e-5

    summary = (smoke_results / "summary.md").read_text()
    assert "python -m experiments summary" in summary
    assert "(smoke/errors.csv)" in summary and "(smoke/impulse_responses.png)" in summary
    assert "max_abs_error" in summary


def test_summary_is_deterministic(smoke_results):
    path = smoke_results / "summary.md"
    assert main(["summary", "--out", str(smoke_results)]) == 0
    first = path.read_bytes()
    assert main(["summary", "--out", str(smoke_results)]) == 0
    assert path.read_bytes() == first
    write_summary(smoke_results)
    assert path.read_bytes() == first


def test_summary_of_empty_folder(tmp_path):
    assert main(["summary", "--out", str(tmp_path)]) == 0
    assert "No experiment results" in (tmp_path / "summary.md").read_text()


def test_atomic_writes_leave_no_temp_files(tmp_path):
    io.write_text(tmp_path / "a.txt", "hello")
    io.write_json(tmp_path / "a.json", {"b": 1, "a": __import__("numpy").float32(0.5)})
    io.write_csv(tmp_path / "a.csv", pd.DataFrame({"x": [1, 2]}))
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "a.json", "a.txt"]
    assert json.loads((tmp_path / "a.json").read_text()) == {"a": 0.5, "b": 1}
    assert (tmp_path / "a.json").read_text().index('"a"') < (tmp_path / "a.json").read_text().index('"b"')


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "data.csv"
    io.write_csv(target, pd.DataFrame({"x": [1, 2, 3]}))
    before = target.read_bytes()

    def half_then_fail(self, path, **kwargs):
        Path(path).write_text("x\n1\n")  # partial content, then crash
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        io.write_csv(target, pd.DataFrame({"x": [9]}))
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["data.csv"]


def test_failed_replace_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "note.txt"
    io.write_text(target, "old")

    def boom(src, dst):
        raise KeyboardInterrupt  # an interrupt right before the rename

    monkeypatch.setattr(io.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        io.write_text(target, "new")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["note.txt"]


def test_unknown_experiment(capsys, tmp_path):
    assert main(["run", "no_such_experiment", "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "no_such_experiment" in err and "smoke" in err


def test_cuda_unavailable_is_clear_error(capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["run", "smoke", "--device", "cuda", "--out", str(tmp_path)]) != 0
    assert "CUDA is not available" in capsys.readouterr().err


def _fake_failing_module() -> types.ModuleType:
    module = types.ModuleType("experiments.failing")

    @dataclasses.dataclass
    class Config:
        size: int = 3

        @classmethod
        def quick(cls):
            return cls(size=1)

    def run(cfg, ctx):
        raise ValueError("intentional failure")

    module.DESCRIPTION = "always fails"
    module.Config = Config
    module.run = run
    return module


def test_run_all_continues_after_failure(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "experiments.failing", _fake_failing_module())
    monkeypatch.setattr(registry, "EXPERIMENTS", ["failing", "smoke"])

    assert main(["list"]) == 0
    assert "always fails" in capsys.readouterr().out

    assert main(["run", "all", "--quick", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "intentional failure" in err and "failed: failing" in err
    assert (tmp_path / "smoke" / "meta.json").is_file()  # ran after the failure
    assert not (tmp_path / "failing" / "meta.json").exists()
    summary = (tmp_path / "summary.md").read_text()
    assert "## smoke" in summary and "## failing" not in summary


def test_invalid_module_is_rejected(monkeypatch):
    module = types.ModuleType("experiments.broken")
    module.DESCRIPTION = "no config, no run"
    monkeypatch.setitem(sys.modules, "experiments.broken", module)
    monkeypatch.setattr(registry, "EXPERIMENTS", ["broken"])
    with pytest.raises(registry.InvalidExperimentError, match="Config"):
        registry.load("broken")


def test_rerun_removes_stale_outputs(tmp_path):
    assert main(["run", "smoke", "--quick", "--out", str(tmp_path)]) == 0
    meta_path = tmp_path / "smoke" / "meta.json"
    meta = json.loads(meta_path.read_text())
    stale = tmp_path / "smoke" / "stale.csv"
    stale.write_text("x\n1\n")
    meta["files"].append("stale.csv")
    meta_path.write_text(json.dumps(meta))
    assert main(["run", "smoke", "--quick", "--seed", "3", "--out", str(tmp_path)]) == 0
    assert not stale.exists()
    assert json.loads(meta_path.read_text())["seed"] == 3


def test_git_info_outside_repo_is_unknown(tmp_path):
    from experiments.runner import git_info

    assert git_info(tmp_path) == {"commit": "unknown", "dirty": "unknown"}


# -- staging, locking, recovery: a run never loses the last complete results ---------------
import signal  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

import gated_experiment  # noqa: E402
from experiments.lock import LockHeldError, StaleLockWarning, exclusive_lock  # noqa: E402


@pytest.fixture
def gated(monkeypatch):
    """Register the test experiment ``gated`` (tests/gated_experiment.py) in this process."""
    monkeypatch.setitem(sys.modules, "experiments.gated", gated_experiment.module())
    monkeypatch.setattr(registry, "EXPERIMENTS", [*registry.EXPERIMENTS, "gated"])
    monkeypatch.delenv("GATE", raising=False)


def _snapshot(folder: Path) -> dict:
    """{relative path: bytes} of every file under ``folder``, hidden work files excluded."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".runner" not in p.relative_to(folder).parts}


def _start_gated(out: Path, gate: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), GATE=str(gate), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "gated_experiment.py"), "run", "gated", "--out", str(out), *args],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_started(proc: subprocess.Popen, gate: Path, timeout: float = 180.0) -> None:
    start = time.monotonic()
    while not Path(f"{gate}.started").exists():
        if proc.poll() is not None:
            raise AssertionError(f"gated run exited early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() - start > timeout:
            proc.kill()
            raise AssertionError("gated run did not start in time")
        time.sleep(0.05)


def _summary_links_exist(root: Path) -> list[str]:
    text = (root / "summary.md").read_text()
    links = [line.split("](", 1)[1].split(")", 1)[0] for line in text.splitlines()
             if line.startswith("- [")]
    assert links, text
    return [link for link in links if not (root / link).is_file()]


def test_sigkill_mid_run_keeps_last_complete_results(tmp_path, gated):
    out = tmp_path / "D"
    assert main(["run", "gated", "--out", str(out)]) == 0
    before = _snapshot(out)
    assert set(before) == {"summary.md", "claims.csv", "gated/first.txt", "gated/second.txt", "gated/headline.json",
                           "gated/meta.json"}

    gate = tmp_path / "gate"
    proc = _start_gated(out, gate, "--seed", "5")
    _wait_started(proc, gate)
    staging = out / ".runner" / "gated.staging"
    assert (staging / "first.txt").read_text() == "full seed 5\n"  # the rerun writes aside
    assert _snapshot(out) == before
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)

    assert _snapshot(out) == before  # the last complete results and their summary
    assert _summary_links_exist(out) == []
    assert json.loads((out / "gated" / "meta.json").read_text())["seed"] == 0
    assert str(proc.pid) in (out / ".runner" / "gated.lock").read_text()  # the dead holder

    with pytest.warns(RuntimeWarning) as caught:
        assert main(["run", "gated", "--seed", "7", "--out", str(out)]) == 0
    messages = [str(w.message) for w in caught]
    assert any(issubclass(w.category, StaleLockWarning) and f"pid {proc.pid}" in str(w.message)
               for w in caught), messages
    assert any("partial outputs of an earlier run" in m for m in messages), messages
    assert json.loads((out / "gated" / "meta.json").read_text())["seed"] == 7
    assert sorted(p.name for p in (out / ".runner").iterdir()) == ["gated.lock", "summary.lock"]
    assert (out / ".runner" / "gated.lock").read_text() == ""  # released cleanly


def test_failed_rerun_keeps_last_complete_results(tmp_path, gated, monkeypatch, capsys):
    out = tmp_path / "D"
    assert main(["run", "gated", "--out", str(out)]) == 0
    before = _snapshot(out)
    gate = tmp_path / "gate"
    Path(f"{gate}.fail").touch()
    monkeypatch.setenv("GATE", str(gate))
    assert main(["run", "gated", "--seed", "3", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "told to fail" in err and f"{out / 'gated'} is unchanged" in err
    assert _snapshot(out) == before
    assert _summary_links_exist(out) == []


def test_second_run_into_a_locked_folder_names_the_holder(tmp_path, gated, capsys):
    out = tmp_path / "D"
    gate = tmp_path / "gate"
    proc = _start_gated(out, gate)
    _wait_started(proc, gate)
    assert main(["run", "gated", "--quick", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    holder = f"pid {proc.pid} on host {socket.gethostname()}, started "
    assert "is locked by another run" in err and holder in err, err
    assert f"command: python -m experiments run gated --out {out}" in err
    assert not (out / "gated").exists()  # the refused run wrote nothing
    Path(f"{gate}.go").touch()
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    meta = json.loads((out / "gated" / "meta.json").read_text())
    assert meta["quick"] is False and sorted(meta["files"]) == ["first.txt", "headline.json", "second.txt"]
    assert (out / "gated" / "first.txt").read_text() == "full seed 0\n"


def test_lock_is_exclusive_and_stale_lock_is_taken_over(tmp_path):
    lock = tmp_path / "x.lock"
    with exclusive_lock(lock, "first", what="X") as me:
        assert me["pid"] == os.getpid()
        with pytest.raises(LockHeldError, match=rf"X is locked by another run: pid {os.getpid()} .*command: first"):
            with exclusive_lock(lock, "second", what="X"):
                pass  # pragma: no cover
    assert lock.read_text() == ""
    lock.write_text(json.dumps({"pid": 999999, "host": "elsewhere", "command": "old run"}))
    with pytest.warns(StaleLockWarning, match="pid 999999 on host elsewhere.*command: old run"):
        with exclusive_lock(lock, "third", what="X"):
            assert json.loads(lock.read_text())["command"] == "third"


def test_quick_runs_never_replace_full_results(tmp_path, gated, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "gated"]) == 0  # full run: results/
    full = _snapshot(tmp_path / "results" / "gated")
    assert main(["run", "gated", "--quick"]) == 0  # quick default: results/quick/
    assert json.loads((tmp_path / "results/quick/gated/meta.json").read_text())["quick"] is True
    assert main(["run", "gated", "--quick", "--out", "results"]) == 1  # asked explicitly: refused
    err = capsys.readouterr().err
    assert "holds the results of a full run" in err and "never replaces them" in err
    assert _snapshot(tmp_path / "results" / "gated") == full
    assert "## gated" in (tmp_path / "results" / "summary.md").read_text()


def test_summary_lists_outputs_from_meta_and_marks_missing(tmp_path, gated):
    out = tmp_path / "D"
    (out / "gated").mkdir(parents=True)
    (out / "gated" / ".old.csv.abc123.tmp").write_text("killed write")
    (out / ".summary.md.xyz.tmp").write_text("killed write")
    assert main(["run", "gated", "--out", str(out)]) == 0
    assert not list(out.rglob("*.tmp"))  # temps of killed writes are cleaned
    (out / "gated" / "orphan.csv").write_text("x\n1\n")  # not an output of the run
    (out / "gated" / "second.txt").unlink()
    write_summary(out)
    summary = (out / "summary.md").read_text()
    assert "orphan.csv" not in summary
    assert "- [first.txt](gated/first.txt)\n" in summary
    assert "- [second.txt](gated/second.txt) **(missing on disk)**" in summary


def test_unrecorded_outputs_are_listed_with_a_warning(tmp_path, monkeypatch):
    module = _fake_failing_module()
    module.run = lambda cfg, ctx: ctx.path("raw.bin").write_bytes(b"\0")
    monkeypatch.setitem(sys.modules, "experiments.failing", module)
    monkeypatch.setattr(registry, "EXPERIMENTS", ["failing"])
    with pytest.warns(RuntimeWarning, match=r"without recording them .*\['raw.bin'\]"):
        assert main(["run", "failing", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "failing" / "meta.json").read_text())["files"] == ["raw.bin"]


def test_run_killed_during_the_swap_is_completed(tmp_path, gated, monkeypatch):
    out = tmp_path / "D"
    assert main(["run", "gated", "--seed", "1", "--out", str(out)]) == 0
    assert main(["run", "gated", "--seed", "2", "--out", str(out / ".runner" / "x")]) == 0
    new = out / ".runner" / "x" / "gated"
    # the state a SIGKILL between the two renames leaves: old results moved aside, new complete
    os.replace(out / "gated", out / ".runner" / "gated.previous")
    os.replace(new, out / ".runner" / "gated.staging")
    gate = tmp_path / "gate"
    Path(f"{gate}.fail").touch()
    monkeypatch.setenv("GATE", str(gate))
    with pytest.warns(RuntimeWarning, match="completed the swap"):
        assert main(["run", "gated", "--seed", "3", "--out", str(out)]) == 1  # recovers, then fails
    assert json.loads((out / "gated" / "meta.json").read_text())["seed"] == 2
    assert not (out / ".runner" / "gated.previous").exists()


def _counting_module(calls):
    """An experiment that counts units of work in ctx.resume_dir and fails after the first
    unit while ``calls["fail"]`` is set."""
    @dataclasses.dataclass
    class Config:
        units: int = 3

        @classmethod
        def quick(cls):
            return cls(units=2)

    def run(cfg, ctx):
        done = ctx.resume_dir / "done.txt"
        count = int(done.read_text()) if done.exists() else 0
        calls["resumed_at"].append(count)
        while count < cfg.units:
            count += 1
            done.write_text(str(count))
            if calls["fail"]:
                raise RuntimeError("killed")
        ctx.headline(units=count)

    mod = types.ModuleType("experiments.counting")
    mod.DESCRIPTION, mod.Config, mod.run = "counts resumable work", Config, run
    return mod


def _budgeted_module(budget, calls):
    """An experiment of 3 units that does at most ``budget`` of them per run (a budget field)
    and keeps its resume dir while units are left."""
    @dataclasses.dataclass
    class Config:
        units: int = 3
        per_run: int = dataclasses.field(default=budget, metadata={"budget": True})

        @classmethod
        def quick(cls):
            return cls()

    def run(cfg, ctx):
        done = ctx.resume_dir / "done.txt"
        count = int(done.read_text()) if done.exists() else 0
        calls.append(count)
        for _ in range(min(cfg.per_run, cfg.units - count)):
            count += 1
            done.write_text(str(count))
        if count < cfg.units:
            ctx.keep_resume_dir(f"{cfg.units - count} units left")
        ctx.headline(units=count)

    mod = types.ModuleType("experiments.budgeted")
    mod.DESCRIPTION, mod.Config, mod.run = "does part of its work per run", Config, run
    return mod


def test_a_budgeted_run_keeps_its_work_for_the_next_run_with_any_budget(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(registry, "EXPERIMENTS", ["budgeted"])
    resume = tmp_path / ".runner" / "budgeted.resume"

    def run(per_run):
        monkeypatch.setitem(sys.modules, "experiments.budgeted", _budgeted_module(per_run, calls))
        assert main(["run", "budgeted", "--out", str(tmp_path)]) == 0
        return json.loads((tmp_path / "budgeted" / "meta.json").read_text())

    meta = run(1)
    assert meta["resume_kept"] == "2 units left" and meta["resumed"] is False
    assert (resume / "done.txt").read_text() == "1"
    meta = run(5)  # another budget, same key: continues, completes, removes the folder
    assert calls == [0, 1] and meta["resumed"] is True and meta["resume_kept"] is None
    assert not resume.exists()
    assert json.loads((tmp_path / "budgeted" / "headline.json").read_text())["units"] == 3
    meta = run(1)  # a fresh start after a complete run
    assert calls == [0, 1, 0] and meta["resumed"] is False


def test_resume_key_leaves_out_only_budget_fields():
    @dataclasses.dataclass
    class Config:
        size: int = 4
        budget_s: float = dataclasses.field(default=60.0, metadata={"budget": True})
        note: str = dataclasses.field(default="x", metadata={"unit": "none"})

    assert runner.resume_key_config(Config()) == {"size": 4, "note": "x"}


def test_keep_resume_dir_needs_a_reason(tmp_path):
    ctx = runner.RunContext(name="x", out_dir=tmp_path)
    with pytest.raises(TypeError, match="reason"):
        ctx.keep_resume_dir("")


def test_resume_dir_survives_a_failed_run_and_is_removed_on_completion(tmp_path, monkeypatch):
    calls = {"fail": True, "resumed_at": []}
    monkeypatch.setitem(sys.modules, "experiments.counting", _counting_module(calls))
    monkeypatch.setattr(registry, "EXPERIMENTS", ["counting"])
    assert main(["run", "counting", "--out", str(tmp_path)]) == 1
    resume = tmp_path / ".runner" / "counting.resume"
    assert (resume / "done.txt").read_text() == "1"
    calls["fail"] = False
    assert main(["run", "counting", "--seed", "1", "--out", str(tmp_path)]) == 0  # other seed
    assert calls["resumed_at"] == [0, 0] and not resume.exists()
    meta = json.loads((tmp_path / "counting" / "meta.json").read_text())
    assert meta["resumed"] is False
    calls["fail"] = True
    assert main(["run", "counting", "--out", str(tmp_path)]) == 1
    calls["fail"] = False
    assert main(["run", "counting", "--out", str(tmp_path)]) == 0  # same key: resumes
    assert calls["resumed_at"] == [0, 0, 0, 1] and not resume.exists()
    meta = json.loads((tmp_path / "counting" / "meta.json").read_text())
    assert meta["resumed"] is True and json.loads((tmp_path / "counting" / "headline.json").read_text())["units"] == 3


def test_summary_flags_results_run_with_another_configuration(tmp_path):
    """A results folder whose recorded config differs from the code's current default says
    which fields differ (tuples recorded as lists are the same value); budget fields do not
    count."""
    from experiments import chaining, competitors
    from experiments.summary import config_drift, render

    current = json.loads(json.dumps(dataclasses.asdict(chaining.Config())))
    assert config_drift("chaining", {"quick": False, "config": current}) == []
    changed = dict(current, nfft=2 ** 12)
    assert config_drift("chaining", {"quick": False, "config": changed}) == ["nfft"]
    assert config_drift("chaining", {"quick": True, "config": current}) != []  # quick: Config.quick()
    rival = json.loads(json.dumps(dataclasses.asdict(competitors.Config()), default=str))
    assert config_drift("competitors", {"quick": False, "config": dict(rival, run_budget_s=None)}) == []
    (tmp_path / "chaining").mkdir()
    io.write_json(tmp_path / "chaining" / "meta.json", {"quick": False, "config": changed, "files": []})
    assert "another configuration than the code's current default (nfft)" in render(tmp_path)
