"""Run one experiment: seeding, the run context, outputs and provenance.

The runner locks ``<out_root>/<name>``, seeds the random number generators
and calls ``module.run(cfg, ctx)`` with a context that writes into a staging
folder; an experiment in the task form (:mod:`experiments.tasks`) has its
missing tasks computed by an executor (:mod:`experiments.executors`) and then
``module.reduce(cfg, results, ctx)`` called instead. Once the experiment
returns it writes ``meta.json`` (provenance and the list of outputs) there,
and only then replaces ``<out_root>/<name>`` by the staging folder: a run that
fails or is killed never touches the last complete results. Task results live
outside the staging folder, in ``<out_root>/.runner/<name>.tasks/``, so a
killed run's finished tasks are not computed again.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import importlib.metadata
import json
import platform
import random
import os
import shlex
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from tqdm import tqdm

from experiments import io, registry, tasks
from experiments.executors import SerialExecutor
from experiments.lock import exclusive_lock
from flamo.atomic import fsync_dir

META_FILE = "meta.json"
HEADLINE_FILE = "headline.json"
#: Folder inside a results root for locks and staging folders (git-ignored).
RUNNER_DIR = ".runner"
FULL_ROOT = Path("results")
QUICK_ROOT = Path("results/quick")

DTYPES = {"float32": torch.float32, "float64": torch.float64}

_VERSIONED_PACKAGES = ("torch", "numpy", "scipy", "pandas", "matplotlib", "pyroomacoustics",
                       "soundfile", "flamo")


@dataclass
class RunContext:
    """Everything an experiment needs from the runner.

    Attributes
    ----------
    name : str
        Experiment name.
    out_dir : Path
        Folder this run writes into (exists): a staging folder that replaces
        ``<out_root>/<name>`` when the run completes. Write every output here.
    quick : bool
        True for the quick variant (``Config.quick()``).
    seed : int
        Seed the runner used for ``random``, numpy and torch.
    device : torch.device
        Device to compute on.
    dtype : torch.dtype
        Floating point dtype to compute in.
    resume_dir : Path or None
        Folder for work that an interrupted run should not redo (Trainer checkpoints,
        finished trials): it survives a failed or killed run, is reused by the next run of
        the same experiment only if commit, dirty flag, seed, quick flag, device, dtype and
        config are all the same (else it is emptied; config fields marked
        ``metadata={"budget": True}``, which bound how much of the work a run does rather
        than what it computes, are left out of that comparison), and is removed when a run
        completes, unless the run called :meth:`keep_resume_dir`. Never an output: write
        results through the writers below.
    """

    name: str
    out_dir: Path
    quick: bool = False
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    resume_dir: Path | None = None
    _files: list[Path] = field(default_factory=list, repr=False)
    _headline: dict[str, Any] = field(default_factory=dict, repr=False)
    _provenance: dict[str, Any] = field(default_factory=dict, repr=False)
    _keep_resume: str | None = field(default=None, repr=False)

    # -- outputs -----------------------------------------------------------
    def path(self, name: str) -> Path:
        """Return ``out_dir / name`` (for files written by other means)."""
        return self.out_dir / name

    def record(self, path: Path) -> Path:
        """List a file written by another writer (a preset, a WAV) in meta.json; returns it."""
        path = Path(path)
        if path not in self._files:
            self._files.append(path)
        return path

    def write_csv(self, df, name: str) -> Path:
        """Atomically write DataFrame ``df`` as ``out_dir/name`` (no index)."""
        return self.record(io.write_csv(self.path(name), df))

    def save_figure(self, fig, name: str, dpi: int = 120) -> Path:
        """Atomically save ``fig`` as PNG ``out_dir/name`` and close it."""
        return self.record(io.save_figure(self.path(name), fig, dpi=dpi))

    def write_json(self, obj: Any, name: str) -> Path:
        """Atomically write ``obj`` as JSON ``out_dir/name``."""
        return self.record(io.write_json(self.path(name), obj))

    def write_text(self, text: str, name: str) -> Path:
        """Atomically write ``text`` to ``out_dir/name``."""
        return self.record(io.write_text(self.path(name), text))

    def headline(self, **numbers: Any) -> None:
        """Record headline numbers shown in the summary table.

        Repeated calls merge; the result is written to ``headline.json``.
        """
        self._headline.update(numbers)
        self.write_json(self._headline, HEADLINE_FILE)

    def keep_resume_dir(self, reason: str) -> None:
        """Keep ``resume_dir`` after this run completes: it wrote results for part of its work
        (``reason`` says which part is missing, e.g. cases a run budget skipped), and the
        next run with the same key continues from the work stored there. Recorded in
        meta.json as ``resume_kept``."""
        if not isinstance(reason, str) or not reason:
            raise TypeError(f"keep_resume_dir: reason must be a non-empty str, got {reason!r}")
        self._keep_resume = reason

    def provenance(self, **fields: Any) -> None:
        """Extra provenance written into ``meta.json`` next to the runner's own fields
        (e.g. the versions of packages that ran in another environment). Repeated calls
        merge; a runner field name raises ValueError when meta.json is written."""
        self._provenance.update(fields)

    # -- feedback ----------------------------------------------------------
    def progress(self, iterable: Iterable, desc: str | None = None, total: int | None = None):
        """Wrap ``iterable`` in a tqdm progress bar written to stderr."""
        label = f"{self.name}: {desc}" if desc else self.name
        return tqdm(iterable, desc=label, total=total, file=sys.stderr, leave=False)

    def log(self, msg: str) -> None:
        """Print a message to stderr without breaking progress bars."""
        tqdm.write(f"[{self.name}] {msg}", file=sys.stderr)

    @property
    def files(self) -> list[Path]:
        """Files written through this context, in order."""
        return list(self._files)


# -- provenance ----------------------------------------------------------------
def git_info(cwd: Path | None = None, exclude: Path | None = None) -> dict[str, Any]:
    """Return ``{"commit", "dirty"}`` for the repository holding this package.

    Parameters
    ----------
    cwd : Path, optional
        Folder inside the repository (default: this package's folder).
    exclude : Path, optional
        Changes under this folder (the results root) do not count as dirty,
        so results written by earlier runs do not mark the code as modified.

    Both values are ``"unknown"`` outside a git repository or without git.
    """
    cwd = cwd or Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        top = Path(git("rev-parse", "--show-toplevel").strip())
        status = git("status", "--porcelain").splitlines()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": "unknown"}

    excluded = Path(exclude).resolve() if exclude is not None else None
    changed = []
    for line in status:
        # "XY path" or "XY old -> new"; paths are relative to the top level
        path = (top / line[3:].split(" -> ")[-1].strip('"')).resolve()
        if excluded is None or not (path == excluded or excluded in path.parents):
            changed.append(path)
    return {"commit": commit, "dirty": bool(changed)}


def package_version(name: str) -> str:
    """Installed version of ``name``, ``__version__`` as fallback, else 'not installed'."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        return str(getattr(importlib.import_module(name), "__version__", "unknown"))
    except Exception:  # a broken package should not break the run record
        return "not installed"


def versions() -> dict[str, str]:
    """Versions of python and the packages the results depend on."""
    out = {"python": platform.python_version()}
    out.update({name: package_version(name) for name in _VERSIONED_PACKAGES})
    return out


def cpu_name() -> str:
    """CPU model from /proc/cpuinfo, falling back to :mod:`platform`."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def device_name(device: torch.device) -> str:
    """Human-readable name of ``device``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def resolve_device(device: str) -> torch.device:
    """Turn a ``--device`` string into a torch device, checking availability."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda requested but CUDA is not available on this machine")
    return dev


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# -- staging, locking, recovery ------------------------------------------------------
class RunRefusedError(RuntimeError):
    """The runner refuses a run that would replace results it must keep."""


def default_out_root(quick: bool) -> Path:
    """Where a run writes by default: ``results/quick`` for quick runs, else ``results``.

    The committed full results live in ``results/``; quick runs never go there unless asked,
    and even then never replace a full run's folder (see :func:`run_experiment`).
    """
    return QUICK_ROOT if quick else FULL_ROOT


def work_paths(out_root: Path, name: str) -> tuple[Path, Path, Path]:
    """(lock file, staging folder, previous-results folder) of experiment ``name``."""
    work = Path(out_root) / RUNNER_DIR
    return work / f"{name}.lock", work / f"{name}.staging", work / f"{name}.previous"


def resume_path(out_root: Path, name: str) -> Path:
    """Folder of work kept across an interrupted run of ``name`` (see RunContext.resume_dir)."""
    return Path(out_root) / RUNNER_DIR / f"{name}.resume"


def resume_key_config(cfg) -> dict:
    """The config fields that identify a run's resumable work: all but those whose dataclass
    field metadata has ``budget=True`` (how much of the work one run does, not what it
    computes), so a run with a larger budget continues a smaller one's work."""
    budget = {f.name for f in dataclasses.fields(cfg) if f.metadata.get("budget", False)}
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in budget}


def _open_resume_dir(path: Path, key: dict) -> bool:
    """Create ``path`` for a run identified by ``key``; keep its content only when the
    previous run had the same key. Returns True when earlier work is resumed."""
    key_file = path / "run_key.json"
    text = json.dumps(io.to_jsonable(key), sort_keys=True)
    old = key_file.read_text(encoding="utf-8") if key_file.is_file() else None
    if old == text:
        return True
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    io.write_text(key_file, text)
    return False


def task_store_path(out_root: Path, name: str) -> Path:
    """Folder of the finished tasks of experiment ``name`` (see :class:`experiments.tasks.TaskStore`)."""
    return Path(out_root) / RUNNER_DIR / f"{name}.tasks"


def _recover(out_dir: Path, staging: Path, previous: Path) -> None:
    """Bring ``out_dir`` back to its last complete results after a run that was killed.

    The swap of a completed run is two renames, ``out_dir -> previous`` (the commit
    point) then ``staging -> out_dir``. A run killed between them left its complete
    results in ``staging``: they are promoted. Anything else left in ``staging`` is
    the partial output of a run that did not complete, and is removed, as are the
    temporary files of writes that were killed inside ``out_dir``.
    """
    if not out_dir.exists() and (staging / META_FILE).is_file() and previous.exists():
        os.replace(staging, out_dir)
        warnings.warn(f"{out_dir}: completed the swap of a run killed while replacing the "
                      f"previous results", RuntimeWarning, stacklevel=3)
    elif not out_dir.exists() and previous.exists():
        os.replace(previous, out_dir)
    if previous.exists():
        shutil.rmtree(previous)
    if staging.exists():
        warnings.warn(f"{out_dir}: removed the partial outputs of an earlier run that did not "
                      f"complete ({staging})", RuntimeWarning, stacklevel=3)
        shutil.rmtree(staging)
    if out_dir.is_dir():
        for tmp in out_dir.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def _refuse_quick_over_full(out_dir: Path, quick: bool) -> None:
    """A quick run never replaces the results of a full run."""
    if not quick or not (out_dir / META_FILE).is_file():
        return
    try:
        old = json.loads((out_dir / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(old, dict) and old.get("quick") is False:
        raise RunRefusedError(
            f"{out_dir} holds the results of a full run (commit {str(old.get('git_commit'))[:12]}, "
            f"{old.get('start_time_utc', 'unknown date')}); a quick run never replaces them. "
            f"Write quick runs to another folder (--out; the default for --quick is {QUICK_ROOT})")


def _finish_files(ctx: "RunContext", staging: Path) -> list[str]:
    """The outputs of the run, relative to ``staging``: what it recorded and, with a
    warning, any file it wrote there without recording; every one fsynced."""
    recorded = []
    for p in ctx.files:
        rel = Path(p).resolve().relative_to(staging.resolve()).as_posix()
        if not (staging / rel).is_file():
            raise RuntimeError(f"experiment {ctx.name!r} recorded {rel!r} but did not write it")
        recorded.append(rel)
    on_disk = {p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()}
    unrecorded = sorted(on_disk - set(recorded) - {META_FILE})
    if unrecorded:
        warnings.warn(f"experiment {ctx.name!r} wrote files without recording them "
                      f"(use ctx.record): {unrecorded}; they are listed in meta.json",
                      RuntimeWarning, stacklevel=3)
    files = sorted(set(recorded) | set(unrecorded))
    for rel in files:
        with open(staging / rel, "rb") as fh:
            os.fsync(fh.fileno())
    return files


def _swap_in(staging: Path, out_dir: Path, previous: Path) -> None:
    """Replace ``out_dir`` by the completed ``staging`` folder (see :func:`_recover`)."""
    if out_dir.exists():
        os.replace(out_dir, previous)
    os.replace(staging, out_dir)
    fsync_dir(out_dir.parent)
    fsync_dir(previous.parent)
    if previous.exists():
        shutil.rmtree(previous)


# -- the runner ----------------------------------------------------------------
def run_experiment(
    name: str,
    *,
    out_root: str | Path | None = None,
    quick: bool = False,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    threads: int | None = None,
    command: str | None = None,
    executor=None,
) -> dict[str, Any]:
    """Run experiment ``name`` and replace ``out_root/name`` by its outputs once it completes.

    The run writes into a staging folder (``out_root/.runner/name.staging``); only when
    the experiment has returned and ``meta.json`` is written does the staging folder
    replace ``out_root/name`` (two renames, see :func:`_recover`). A run that raises or
    is killed leaves the previous complete results in place. An exclusive lock per
    output folder (``out_root/.runner/name.lock``) stops a second run into the same
    folder, naming the holder; the lock of a killed run is taken over with a warning.

    Parameters
    ----------
    name : str
        Registered experiment name.
    out_root : str or Path, optional
        Results root; outputs go to ``out_root/name``. Default
        :func:`default_out_root`: ``results/quick`` for quick runs, ``results`` else.
    quick : bool
        Use ``Config.quick()`` instead of ``Config()``.
    seed : int
        Seed for ``random``, numpy and torch.
    device : {'cpu', 'cuda'}
        Compute device.
    dtype : {'float32', 'float64'}
        Compute dtype.
    threads : int, optional
        If given, ``torch.set_num_threads(threads)``.
    command : str, optional
        Command line recorded in ``meta.json`` and the lock (defaults to ``sys.argv``).
    executor : SerialExecutor or experiments.executors.DaskExecutor, optional
        Runs the tasks of an experiment in the task form (default: in this process). An
        experiment without tasks always runs in this process (with a warning when a
        parallel executor was given); one that measures speed refuses a parallel executor.

    Returns
    -------
    dict
        The metadata written to ``meta.json``.

    Raises
    ------
    experiments.lock.LockHeldError
        Another run holds the lock of ``out_root/name``.
    RunRefusedError
        A quick run would replace the results of a full run, or a parallel executor was
        given for an experiment that measures speed.
    experiments.tasks.TasksFailedError
        Some tasks raised (the others are stored; the previous results stay in place).
    """
    module = registry.load(name)
    executor = executor if executor is not None else SerialExecutor()
    if executor.parallel and getattr(module, "TIMING", False):
        raise RunRefusedError(f"{name} measures speed and runs only in this process, alone: timings "
                              f"under contention from parallel workers are not comparable (run it "
                              f"without --workers/--scheduler)")
    if executor.parallel and not registry.has_tasks(module):
        warnings.warn(f"{name} has no tasks: it runs in this process, not on the workers",
                      RuntimeWarning, stacklevel=2)
        executor = SerialExecutor()
    dev = resolve_device(device)
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose from {sorted(DTYPES)}")
    if threads is not None:
        torch.set_num_threads(threads)
    command = command if command is not None else shlex.join(sys.argv)

    out_root = Path(out_root) if out_root is not None else default_out_root(quick)
    out_dir = out_root / name
    lock_path, staging, previous = work_paths(out_root, name)
    with exclusive_lock(lock_path, command, what=str(out_dir)):
        _recover(out_dir, staging, previous)
        _refuse_quick_over_full(out_dir, quick)
        staging.mkdir(parents=True)
        store = tasks.TaskStore(task_store_path(out_root, name))
        try:
            meta = _run_staged(module, name, staging, out_root, quick, seed, dev, dtype, command,
                               executor, store)
        except BaseException:
            kept = f"; finished tasks stay in {store.root}" if store.root.is_dir() else ""
            tqdm.write(f"[{name}] the run did not complete; {out_dir} is unchanged (partial "
                       f"outputs in {staging}, removed by the next run{kept})", file=sys.stderr)
            raise
        _swap_in(staging, out_dir, previous)
        if meta.get("resume_kept") is None:
            shutil.rmtree(resume_path(out_root, name), ignore_errors=True)
        if "tasks" in meta:  # keep only what the results now on disk were reduced from
            store.prune(t["digest"] for t in meta["tasks"]["per_task"])
    return meta


def _run_staged(module, name, staging, out_root, quick, seed, dev, dtype, command, executor,
                store) -> dict[str, Any]:
    """Run the experiment into ``staging`` and write its meta.json there (last)."""
    cfg = module.Config.quick() if quick else module.Config()
    git = git_info(exclude=Path(out_root))  # before the run writes anything
    resume = resume_path(out_root, name)
    resumed = _open_resume_dir(resume, {"commit": git["commit"], "dirty": git["dirty"], "seed": seed,
                                        "quick": quick, "device": str(dev), "dtype": dtype,
                                        "config": resume_key_config(cfg)})
    ctx = RunContext(name=name, out_dir=staging, quick=quick, seed=seed, device=dev, dtype=DTYPES[dtype],
                     resume_dir=resume)
    start = _dt.datetime.now(_dt.timezone.utc)
    seed_everything(seed)

    t0 = time.perf_counter()
    task_info = None
    if registry.has_tasks(module):
        results, task_info = tasks.run_tasks(module, name, cfg, ctx, store, executor)
        seed_everything(seed)
        t_reduce = time.perf_counter()
        module.reduce(cfg, results, ctx)
        task_info["reduce_wall_s"] = round(time.perf_counter() - t_reduce, 3)
    else:
        module.run(cfg, ctx)
    wall = time.perf_counter() - t0

    meta = {
        "name": name,
        "description": module.DESCRIPTION,
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "versions": versions(),
        "device": str(dev),
        "device_name": device_name(dev),
        "dtype": dtype,
        "torch_threads": torch.get_num_threads(),
        "seed": seed,
        "quick": quick,
        "wall_time_s": round(wall, 3),
        "resumed": resumed,
        "resume_kept": ctx._keep_resume,
        "start_time_utc": start.isoformat(timespec="seconds"),
        "config": dataclasses.asdict(cfg),
        "command": command,
        "executor": executor.describe(),
        "files": _finish_files(ctx, staging),
    }
    if task_info is not None:
        meta["tasks"] = {"store": task_store_path(Path("."), name).as_posix(), **task_info}
    if clash := set(ctx._provenance) & set(meta):
        raise ValueError(f"ctx.provenance: {sorted(clash)} are meta.json fields of the runner")
    meta.update(ctx._provenance)
    io.write_json(staging / META_FILE, meta)
    return meta
