"""Loss profiles (1-D) and surfaces (2-D) over named parameters of a system, and perturbation
runs with their accuracy statistic.

A sweep replaces one element (or all) of one or two raw parameters, addressed by their dotted
path in the system (``"loop.forward_path.raw[2]"``), by values given in physical units and
converted to raw values through a mapping's ``inverse`` (the module's own mapping, e.g.
``biquad.freq_mapping``). The system is evaluated for many sweep points at once with
``torch.func.functional_call`` and parameters carrying a leading batch dim (see
:mod:`flamo.optim.hyper`), ``batch_size`` points per call, then the loss is computed per point.

Perturbation runs (:func:`perturbation_runs`) repeat a sweep ``n_runs`` times, each time with
a second parameter of the model set to a value drawn at random (seeded): a loss whose minimum
stays on the target value whatever the other parameters do is a loss that gradient descent on
the swept parameter can trust. The accuracy statistic (:attr:`RunsResult.accuracy`) is the
fraction of runs whose arg-min lies within ``tolerance`` grid steps of the target value on
every axis. A :class:`SurfaceConfig` (axes, target, perturbation, runs, seed, tolerance) is
saved and loaded as JSON; mappings are stored by their registered name and numeric
parameters (:func:`flamo.functional.mappings.mapping_config`), so loading a configuration never runs
code from the file.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..atomic import atomic_write
from ..functional.mappings import mapping_config, mapping_from_config
from ..modules import config_fields as cf
from ..presets import read_json
from .hyper import batched_call

__all__ = ["Axis", "Perturbation", "SurfaceConfig", "SweepResult", "RunsResult", "sweep",
           "perturbation_runs", "local_minima", "CONFIG_FORMAT"]

#: Format tag of a saved :class:`SurfaceConfig`.
CONFIG_FORMAT = "flamo-surface/1"

_PATH = re.compile(r"^([\w.]+?)(?:\[([\d,\s]+)\])?$")


def _parse_path(path, owner):
    """(parameter name, element index or None) of a dotted path ``"name.raw[i, j]"``."""
    m = _PATH.match(path.replace(" ", "")) if isinstance(path, str) else None
    if m is None:
        raise ValueError(f"{owner}: path must look like 'name.raw' or 'name.raw[i, j]', got {path!r}")
    index = tuple(int(i) for i in m.group(2).split(",")) if m.group(2) else None
    return m.group(1), index


def _check_mapping(mapping, owner):
    if mapping is not None and not callable(getattr(mapping, "inverse", None)):
        raise TypeError(f"{owner}: mapping must have an inverse(values) method (a module's own "
                        f"mapping, e.g. flamo.functional.Interval) or be None, got {mapping!r}")


def _to_raw(mapping, values, dtype, device):
    """Raw parameter values for physical ``values`` (1-D) through ``mapping.inverse``."""
    phys = torch.as_tensor(np.asarray(values, dtype=float), dtype=dtype)
    raw = phys if mapping is None else mapping.inverse(phys)
    return torch.as_tensor(raw, dtype=dtype, device=device)


@dataclass
class Axis:
    """One swept parameter.

    Attributes
    ----------
    path : str
        Dotted name of a raw parameter or buffer, optionally with an element index:
        ``"delay.raw[0]"``, ``"eq.raw[1, 0]"``. Without an index every element is set to
        the value.
    values : array_like
        (n,) finite sweep values in physical units.
    mapping : object with ``inverse``, optional
        The mapping of the parameter (raw -> physical), e.g. ``module.freq_mapping``; the
        raw values are ``mapping.inverse(values)``. None: the values are raw values.
    label : str, optional
        Axis label with units for plots; default the path.
    """

    path: str
    values: np.ndarray
    mapping: object = None
    label: str | None = None

    def __post_init__(self):
        self.name, self.index = _parse_path(self.path, "Axis")
        self.values = np.asarray(self.values, dtype=float)
        if self.values.ndim != 1 or len(self.values) < 1 or not np.isfinite(self.values).all():
            raise ValueError(f"Axis {self.path!r}: values must be a non-empty 1-D array of finite "
                             f"numbers, got shape {self.values.shape}")
        _check_mapping(self.mapping, f"Axis {self.path!r}")
        self.label = self.label or self.path

    def to_config(self) -> dict:
        """JSON-able description (the mapping by name, see :func:`flamo.functional.mappings.mapping_config`)."""
        return {"path": self.path, "values": self.values.tolist(),
                "mapping": mapping_config(self.mapping), "label": self.label}

    @classmethod
    def from_config(cls, cfg, where: str = "axis") -> "Axis":
        """Inverse of :meth:`to_config`; every field checked, errors name ``where.field``."""
        f = _fields(cfg, where, required=("path", "values"), optional=("mapping", "label"))
        values = _number_list(f["values"], f"{where}.values")
        return cls(_string(f["path"], f"{where}.path"), values,
                   _mapping(f.get("mapping"), f"{where}.mapping"),
                   _string(f.get("label"), f"{where}.label", nullable=True))


@dataclass
class Perturbation:
    """A second parameter set, in each perturbation run, to a value drawn at random.

    Attributes
    ----------
    path : str
        Dotted parameter path as for :class:`Axis` (another parameter than the swept ones).
    low, high : float
        The value is drawn uniformly from [low, high] in physical units (log-uniformly with
        ``log=True``, which needs low > 0).
    mapping : object with ``inverse``, optional
        The parameter's mapping, as for :class:`Axis`.
    log : bool
        Draw uniformly in log(value) (frequencies, gains as ratios).
    """

    path: str
    low: float
    high: float
    mapping: object = None
    log: bool = False

    def __post_init__(self):
        self.name, self.index = _parse_path(self.path, "Perturbation")
        for key in ("low", "high"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not math.isfinite(v):
                raise ValueError(f"Perturbation {self.path!r}: {key} must be a finite number, got {v!r}")
            setattr(self, key, float(v))
        if not self.low < self.high:
            raise ValueError(f"Perturbation {self.path!r}: need low < high, got low={self.low}, "
                             f"high={self.high}")
        if not isinstance(self.log, bool):
            raise TypeError(f"Perturbation {self.path!r}: log must be True or False, got {self.log!r}")
        if self.log and self.low <= 0:
            raise ValueError(f"Perturbation {self.path!r}: log=True needs low > 0, got low={self.low}")
        _check_mapping(self.mapping, f"Perturbation {self.path!r}")

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n,) values drawn from ``rng``, in [low, high]."""
        if self.log:
            return np.exp(rng.uniform(math.log(self.low), math.log(self.high), n))
        return rng.uniform(self.low, self.high, n)

    def to_config(self) -> dict:
        return {"path": self.path, "low": self.low, "high": self.high,
                "mapping": mapping_config(self.mapping), "log": self.log}

    @classmethod
    def from_config(cls, cfg, where: str = "perturbation") -> "Perturbation":
        f = _fields(cfg, where, required=("path", "low", "high"), optional=("mapping", "log"))
        return cls(_string(f["path"], f"{where}.path"), cf.Number().convert(f["low"], f"{where}.low", None),
                   cf.Number().convert(f["high"], f"{where}.high", None),
                   _mapping(f.get("mapping"), f"{where}.mapping"),
                   cf.Bool().convert(f.get("log", False), f"{where}.log", None))


@dataclass
class SurfaceConfig:
    """What a loss profile or surface and its perturbation runs are: everything but the
    system, its output, the loss and the target signal (code and data, given at run time).

    Attributes
    ----------
    axes : list of Axis
        One or two swept parameters.
    target : sequence of float, optional
        The physical value per axis at which the minimum should lie (the value the target was
        made with); needed for :attr:`RunsResult.accuracy`. It must lie within each axis'
        range; the grid point nearest to it is the target point.
    perturbation : Perturbation, optional
        The parameter drawn at random in each run; None: one run of the unperturbed system.
    n_runs : int
        Number of runs (>= 1; 1 without a perturbation, whose runs would all be equal).
    seed : int
        Seed of the perturbation draws (``numpy.random.default_rng(seed)``).
    tolerance : int
        A run counts as accurate if its arg-min lies within this many grid steps of the
        target point on every axis (0: exactly on it).
    batch_size : int
        Sweep points per batched evaluation.
    name : str
        Name of the loss (column and plot label).
    """

    axes: list
    target: tuple | None = None
    perturbation: Perturbation | None = None
    n_runs: int = 1
    seed: int = 0
    tolerance: int = 0
    batch_size: int = 64
    name: str = "loss"

    def __post_init__(self):
        self.axes = [self.axes] if isinstance(self.axes, Axis) else list(self.axes)
        if not 1 <= len(self.axes) <= 2 or not all(isinstance(a, Axis) for a in self.axes):
            raise ValueError(f"SurfaceConfig: axes must be one or two Axis objects, got {self.axes!r:.200}")
        for key, low in (("n_runs", 1), ("seed", 0), ("tolerance", 0), ("batch_size", 1)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"SurfaceConfig: {key} must be an int >= {low}, got {v!r}")
            setattr(self, key, int(v))
        if self.perturbation is None and self.n_runs > 1:
            raise ValueError(f"SurfaceConfig: n_runs = {self.n_runs} without a perturbation would "
                             f"repeat the same sweep; give a Perturbation or n_runs = 1")
        if self.perturbation is not None:
            if not isinstance(self.perturbation, Perturbation):
                raise TypeError(f"SurfaceConfig: perturbation must be a Perturbation or None, got "
                                f"{type(self.perturbation).__name__}")
            swept = {(a.name, a.index) for a in self.axes}
            p = self.perturbation
            if (p.name, p.index) in swept or any(n == p.name and (i is None or p.index is None)
                                                 for n, i in swept):
                raise ValueError(f"SurfaceConfig: the perturbation {p.path!r} overlaps a swept axis")
        if self.target is not None:
            target = np.asarray(self.target, dtype=float).reshape(-1)
            if len(target) != len(self.axes) or not np.isfinite(target).all():
                raise ValueError(f"SurfaceConfig: target must hold one finite value per axis "
                                 f"({len(self.axes)}), got {self.target!r}")
            for a, t in zip(self.axes, target):
                if not a.values.min() <= t <= a.values.max():
                    raise ValueError(f"SurfaceConfig: target {t:g} lies outside axis {a.path!r} "
                                     f"[{a.values.min():g}, {a.values.max():g}]")
            self.target = tuple(float(t) for t in target)
        if not isinstance(self.name, str):
            raise TypeError(f"SurfaceConfig: name must be a string, got {self.name!r}")

    def target_index(self) -> tuple:
        """Index of the grid point nearest to ``target`` on each axis."""
        if self.target is None:
            raise ValueError("SurfaceConfig: no target given, so there is no target point")
        return tuple(int(np.argmin(np.abs(a.values - t))) for a, t in zip(self.axes, self.target))

    def perturbation_values(self) -> np.ndarray:
        """(n_runs,) values of the perturbed parameter, one per run (empty without one)."""
        if self.perturbation is None:
            return np.empty(0)
        return self.perturbation.draw(np.random.default_rng(self.seed), self.n_runs)

    def to_config(self) -> dict:
        """JSON-able form (what :meth:`save` writes under ``"surface"``)."""
        return {"axes": [a.to_config() for a in self.axes],
                "target": None if self.target is None else list(self.target),
                "perturbation": None if self.perturbation is None else self.perturbation.to_config(),
                "n_runs": self.n_runs, "seed": self.seed, "tolerance": self.tolerance,
                "batch_size": self.batch_size, "name": self.name}

    @classmethod
    def from_config(cls, cfg, where: str = "surface") -> "SurfaceConfig":
        """Inverse of :meth:`to_config`: every field is checked before anything is built;
        errors (TypeError or ValueError) name the field's path."""
        f = _fields(cfg, where, required=("axes",),
                    optional=("target", "perturbation", "n_runs", "seed", "tolerance",
                              "batch_size", "name"))
        if not isinstance(f["axes"], list):
            raise TypeError(f"{where}.axes: must be a list of one or two axes, got {_short(f['axes'])}")
        if not 1 <= len(f["axes"]) <= 2:
            raise ValueError(f"{where}.axes: must hold one or two axes, got {len(f['axes'])}")
        axes = [Axis.from_config(a, f"{where}.axes[{i}]") for i, a in enumerate(f["axes"])]
        target = f.get("target")
        if target is not None:
            target = _number_list(target, f"{where}.target")
        pert = f.get("perturbation")
        pert = None if pert is None else Perturbation.from_config(pert, f"{where}.perturbation")
        ints = {k: cf.Int(low=low).convert(f[k], f"{where}.{k}", None)
                for k, low in (("n_runs", 1), ("seed", 0), ("tolerance", 0), ("batch_size", 1)) if k in f}
        name = _string(f.get("name", "loss"), f"{where}.name")
        try:
            return cls(axes, target, pert, name=name, **ints)
        except (TypeError, ValueError) as err:
            raise cf.with_context(err, where) from err

    def save(self, path) -> Path:
        """Write ``{"format": CONFIG_FORMAT, "surface": ...}`` as JSON atomically (temporary
        file, fsync, rename); ValueError for a mapping that has no JSON form."""
        text = json.dumps({"format": CONFIG_FORMAT, "surface": self.to_config()}, indent=1,
                          allow_nan=False)
        return atomic_write(path, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))

    @classmethod
    def load(cls, path) -> "SurfaceConfig":
        """Read a configuration written by :meth:`save`; ValueError or TypeError naming the
        file and the field for anything malformed (not JSON, duplicate keys, non-finite
        numbers, wrong format tag, unknown or missing keys, wrong types or ranges)."""
        data = read_json(path, "SurfaceConfig.load")
        if not isinstance(data, dict) or data.get("format") != CONFIG_FORMAT:
            raise ValueError(f"SurfaceConfig.load: {path} is not a surface configuration "
                             f"(expected format {CONFIG_FORMAT!r})")
        if set(data) != {"format", "surface"}:
            raise ValueError(f"SurfaceConfig.load: {path}: holds exactly the keys 'format' and "
                             f"'surface', got {sorted(data)}")
        try:
            return cls.from_config(data["surface"])
        except (TypeError, ValueError) as err:
            raise cf.with_context(err, f"SurfaceConfig.load: {path}") from err


# -- field checks of the JSON form -------------------------------------------------------------

def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fields(cfg, where, required, optional) -> dict:
    if not isinstance(cfg, dict):
        raise TypeError(f"{where}: must be an object, got {_short(cfg)}")
    missing = [k for k in required if k not in cfg]
    unknown = sorted(set(cfg) - set(required) - set(optional))
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(required + optional)}")
    return cfg


def _string(value, where, nullable=False):
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value:
        raise TypeError(f"{where}: must be a non-empty string, got {_short(value)}")
    return value


def _number_list(value, where) -> list:
    if not isinstance(value, list) or not value:
        raise TypeError(f"{where}: must be a non-empty list of numbers, got {_short(value)}")
    return [cf.Number().convert(v, f"{where}[{i}]", None) for i, v in enumerate(value)]


def _mapping(value, where):
    return cf.Mapping().convert(value, where, None)


# -- results -----------------------------------------------------------------------------------

@dataclass
class SweepResult:
    """Loss values on the sweep grid.

    Attributes
    ----------
    axes : list of Axis
    loss : np.ndarray
        (n1,) or (n1, n2) loss values (axis 0 follows ``axes[0]``).
    name : str
        Loss name for labels.
    """

    axes: list
    loss: np.ndarray
    name: str = "loss"
    extra: dict = field(default_factory=dict)

    def to_frame(self):
        """Tidy pandas DataFrame: one row per sweep point, a column per axis and the loss."""
        import pandas as pd

        grids = np.meshgrid(*[a.values for a in self.axes], indexing="ij")
        data = {a.path: g.ravel() for a, g in zip(self.axes, grids)}
        data[self.name] = self.loss.ravel()
        return pd.DataFrame(data)

    def argmin_index(self) -> tuple:
        """Grid index of the global minimum, one per axis (NaN values ignored)."""
        if np.isnan(self.loss).all():
            raise ValueError(f"SweepResult {self.name!r}: every loss value is NaN, no minimum")
        return tuple(int(i) for i in np.unravel_index(np.nanargmin(self.loss), self.loss.shape))

    def argmin(self):
        """Physical values at the global minimum, one per axis."""
        return tuple(a.values[i] for a, i in zip(self.axes, self.argmin_index()))

    def plot(self, ax=None, log_x=False, log_y=False, db=False, **kwargs):
        """1-D: a profile line; 2-D: a filled contour surface with a colour bar."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        z = 10 * np.log10(np.maximum(self.loss, 1e-30)) if db else self.loss
        zlabel = f"{self.name} [dB]" if db else self.name
        if len(self.axes) == 1:
            ax.plot(self.axes[0].values, z, **kwargs)
            ax.set_xlabel(self.axes[0].label)
            ax.set_ylabel(zlabel)
        else:
            x, y = self.axes[0].values, self.axes[1].values
            cs = ax.contourf(x, y, z.T, levels=30, **kwargs)
            ax.figure.colorbar(cs, ax=ax, label=zlabel)
            ax.set_xlabel(self.axes[0].label)
            ax.set_ylabel(self.axes[1].label)
            if log_y:
                ax.set_yscale("log")
        if log_x:
            ax.set_xscale("log")
        return ax


@dataclass
class RunsResult:
    """The sweeps of :func:`perturbation_runs`.

    Attributes
    ----------
    config : SurfaceConfig
    perturbation_values : np.ndarray
        (n_runs,) value of the perturbed parameter in each run (empty without a perturbation).
    runs : list of SweepResult
        One sweep per run.
    """

    config: SurfaceConfig
    perturbation_values: np.ndarray
    runs: list

    def argmin_index(self) -> np.ndarray:
        """(n_runs, n_axes) grid index of each run's minimum."""
        return np.array([r.argmin_index() for r in self.runs], dtype=int).reshape(len(self.runs), -1)

    def hits(self) -> np.ndarray:
        """(n_runs,) bool: the run's arg-min lies within ``config.tolerance`` grid steps of the
        target point (:meth:`SurfaceConfig.target_index`) on every axis."""
        offset = np.abs(self.argmin_index() - np.asarray(self.config.target_index()))
        return (offset <= self.config.tolerance).all(axis=1)

    @property
    def accuracy(self) -> float:
        """Fraction of runs whose arg-min falls on the target (see :meth:`hits`), in [0, 1]."""
        return float(self.hits().mean())

    def to_frame(self):
        """One row per run: the perturbation value, the arg-min (physical value and index per
        axis), its offset from the target point in grid steps and whether it is a hit."""
        import pandas as pd

        idx = self.argmin_index()
        rows = []
        target = self.config.target_index() if self.config.target is not None else None
        hits = self.hits() if target is not None else None
        for r, res in enumerate(self.runs):
            row = {"run": r}
            if self.config.perturbation is not None:
                row[self.config.perturbation.path] = self.perturbation_values[r]
            for j, a in enumerate(self.config.axes):
                row[f"argmin {a.path}"] = a.values[idx[r, j]]
                if target is not None:
                    row[f"offset {a.path} [steps]"] = int(idx[r, j] - target[j])
            if target is not None:
                row["hit"] = bool(hits[r])
            rows.append(row)
        return pd.DataFrame(rows)


def local_minima(profile: np.ndarray) -> np.ndarray:
    """Indices of strict interior local minima of a 1-D profile (plateaus not counted)."""
    p = np.asarray(profile, dtype=float)
    return np.nonzero((p[1:-1] < p[:-2]) & (p[1:-1] < p[2:]))[0] + 1


# -- evaluation --------------------------------------------------------------------------------

def _tensors(system):
    tensors = dict(system.named_parameters())
    tensors.update(dict(system.named_buffers()))
    return tensors


def _check_known(path_owner, name, tensors, owner):
    if name not in tensors:
        raise ValueError(f"{owner}: no parameter {name!r} (from {path_owner!r}) in the system; "
                         f"known: {sorted(tensors)}")


def sweep(system: torch.nn.Module, output: Callable, loss_fn: Callable, target, axes,
          batch_size: int = 64, name: str = "loss", batched_loss: bool = False) -> SweepResult:
    """Evaluate ``loss_fn(output(system'), target)`` for every sweep point system'.

    Parameters
    ----------
    system : nn.Module
        The system; it is not modified.
    output : callable
        ``output(system) -> tensor`` with the batch dim leading when parameters are batched,
        e.g. ``lambda s: s.response(grid)`` or ``lambda s: s.impulse_response(grid)[..., 0, 0]``.
    loss_fn : callable
        ``loss_fn(pred, target) -> scalar`` for one sweep point (pred without batch dim).
    target : torch.Tensor
    axes : Axis or list of one or two Axis
    batch_size : int
        Sweep points per batched evaluation (bounded by memory: one point costs about one
        system response).
    name : str
        Name of the loss (column and plot label).
    batched_loss : bool
        ``loss_fn(pred_batch, target)`` takes the whole (B, ...) batch and returns (B,)
        losses (one call per batch instead of one per point).

    Returns
    -------
    SweepResult
    """
    axes = [axes] if isinstance(axes, Axis) else list(axes)
    if not 1 <= len(axes) <= 2:
        raise ValueError(f"sweep: need one or two axes, got {len(axes)}")
    tensors = _tensors(system)
    for a in axes:
        _check_known(a.path, a.name, tensors, "sweep")
    points = list(itertools.product(*[range(len(a.values)) for a in axes]))
    losses = np.empty(len(points))
    with torch.no_grad():
        for start in range(0, len(points), batch_size):
            chunk = points[start:start + batch_size]
            params = {}
            for j, a in enumerate(axes):
                base = params.get(a.name, tensors[a.name].detach().expand(len(chunk), *tensors[a.name].shape))
                base = base.clone()
                raw = _to_raw(a.mapping, [a.values[p[j]] for p in chunk], base.dtype, base.device)
                if a.index is None:
                    base[:] = raw.reshape(-1, *[1] * (base.ndim - 1))
                else:
                    base[(slice(None), *a.index)] = raw
                params[a.name] = base
            out = batched_call(system, params, output)
            if batched_loss:
                values = torch.as_tensor(loss_fn(out, target)).reshape(-1)
                if values.numel() != len(chunk):
                    raise ValueError(f"sweep: batched loss_fn returned {values.numel()} values "
                                     f"for a batch of {len(chunk)}")
                losses[start:start + len(chunk)] = values.cpu().numpy()
            else:
                for b in range(len(chunk)):
                    losses[start + b] = float(loss_fn(out[b], target))
    shape = tuple(len(a.values) for a in axes)
    return SweepResult(axes, losses.reshape(shape), name)


def perturbation_runs(system: torch.nn.Module, output: Callable, loss_fn: Callable, target,
                      config: SurfaceConfig, batched_loss: bool = False) -> RunsResult:
    """The sweep of ``config.axes`` repeated ``config.n_runs`` times, each run on a copy of
    ``system`` whose ``config.perturbation`` parameter is set to a value drawn at random.

    The draws are ``config.perturbation_values()`` (seeded by ``config.seed``); ``target`` is
    the same in every run (typically the output of the unperturbed system at the target
    values). ``output``, ``loss_fn`` and ``batched_loss`` are those of :func:`sweep`.

    Returns
    -------
    RunsResult
        The runs; ``accuracy`` is the fraction whose arg-min falls on the target point
        within ``config.tolerance`` grid steps.

    Warns
    -----
    UserWarning
        If a run has non-finite loss values (they are ignored by the arg-min).
    """
    if not isinstance(config, SurfaceConfig):
        raise TypeError(f"perturbation_runs: config must be a SurfaceConfig, got {type(config).__name__}")
    tensors = _tensors(system)
    for a in config.axes:
        _check_known(a.path, a.name, tensors, "perturbation_runs")
    p = config.perturbation
    values = config.perturbation_values()
    if p is not None:
        _check_known(p.path, p.name, tensors, "perturbation_runs")
    runs = []
    for r in range(config.n_runs):
        model = system
        if p is not None:
            model = copy.deepcopy(system)
            param = _tensors(model)[p.name]
            with torch.no_grad():
                raw = _to_raw(p.mapping, [values[r]], param.dtype, param.device)[0]
                if p.index is None:
                    param.fill_(raw)
                else:
                    param[p.index] = raw
        res = sweep(model, output, loss_fn, target, config.axes, batch_size=config.batch_size,
                    name=config.name, batched_loss=batched_loss)
        bad = int((~np.isfinite(res.loss)).sum())
        if bad:
            warnings.warn(f"perturbation_runs: run {r} has {bad} non-finite loss values "
                          f"(ignored by the arg-min)", stacklevel=2)
        runs.append(res)
    return RunsResult(config, values, runs)
