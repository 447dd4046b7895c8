"""The task runner on a real Dask cluster: a scheduler and two workers on localhost, each a
separate process (free ports, torn down at the end, also on failure).

A quick experiment through ``--scheduler`` gives the serial run's CSVs bit for bit; a
failing task is reported and the others are stored; a worker killed mid-run loses no
finished task and the run completes on the other one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments.cli import main

if os.environ.get("FLAMO_REQUIRE_CLUSTER"):  # CI: the dev extra installs Dask; never skip there
    import distributed
else:
    distributed = pytest.importorskip("distributed", reason="the cluster extra is not installed")

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Cluster:
    address: str
    workers: dict  # worker pid -> Popen
    log: Path  # every task appends "start|end KEY PID" here (TASK_LOG)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=15)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    log = tmp / "tasks.log"
    log.touch()
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", TASK_LOG=str(log))
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--no-dashboard"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
            stderr=open(tmp / "scheduler.log", "w")))
        for i in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "dask", "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                 "--no-nanny", "--no-dashboard", "--name", f"w{i}",
                 "--preload", str(REPO / "tests" / "task_experiment.py")],
                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / f"worker{i}.log", "w")))
        with distributed.Client(address, timeout=120) as client:
            client.wait_for_workers(2, timeout=240)
            pids = set(client.run(os.getpid).values())
        workers = {p.pid: p for p in procs[1:]}
        assert pids == set(workers), (pids, set(workers))
        yield Cluster(address, workers, log)
    finally:
        _stop(procs)


def _meta(out: Path, name: str) -> dict:
    return json.loads((out / name / "meta.json").read_text())


def _run(name: str, out: Path, *args: str) -> int:
    return main(["run", name, "--quick", "--out", str(out), *args])


def test_cluster_run_is_identical_to_the_serial_run(tmp_path, cluster, tasked):
    for name, csv in (("smoke", "errors.csv"), ("tasked", "values.csv")):
        serial, dask = tmp_path / f"serial_{name}", tmp_path / f"dask_{name}"
        assert _run(name, serial) == 0
        assert _run(name, dask, "--scheduler", cluster.address) == 0
        assert (dask / name / csv).read_bytes() == (serial / name / csv).read_bytes(), name
        meta = _meta(dask, name)
        assert meta["executor"] == {"kind": "dask", "scheduler": cluster.address, "workers": 2}
        ran_on = {int(t["worker"].rsplit(":", 1)[1]) for t in meta["tasks"]["per_task"]}
        assert ran_on <= set(cluster.workers) and os.getpid() not in ran_on
    import matplotlib.image

    png = "smoke/impulse_responses.png"
    assert (matplotlib.image.imread(tmp_path / "dask_smoke" / png)
            == matplotlib.image.imread(tmp_path / "serial_smoke" / png)).all()


def test_failing_task_on_the_cluster_is_reported_and_the_others_are_stored(
        tmp_path, cluster, tasked, monkeypatch, capsys):
    monkeypatch.setenv("TASKED_N", "5")
    monkeypatch.setenv("TASKED_FAIL", "2")
    out = tmp_path / "R"
    assert _run("tasked", out, "--scheduler", cluster.address) == 1
    err = capsys.readouterr().err
    assert "1 of 5 tasks of tasked failed" in err
    assert 't2 {"fail":true,"i":2,"sleep_s":0.0}: ValueError: task 2 told to fail' in err
    assert len(list((out / ".runner" / "tasked.tasks").glob("*.npz"))) == 4
    assert not (out / "tasked").exists()


def test_killed_worker_loses_no_finished_task_and_the_run_completes(tmp_path, cluster, tasked, monkeypatch):
    monkeypatch.setenv("TASKED_N", "8")
    monkeypatch.setenv("TASKED_SLEEP", "0.6")
    out = tmp_path / "R"
    store = out / ".runner" / "tasked.tasks"
    offset = cluster.log.stat().st_size
    seen = {}

    def kill_one_busy_worker():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            done = sorted(store.glob("*.npz")) if store.is_dir() else []
            with open(cluster.log, encoding="utf-8") as fh:
                fh.seek(offset)
                events = [line.split() for line in fh.read().splitlines()]
            running = {(k, int(p)) for e, k, p in events if e == "start"} - \
                      {(k, int(p)) for e, k, p in events if e == "end"}
            if len(done) >= 2 and running:
                key, pid = sorted(running)[0]
                seen.update(files={p.name: p.read_bytes() for p in done}, key=key, pid=pid)
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=kill_one_busy_worker, daemon=True)
    watcher.start()
    assert _run("tasked", out, "--scheduler", cluster.address) == 0
    watcher.join(timeout=10)
    assert seen, "no worker was killed: the run ended before two tasks were stored"
    cluster.workers[seen["pid"]].wait(timeout=30)  # it is dead

    info = _meta(out, "tasked")["tasks"]
    assert (info["count"], info["computed"]) == (8, 8)
    assert {p.name: p.read_bytes() for p in store.glob("*.npz") if p.name in seen["files"]} == seen["files"]
    survivor = (set(cluster.workers) - {seen["pid"]}).pop()
    rerun = next(t for t in info["per_task"] if t["key"] == seen["key"])
    assert rerun["worker"].endswith(f":{survivor}")  # the interrupted task was rescheduled

    serial = tmp_path / "serial"
    assert _run("tasked", serial) == 0
    assert (out / "tasked" / "values.csv").read_bytes() == (serial / "tasked" / "values.csv").read_bytes()
