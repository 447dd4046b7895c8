"""Loss profiles (1-D) and surfaces (2-D) over named parameters of a system.

A sweep replaces one element (or all) of one or two raw parameters, addressed by their dotted
path in the system (``"loop.forward_path.raw[2]"``), by values given in physical units and
converted with ``to_raw``. The system is evaluated for many sweep points at once with
``torch.func.functional_call`` and parameters carrying a leading batch dim (see
:mod:`flamo.optim.hyper`), ``batch_size`` points per call, then the loss is computed per point.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .hyper import batched_call

__all__ = ["Axis", "SweepResult", "sweep", "local_minima"]

_PATH = re.compile(r"^([\w.]+?)(?:\[([\d,\s]+)\])?$")


@dataclass
class Axis:
    """One swept parameter.

    Attributes
    ----------
    path : str
        Dotted name of a raw parameter or buffer, optionally with an element index:
        ``"delays.raw[0]"``, ``"eq.raw[1, 0]"``. Without an index every element is set to
        the value.
    values : array_like
        (n,) sweep values in physical units.
    to_raw : callable, optional
        Physical values (tensor) -> raw values; default identity.
    label : str, optional
        Axis label with units for plots; default the path.
    """

    path: str
    values: np.ndarray
    to_raw: Callable | None = None
    label: str | None = None

    def __post_init__(self):
        m = _PATH.match(self.path.replace(" ", ""))
        if m is None:
            raise ValueError(f"Axis: path must look like 'name.raw' or 'name.raw[i, j]', got {self.path!r}")
        self.name = m.group(1)
        self.index = tuple(int(i) for i in m.group(2).split(",")) if m.group(2) else None
        self.values = np.asarray(self.values, dtype=float)
        if self.values.ndim != 1 or len(self.values) < 1:
            raise ValueError(f"Axis {self.path!r}: values must be a non-empty 1-D array, got "
                             f"shape {self.values.shape}")
        self.label = self.label or self.path


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

    def argmin(self):
        """Physical values at the global minimum, one per axis."""
        idx = np.unravel_index(np.nanargmin(self.loss), self.loss.shape)
        return tuple(a.values[i] for a, i in zip(self.axes, idx))

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


def local_minima(profile: np.ndarray) -> np.ndarray:
    """Indices of strict interior local minima of a 1-D profile (plateaus not counted)."""
    p = np.asarray(profile, dtype=float)
    return np.nonzero((p[1:-1] < p[:-2]) & (p[1:-1] < p[2:]))[0] + 1


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
    tensors = dict(system.named_parameters())
    tensors.update(dict(system.named_buffers()))
    for a in axes:
        if a.name not in tensors:
            raise ValueError(f"sweep: no parameter {a.name!r} in the system; known: {sorted(tensors)}")
    points = list(itertools.product(*[range(len(a.values)) for a in axes]))
    losses = np.empty(len(points))
    with torch.no_grad():
        for start in range(0, len(points), batch_size):
            chunk = points[start:start + batch_size]
            params = {}
            for j, a in enumerate(axes):
                base = params.get(a.name, tensors[a.name].detach().expand(len(chunk), *tensors[a.name].shape))
                base = base.clone()
                phys = torch.as_tensor([a.values[p[j]] for p in chunk], dtype=base.dtype)
                raw = a.to_raw(phys) if a.to_raw is not None else phys
                raw = torch.as_tensor(raw, dtype=base.dtype, device=base.device)
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
