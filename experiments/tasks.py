"""Experiments as independent tasks: declaration, the per-task store, execution.

An experiment can declare its independent units of work instead of one ``run``:

* ``tasks(cfg) -> list[Task]``: the units (grid cells, trials, targets), each a unique key
  and the parameters that describe it completely (JSON data);
* ``run_task(params, tctx) -> result``: computes one unit from its parameters alone
  (``tctx`` is a :class:`TaskContext`); the result is JSON data and numpy arrays;
* ``reduce(cfg, results, ctx)``: turns ``{key: result}`` (in task order) into the CSVs,
  figures and headline, through the run context as ``run`` would.

:func:`run_tasks` computes every task whose result is not yet in the experiment's
:class:`TaskStore` and returns all results read back from the store, so the reducer gets
the same bytes whether a task ran now, in an earlier (killed) run, in this process or on a
Dask worker. A stored result is keyed by a hash of everything it depends on: the
experiment, the task's parameters, the run seed, device and dtype, and the code version
(:func:`code_version`). A rerun therefore skips finished tasks, and a changed configuration
recomputes only the tasks whose parameters changed.

A task runs with one thread (torch, BLAS, OpenMP) and seeds ``random``, numpy and torch from
:func:`task_seed` (the experiment, the run seed and its parameters), never from the worker
or the order, so its result does not depend on where or when it ran.
"""

from __future__ import annotations

import ast
import datetime as _dt
import functools
import hashlib
import io as _io
import json
import math
import os
import shutil
import socket
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from tqdm import tqdm

from flamo.atomic import atomic_write, remove_stale_temps

__all__ = ["Task", "TaskContext", "TaskStore", "TasksFailedError", "CodeMismatchError",
           "run_tasks", "execute_task", "code_version", "code_files", "imported_experiments",
           "task_seed", "projected_wall_s", "encode_record", "decode_record"]

#: Version of the stored record layout; part of every task hash.
STORE_FORMAT = 1
#: Placeholder for an array in the JSON part of a stored result.
_ARRAY = "__ndarray__"
#: Environment variable set while a task runs (speed benchmarks refuse to run inside one).
TASK_ENV = "FLAMO_TASK"

REPO = Path(__file__).resolve().parent.parent
#: Source folders whose .py files make the code version (other experiments' modules excluded).
CODE_DIRS = ("flamo", "baselines", "experiments")


@dataclass(frozen=True)
class Task:
    """One independent unit of work of an experiment.

    Attributes
    ----------
    key : str
        Unique, human-readable label within the experiment (e.g. ``"fdn6_T9/nfft2^15"``):
        names the task in progress messages, failure reports and ``results``.
    params : dict
        Everything the task computes from: ``run_task`` receives exactly this (after a JSON
        round trip: tuples arrive as lists), and its hash keys the stored result. Only JSON
        data (dict with str keys, list, tuple, str, int, float, bool, None).
    """

    key: str
    params: dict


@dataclass
class TaskContext:
    """What ``run_task`` gets besides its parameters.

    Attributes
    ----------
    key : str
        The task's key.
    seed : int
        The task's seed (:func:`task_seed`); numpy's and torch's global generators are
        seeded with it before the task runs, and so is Python's ``random``, but on a Dask
        worker that one is shared with Dask's own threads: its draws are not reproducible
        there, so draw from numpy, torch or :attr:`rng`.
    run_seed : int
        The run's ``--seed`` (part of every task's hash), for experiments whose tasks share
        seeds on purpose (paired trials).
    device : torch.device
        Device to compute on.
    dtype : torch.dtype
        Floating point dtype to compute in.
    """

    key: str
    seed: int
    run_seed: int
    device: torch.device
    dtype: torch.dtype
    _work_dir: Path = field(repr=False, default=None)

    @property
    def work_dir(self) -> Path:
        """Folder for work a rerun should not redo (e.g. ``Trainer(checkpoint_dir=...)``).

        It lives in the task store, survives a killed run, and is removed once the task's
        result is stored. Created on first use; on a worker that cannot create it (no shared
        file system) a temporary folder is used instead, with a warning: the task then
        starts over if it is rescheduled.
        """
        try:
            self._work_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fallback = Path(tempfile.mkdtemp(prefix=f"flamo-task-{self._work_dir.name}-"))
            warnings.warn(f"task {self.key!r}: cannot create its work folder {self._work_dir} "
                          f"({exc}); using {fallback}, which a rerun will not find",
                          RuntimeWarning, stacklevel=2)
            self._work_dir = fallback
        return self._work_dir

    @property
    def rng(self) -> np.random.Generator:
        """A new numpy generator seeded with the task's seed."""
        return np.random.default_rng(self.seed)

    def log(self, msg: str) -> None:
        """Message to stderr (the worker's log when the task runs on a Dask worker)."""
        tqdm.write(f"[{self.key}] {msg}", file=sys.stderr)


class TasksFailedError(RuntimeError):
    """Some tasks raised; the others' results are stored and a rerun computes only these."""


class CodeMismatchError(RuntimeError):
    """A worker runs different code than the client that submitted the task."""


# -- JSON data and canonical forms ----------------------------------------------------------
def _plain(obj: Any, where: str, arrays: list | None) -> Any:
    """``obj`` as plain JSON data; numpy/torch arrays go to ``arrays`` when it is a list
    (results), and are refused when it is None (parameters)."""
    if obj is None or isinstance(obj, (bool, str, int, float)):
        return obj
    if isinstance(obj, np.generic) and obj.dtype.kind in "biuf":
        return obj.item()
    if torch.is_tensor(obj) and arrays is not None:
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray) and arrays is not None:
        if obj.dtype.kind not in "biufc":
            raise TypeError(f"{where}: only numeric arrays can be stored, got dtype {obj.dtype}")
        arrays.append(np.ascontiguousarray(obj))
        return {_ARRAY: len(arrays) - 1}
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str) or k == _ARRAY:
                raise TypeError(f"{where}: keys must be strings other than {_ARRAY!r}, got {k!r}")
            out[k] = _plain(v, f"{where}[{k!r}]", arrays)
        return out
    if isinstance(obj, (list, tuple)):
        return [_plain(v, f"{where}[{i}]", arrays) for i, v in enumerate(obj)]
    allowed = "JSON data and numeric numpy arrays or torch tensors" if arrays is not None else "JSON data"
    raise TypeError(f"{where}: expected {allowed}, got {type(obj).__name__} ({obj!r:.80})")


def canonical(obj: Any, where: str = "params") -> str:
    """Canonical JSON text of plain data (sorted keys, no spaces): what a task hash reads."""
    return json.dumps(_plain(obj, where, None), sort_keys=True, separators=(",", ":"))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def task_seed(experiment: str, run_seed: int, params_json: str) -> int:
    """Seed of a task: a 32-bit hash (numpy's legacy seed range) of the experiment, the run's
    seed and the task's canonical parameters, so it depends on what the task is, not on where
    or when it runs."""
    digest = hashlib.sha256(f"{experiment}\0{run_seed}\0{params_json}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def imported_experiments(source: Path, registered: set[str]) -> set[str]:
    """Registered experiments that the module at ``source`` imports (``from experiments import
    X``, ``import experiments.X``, ``from experiments.X import ...``), followed transitively."""
    found, todo = set(), [source]
    while todo:
        tree = ast.parse(todo.pop().read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module == "experiments":
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("experiments."):
                names = [node.module.split(".")[1]]
            elif isinstance(node, ast.Import):
                names = [a.name.split(".")[1] for a in node.names if a.name.startswith("experiments.")]
            for name in set(names) & registered - found:
                found.add(name)
                todo.append(REPO / "experiments" / f"{name}.py")
    return found


def code_files(skip_experiments: Iterable[str]) -> list[Path]:
    """The ``.py`` files of ``flamo/``, ``baselines/`` and ``experiments/`` that a task's code
    version reads: all but the modules of the experiments named in ``skip_experiments``."""
    skip = {REPO / "experiments" / f"{name}.py" for name in skip_experiments}
    return sorted(p for d in CODE_DIRS for p in (REPO / d).rglob("*.py") if p not in skip)


@functools.lru_cache(maxsize=None)
def _code_version(experiment: str, module_file: str | None) -> str:
    from experiments import registry
    from experiments.runner import versions

    registered = {n for n in registry.names() if (REPO / "experiments" / f"{n}.py").is_file()}
    used = {experiment}
    if module_file is not None:
        used |= imported_experiments(Path(module_file), registered)
    files = [(p.relative_to(REPO).as_posix(), p) for p in code_files(registered - used)]
    if module_file is not None and REPO / "experiments" / f"{experiment}.py" != Path(module_file):
        # a module from elsewhere (a test experiment; Dask copies a preloaded file): by content
        files.append((f"<module of {experiment}>", Path(module_file)))
    h = hashlib.sha256()
    for label, path in files:
        h.update(f"{label}\0".encode())
        h.update(path.read_bytes())
        h.update(b"\0")
    h.update(canonical(versions(), "versions").encode())
    return h.hexdigest()[:32]


def code_version(experiment: str, module) -> str:
    """Hash of the code a task of ``experiment`` runs.

    Reads every ``.py`` file of ``flamo/``, ``baselines/`` and ``experiments/`` except the
    modules of the other registered experiments that this one does not import (directly or
    through one it imports), the experiment's module, and the versions of python and the
    packages recorded in ``meta.json``. Content, not the git commit: an
    uncommitted change counts, and a commit that touches only other files does not.
    """
    source = getattr(module, "__file__", None)
    return _code_version(experiment, str(Path(source).resolve()) if source else None)


# -- the store -----------------------------------------------------------------------------
def encode_record(record: dict, result: Any) -> bytes:
    """One stored task: an ``.npz`` archive with the JSON record and the result's arrays."""
    arrays: list = []
    doc = dict(record, result=_plain(result, "task result", arrays))
    text = json.dumps(doc, allow_nan=True)  # key order kept: it becomes the CSV column order
    buf = _io.BytesIO()
    np.savez(buf, record=np.frombuffer(text.encode("utf-8"), dtype=np.uint8),
             **{f"a{i}": a for i, a in enumerate(arrays)})
    return buf.getvalue()


def decode_record(path: Path) -> dict:
    """The record of a stored task with its result (arrays restored). Never unpickles."""
    with np.load(path, allow_pickle=False) as archive:
        doc = json.loads(archive["record"].tobytes().decode("utf-8"))
        arrays = {name: archive[name] for name in archive.files if name != "record"}

    def restore(obj):
        if isinstance(obj, dict):
            if set(obj) == {_ARRAY}:
                return arrays[f"a{obj[_ARRAY]}"]
            return {k: restore(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [restore(v) for v in obj]
        return obj

    doc["result"] = restore(doc["result"])
    return doc


class TaskStore:
    """Finished task results of one experiment, one file per task, keyed by hash.

    Lives at ``<out>/.runner/<name>.tasks/`` next to the lock and outside the staging folder,
    so it survives a killed run (its results are kept until a later run completes without
    needing them). Files are ``<digest>.npz`` (written atomically) and the work folders
    ``<digest>.work/`` of tasks still running.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        return self.root / f"{digest}.npz"

    def work_dir(self, digest: str) -> Path:
        return self.root / f"{digest}.work"

    def load(self, spec: dict) -> dict | None:
        """The stored record of ``spec``'s task, or None if it has not finished.

        A file that cannot be read, or whose record does not match the task, is ignored with
        a warning (the task is computed again).
        """
        path = self.path(spec["digest"])
        if not path.is_file():
            return None
        try:
            doc = decode_record(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
            warnings.warn(f"task {spec['key']!r}: unreadable stored result {path} ({exc}); "
                          f"computing it again", RuntimeWarning, stacklevel=2)
            return None
        identity = ("experiment", "seed", "device", "dtype", "code")
        if (any(doc.get(k) != spec[k] for k in identity)
                or canonical(doc.get("params")) != spec["params_json"]):
            warnings.warn(f"task {spec['key']!r}: the stored result {path} belongs to another "
                          f"task; computing it again", RuntimeWarning, stacklevel=2)
            return None
        return doc

    def save(self, spec: dict, data: bytes) -> None:
        """Store a task's encoded result atomically, then drop its work folder."""
        atomic_write(self.path(spec["digest"]), lambda tmp: tmp.write_bytes(data))
        shutil.rmtree(self.work_dir(spec["digest"]), ignore_errors=True)

    def clean(self) -> None:
        """Remove temporary files of writes that were killed (call under the experiment lock)."""
        if self.root.is_dir():
            for path in self.root.glob("*.npz"):
                remove_stale_temps(path)
            for tmp in self.root.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)

    def prune(self, keep: Iterable[str]) -> int:
        """Remove stored results and work folders whose digest is not in ``keep``."""
        keep = set(keep)
        removed = 0
        if not self.root.is_dir():
            return 0
        for entry in self.root.iterdir():
            digest = entry.name.split(".", 1)[0]
            if digest and digest not in keep:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
                removed += 1
        return removed


# -- one task, wherever it runs -------------------------------------------------------------
def specs_for(experiment: str, module, task_list: list, run_seed: int, device: str, dtype: str,
              store: TaskStore) -> list[dict]:
    """Check ``task_list`` and describe each task for :func:`execute_task` (plain data only)."""
    if not isinstance(task_list, (list, tuple)) or not task_list:
        raise ValueError(f"experiment {experiment!r}: tasks(cfg) must return a non-empty list of "
                         f"Task, got {task_list!r:.80}")
    code = code_version(experiment, module)
    specs, seen = [], set()
    for i, task in enumerate(task_list):
        if not isinstance(task, Task) or not isinstance(task.key, str) or not task.key:
            raise TypeError(f"experiment {experiment!r}: tasks(cfg)[{i}] must be a Task with a "
                            f"non-empty str key, got {task!r:.80}")
        if task.key in seen:
            raise ValueError(f"experiment {experiment!r}: duplicate task key {task.key!r}")
        seen.add(task.key)
        if not isinstance(task.params, dict):
            raise TypeError(f"task {task.key!r}: params must be a dict, got {type(task.params).__name__}")
        params_json = canonical(task.params, f"task {task.key!r} params")
        identity = {"format": STORE_FORMAT, "experiment": experiment, "params": params_json,
                    "seed": run_seed, "device": device, "dtype": dtype, "code": code}
        digest = _sha256(json.dumps(identity, sort_keys=True))[:32]
        specs.append({"experiment": experiment, "key": task.key, "params_json": params_json,
                      "seed": run_seed, "device": device, "dtype": dtype, "code": code,
                      "digest": digest, "work_dir": str(store.work_dir(digest).resolve())})
    return specs


def execute_task(spec: dict) -> dict:
    """Run one task described by ``spec`` (from :func:`specs_for`) in this process.

    This is the function an executor runs, in-process or on a Dask worker: it checks that
    this process runs the client's code, seeds everything from the task, runs ``run_task``
    with one thread (torch's, and every BLAS and OpenMP pool through threadpoolctl: a
    multithreaded dot product sums in another order) and returns ``{"data": bytes}`` (the encoded record, ready for
    :meth:`TaskStore.save`) or ``{"error", "traceback"}``, with ``wall_s`` and ``worker``.
    A task that raises never raises here, so it cannot take other tasks down with it.
    """
    from threadpoolctl import threadpool_limits

    from experiments import registry
    from experiments.runner import DTYPES, seed_everything

    worker = f"{socket.gethostname()}:{os.getpid()}"
    threads = torch.get_num_threads()
    previous_env = os.environ.get(TASK_ENV)
    start = time.perf_counter()
    try:
        module = registry.load(spec["experiment"])
        mine = code_version(spec["experiment"], module)
        if mine != spec["code"]:
            raise CodeMismatchError(
                f"worker {worker} runs code version {mine}, the client {spec['code']}: start every "
                f"worker from a checkout of the same commit, with the same package versions")
        params = json.loads(spec["params_json"])
        seed = task_seed(spec["experiment"], spec["seed"], spec["params_json"])
        tctx = TaskContext(key=spec["key"], seed=seed, run_seed=spec["seed"], device=torch.device(spec["device"]),
                           dtype=DTYPES[spec["dtype"]], _work_dir=Path(spec["work_dir"]))
        torch.set_num_threads(1)
        os.environ[TASK_ENV] = spec["key"]
        seed_everything(seed)
        t0 = time.perf_counter()
        with threadpool_limits(limits=1):
            result = module.run_task(params, tctx)
        wall = time.perf_counter() - t0
        record = {"format": STORE_FORMAT, "experiment": spec["experiment"], "key": spec["key"],
                  "params": params, "seed": spec["seed"], "device": spec["device"],
                  "dtype": spec["dtype"], "code": spec["code"], "task_seed": seed,
                  "wall_s": round(wall, 6), "worker": worker,
                  "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        return {"data": encode_record(record, result), "wall_s": wall, "worker": worker}
    except Exception as exc:  # reported with the task's configuration by run_tasks
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                "wall_s": time.perf_counter() - start, "worker": worker}
    finally:
        torch.set_num_threads(threads)
        if previous_env is None:
            os.environ.pop(TASK_ENV, None)
        else:
            os.environ[TASK_ENV] = previous_env


# -- the run -------------------------------------------------------------------------------
def projected_wall_s(task_times: Iterable[float], workers: int) -> float:
    """Makespan of the measured task times on ``workers`` workers, longest task first to the
    least-loaded worker (a lower bound of a real run: no start-up, transfer or reducer)."""
    loads = [0.0] * workers
    for t in sorted(task_times, reverse=True):
        i = loads.index(min(loads))
        loads[i] += t
    return max(loads)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def run_tasks(module, experiment: str, cfg, ctx, store: TaskStore, executor) -> tuple[dict, dict]:
    """Compute the missing tasks of ``module.tasks(cfg)`` with ``executor``; return the results.

    Parameters
    ----------
    module : module
        The experiment (``tasks``, ``run_task``, ``reduce``).
    experiment : str
        Its registered name.
    cfg : dataclass
        Its configuration.
    ctx : experiments.runner.RunContext
        The run's context (seed, device, dtype, progress, log, the staging folder).
    store : TaskStore
        Where finished tasks are kept.
    executor : experiments.executors.SerialExecutor or DaskExecutor
        Runs :func:`execute_task` on the missing tasks.

    Returns
    -------
    results : dict
        ``{key: result}`` in task order, every result read back from the store.
    info : dict
        For ``meta.json``: counts, code version, per-task wall times, projections.

    Raises
    ------
    TasksFailedError
        After every task was tried, if some raised: lists each one's key, parameters and
        error; the full tracebacks are in ``failed_tasks.json`` in the staging folder. The
        other tasks' results are stored.
    """
    store.root.mkdir(parents=True, exist_ok=True)
    store.clean()
    specs = specs_for(experiment, module, module.tasks(cfg), ctx.seed, str(ctx.device),
                      str(ctx.dtype).removeprefix("torch."), store)
    records: dict[int, dict] = {}
    for i, spec in enumerate(specs):
        doc = store.load(spec)
        if doc is not None:
            records[i] = doc
    reused = len(records)
    pending = [i for i in range(len(specs)) if i not in records]
    if reused:
        ctx.log(f"{reused} of {len(specs)} tasks already done (stored in {store.root}), "
                f"{len(pending)} to compute")
    failures = []
    start = time.perf_counter()
    bar = tqdm(total=len(specs), initial=reused, desc=f"{experiment}: tasks", file=sys.stderr,
               leave=False, unit="task")
    try:
        for j, outcome in executor.run([specs[i] for i in pending]):
            spec = specs[pending[j]]
            if "error" in outcome:
                failures.append({"key": spec["key"], "params": json.loads(spec["params_json"]),
                                 "error": outcome["error"], "worker": outcome.get("worker"),
                                 "traceback": outcome.get("traceback", "")})
                ctx.log(f"task {spec['key']} failed on {outcome.get('worker')}: {outcome['error']}")
            else:
                store.save(spec, outcome["data"])
                doc = store.load(spec)
                if doc is None:
                    raise RuntimeError(f"task {spec['key']!r}: its result could not be read back "
                                       f"from {store.path(spec['digest'])}")
                records[pending[j]] = doc
            bar.update(1)
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    if failures:
        from experiments import io

        report = io.write_json(ctx.out_dir / "failed_tasks.json", failures)
        lines = [f"  {f['key']} {_short(canonical(f['params']))}: {f['error']}" for f in failures]
        raise TasksFailedError(
            f"{len(failures)} of {len(specs)} tasks of {experiment} failed (tracebacks in {report}); "
            f"the {len(records)} others are stored in {store.root} and a rerun computes only the "
            f"missing ones:\n" + "\n".join(lines))

    results = {specs[i]["key"]: records[i]["result"] for i in range(len(specs))}
    times = [float(records[i]["wall_s"]) for i in range(len(specs))]
    info = {
        "count": len(specs),
        "computed": len(pending),
        "reused": reused,
        "code_version": specs[0]["code"],
        "compute_wall_s": round(elapsed, 3),
        "task_wall_s": {"total": round(math.fsum(times), 3), "median": round(float(np.median(times)), 3),
                        "max": round(max(times), 3), "min": round(min(times), 3)},
        "projected_wall_s": {str(p): round(projected_wall_s(times, p), 3) for p in (1, 2, 16, 64)},
        "per_task": [{"key": specs[i]["key"], "digest": specs[i]["digest"], "wall_s": round(times[i], 3),
                      "worker": records[i].get("worker"), "reused": i not in pending}
                     for i in range(len(specs))],
    }
    ctx.log(f"{len(specs)} tasks ({len(pending)} computed, {reused} reused): task time "
            f"{info['task_wall_s']['total']:.1f} s in all, computed in {elapsed:.1f} s")
    return results, info
