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

from experiments import io, registry
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
