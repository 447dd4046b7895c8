"""Explicit, ordered registry of experiments.

An experiment is a module ``experiments/<name>.py`` that defines

* ``DESCRIPTION: str`` -- one line shown by ``python -m experiments list``;
* ``Config`` -- a dataclass naming every hyperparameter, whose defaults are
  the full run and whose classmethod ``Config.quick()`` returns the quick
  variant;
* either ``run(cfg, ctx) -> None`` -- does the work, writing outputs through ``ctx``
  (a :class:`experiments.runner.RunContext`) --
* or the task form (:mod:`experiments.tasks`): ``tasks(cfg)`` lists independent units of
  work, ``run_task(params, tctx)`` computes one, ``reduce(cfg, results, ctx)`` writes the
  outputs from all of them; the runner stores each task's result and can run them on Dask;
* optionally ``TIMING = True`` -- the experiment measures speed, so its work must not
  share the machine with other work: a parallel executor must refuse it (:func:`timing`).

To add one, create the module and append its name to :data:`EXPERIMENTS`.
Modules are imported lazily, only when an experiment is run.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import sys
from types import ModuleType

# Registry order is the order of ``run all`` and ``list``.
EXPERIMENTS: list[str] = [
    "smoke",
    "chaining",
    "aliasing_fig2",
    "aliasing_sweep",
    "loss_surface",
    "hyperconditioning",
    "colorless_fdn",
    "colorless_ablation",
    "colorless_delay_sets",
    "colorless_dafx23",
    "colorless_fig4",
    "rir_fit",
    "speed_comparison",
    "geq_accuracy",
    "competitors",
    "active_acoustics",
    "colorless_scattering",
]

PACKAGE = "experiments"


class UnknownExperimentError(KeyError):
    """Raised for a name that is not in :data:`EXPERIMENTS`."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        known = ", ".join(EXPERIMENTS) or "(none)"
        return f"unknown experiment {self.name!r}; known experiments: {known}"


#: The functions of the task form, all required when one is defined.
TASK_FUNCTIONS = ("tasks", "run_task", "reduce")


class InvalidExperimentError(TypeError):
    """Raised when an experiment module does not follow the module contract."""


def names() -> list[str]:
    """Return the registered experiment names in registry order."""
    return list(EXPERIMENTS)


def _check_name(name: str) -> None:
    if name not in EXPERIMENTS:
        raise UnknownExperimentError(name)


def load(name: str) -> ModuleType:
    """Import and validate the experiment module ``name``.

    Raises
    ------
    UnknownExperimentError
        If ``name`` is not registered.
    InvalidExperimentError
        If the module lacks ``DESCRIPTION``, ``Config`` (a dataclass with
        ``quick()``), or defines neither or both of ``run`` and the task functions.
    """
    _check_name(name)
    module = importlib.import_module(f"{PACKAGE}.{name}")
    problems = []
    if not isinstance(getattr(module, "DESCRIPTION", None), str):
        problems.append("no DESCRIPTION: str")
    config = getattr(module, "Config", None)
    if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
        problems.append("no Config dataclass")
    elif not callable(getattr(config, "quick", None)):
        problems.append("no Config.quick()")
    task_functions = [n for n in TASK_FUNCTIONS if callable(getattr(module, n, None))]
    has_run = callable(getattr(module, "run", None))
    if has_run and task_functions:
        problems.append(f"both run(cfg, ctx) and task functions ({', '.join(task_functions)}): "
                        f"define one form")
    elif not has_run and len(task_functions) < len(TASK_FUNCTIONS):
        missing = [n for n in TASK_FUNCTIONS if n not in task_functions]
        problems.append(f"no run(cfg, ctx), nor {', '.join(TASK_FUNCTIONS)}" if not task_functions else
                        f"task function(s) {', '.join(missing)} missing (it defines {', '.join(task_functions)})")
    if problems:
        raise InvalidExperimentError(f"experiment {name!r} breaks the module contract: {'; '.join(problems)}")
    return module


def has_tasks(module: ModuleType) -> bool:
    """True for an experiment in the task form (``tasks``, ``run_task``, ``reduce``)."""
    return callable(getattr(module, "tasks", None))


def description(name: str) -> str:
    """Return the experiment's one-line description without running it.

    The ``DESCRIPTION`` literal is read from the module source when possible,
    so that listing does not import heavy dependencies.
    """
    _check_name(name)
    full = f"{PACKAGE}.{name}"
    if full not in sys.modules:
        spec = importlib.util.find_spec(full)
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            with open(spec.origin, encoding="utf-8") as fh:
                tree = ast.parse(fh.read())
            for node in tree.body:
                if isinstance(node, ast.Assign):
                    targets = node.targets
                elif isinstance(node, ast.AnnAssign):
                    targets = [node.target]
                else:
                    continue
                is_description = any(isinstance(t, ast.Name) and t.id == "DESCRIPTION" for t in targets)
                value = node.value
                if is_description and isinstance(value, ast.Constant) and isinstance(value.value, str):
                    return value.value
    return load(name).DESCRIPTION


def timing(name: str) -> bool:
    """True when experiment ``name`` measures speed (``TIMING = True``): its timings are
    only comparable when nothing else runs, so it must never run under a parallel executor."""
    return bool(getattr(load(name), "TIMING", False))
