"""A registered test experiment ``tasked`` in the task form, for the task-runner tests.

Each task draws from the generators seeded per task (numpy's and torch's global ones and
``tctx.rng``; Python's ``random`` is shared with Dask's threads on a worker), so its result
shows whether the seed came from the task; it can sleep (to be caught mid-run)
and fail (``fail`` lists the indices that raise). With the environment variable
``TASK_LOG`` naming a file, each task appends ``start KEY PID`` and ``end KEY PID`` to it.
The configuration of the quick variant is read from ``TASKED_N``, ``TASKED_SLEEP`` and
``TASKED_FAIL`` (comma-separated indices) when they are set, so a test can size a run
given on a command line.

Registered by :func:`register`: in a test process (the ``tasked`` fixture), in a Dask
worker (``dask worker ... --preload tests/task_experiment.py``) and when run as a script,
which is ``python -m experiments`` with this experiment registered:
``python tests/task_experiment.py run tasked --quick --out D``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

NAME = "tasked"
DESCRIPTION = "test experiment in the task form: random draws per task, sleeps and failures"
REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Config:
    n: int = 6
    sleep_s: float = 0.0
    fail: tuple = ()

    @classmethod
    def quick(cls):
        fail = os.environ.get("TASKED_FAIL", "")
        return cls(n=int(os.environ.get("TASKED_N", 4)), sleep_s=float(os.environ.get("TASKED_SLEEP", 0)),
                   fail=tuple(int(i) for i in fail.split(",") if i))


def tasks(cfg):
    from experiments.tasks import Task

    return [Task(f"t{i}", {"i": i, "sleep_s": cfg.sleep_s, "fail": i in cfg.fail}) for i in range(cfg.n)]


def _log(event, key):
    path = os.environ.get("TASK_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{event} {key} {os.getpid()}\n")


def run_task(params, tctx):
    _log("start", tctx.key)
    time.sleep(params["sleep_s"])
    if params["fail"]:
        raise ValueError(f"task {params['i']} told to fail")
    from threadpoolctl import threadpool_info

    v = np.random.rand(200_000)  # long enough for a multithreaded BLAS to split the sum
    result = {"i": params["i"], "rng": float(tctx.rng.random()), "np": float(np.random.rand()),
              "dot": float(v @ v), "torch": torch.randn(8, dtype=torch.float64),
              "threads": max([torch.get_num_threads()] + [p["num_threads"] for p in threadpool_info()]),
              "seed": tctx.seed}
    _log("end", tctx.key)
    return result


def reduce(cfg, results, ctx):
    import pandas as pd

    rows = [{"key": k, "i": r["i"], "rng": r["rng"], "np": r["np"], "dot": r["dot"], "torch_sum": float(r["torch"].sum()),
             "threads": r["threads"], "seed": r["seed"]} for k, r in results.items()]
    ctx.write_csv(pd.DataFrame(rows), "values.csv")
    ctx.headline(tasks=len(rows))


def register():
    """Register this module as the experiment ``experiments.tasked`` in this process."""
    from experiments import registry

    module = sys.modules[__name__]
    sys.modules[f"experiments.{NAME}"] = module
    if NAME not in registry.EXPERIMENTS:
        registry.EXPERIMENTS.append(NAME)


def dask_setup(worker=None):
    """Dask's preload hook: register the experiment in the worker process."""
    register()


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    from experiments.cli import main

    register()
    sys.exit(main(sys.argv[1:]))
else:  # imported by a Dask worker's --preload (it runs the module, then dask_setup)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
