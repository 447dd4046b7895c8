"""Run one experiment: seeding, the run context, outputs and provenance.

The runner creates ``<out_root>/<name>/``, seeds the random number
generators, calls ``module.run(cfg, ctx)`` and, once it returns, writes
``meta.json`` (provenance) next to the experiment's own outputs.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import importlib.metadata
import json
import platform
import random
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from tqdm import tqdm

from experiments import io, registry

META_FILE = "meta.json"
HEADLINE_FILE = "headline.json"

DTYPES = {"float32": torch.float32, "float64": torch.float64}

_VERSIONED_PACKAGES = ("torch", "numpy", "scipy", "pandas", "matplotlib", "flamo")


@dataclass
class RunContext:
    """Everything an experiment needs from the runner.

    Attributes
    ----------
    name : str
        Experiment name.
    out_dir : Path
        Output folder of this experiment (``<out_root>/<name>``); exists.
    quick : bool
        True for the quick variant (``Config.quick()``).
    seed : int
        Seed the runner used for ``random``, numpy and torch.
    device : torch.device
        Device to compute on.
    dtype : torch.dtype
        Floating point dtype to compute in.
    """

    name: str
    out_dir: Path
    quick: bool = False
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    _files: list[Path] = field(default_factory=list, repr=False)
    _headline: dict[str, Any] = field(default_factory=dict, repr=False)

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


def _clean_previous(out_dir: Path) -> None:
    """Delete the outputs a previous run recorded, so no stale result survives.

    Only files listed in the old ``meta.json`` (and the meta/headline files
    themselves) are removed; anything else in the folder is left alone.
    """
    meta_path = out_dir / META_FILE
    if meta_path.exists():
        try:
            old = json.loads(meta_path.read_text(encoding="utf-8")).get("files", [])
        except (OSError, ValueError, AttributeError):
            old = []
        for rel in old:
            target = (out_dir / rel).resolve()
            if target.parent == out_dir.resolve() or out_dir.resolve() in target.parents:
                target.unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)
    (out_dir / HEADLINE_FILE).unlink(missing_ok=True)


# -- the runner ----------------------------------------------------------------
def run_experiment(
    name: str,
    *,
    out_root: str | Path = "results",
    quick: bool = False,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    threads: int | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Run experiment ``name`` and write its ``meta.json``.

    Parameters
    ----------
    name : str
        Registered experiment name.
    out_root : str or Path
        Results root; outputs go to ``out_root/name``.
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
        Command line recorded in ``meta.json`` (defaults to ``sys.argv``).

    Returns
    -------
    dict
        The metadata written to ``meta.json``.
    """
    module = registry.load(name)
    dev = resolve_device(device)
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose from {sorted(DTYPES)}")
    if threads is not None:
        torch.set_num_threads(threads)

    out_dir = Path(out_root) / name
    out_dir.mkdir(parents=True, exist_ok=True)
    _clean_previous(out_dir)

    cfg = module.Config.quick() if quick else module.Config()
    ctx = RunContext(name=name, out_dir=out_dir, quick=quick, seed=seed, device=dev, dtype=DTYPES[dtype])
    git = git_info(exclude=Path(out_root))  # before the run writes anything
    start = _dt.datetime.now(_dt.timezone.utc)
    seed_everything(seed)

    t0 = time.perf_counter()
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
        "start_time_utc": start.isoformat(timespec="seconds"),
        "config": dataclasses.asdict(cfg),
        "command": command if command is not None else shlex.join(sys.argv),
        "files": sorted(p.relative_to(out_dir).as_posix() for p in ctx.files),
    }
    io.write_json(out_dir / META_FILE, meta)
    return meta
