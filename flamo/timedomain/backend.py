"""The time backend of ``response``: h[n] gamma^n, n < nfft, by the recursion, then its FFT.

``module.response(grid, method="time")`` renders the system's impulse response on the
grid's nfft samples with :func:`flamo.render` (exact, differentiable) and returns the DFT of
h[n] gamma^n. Frequency sampling returns the DFT of the aliased h_M[n] gamma^n =
sum_k gamma^(n + k nfft) h[n + k nfft], so the two differ by the alias terms k >= 1 only,
which the grid's ``alias_decay_db`` bounds (:mod:`flamo.aliasing`).

``method="auto"`` picks the cheaper one from :func:`estimated_seconds`, a cost model of
both methods (a gradient step: response, then backward) calibrated on this project's
measurements (docs/design.md, "Time domain", has the model and its calibration data).
"""

from __future__ import annotations

import torch

from . import realization as r
from .render import realize_system, render

__all__ = ["METHODS", "TIME_COSTS", "FREQUENCY_COSTS", "time_response",
           "impulse_response_by_recursion", "time_features", "frequency_features",
           "estimated_seconds", "choose_method"]

METHODS = ("frequency", "time", "auto")

#: Seconds per unit of each feature of a gradient step (response, loss, backward) on the
#: CPU with one torch thread, fitted by ``python scripts/calibrate_time_backend.py``
#: (docs/design.md, "Time domain", has the fit and its data).
TIME_COSTS = {"calls": 2.5e-4, "filter_calls": 2.01e-5, "sample_ops": 4.52e-10,
              "section_samples": 6.97e-8}
FREQUENCY_COSTS = {"nodes": 1.25e-3, "point_ops": 2.22e-9, "solve_ops": 2.31e-9,
                   "solve_points": 1.75e-6}


def _require_grid(points, what):
    from ..grid import Grid

    if not isinstance(points, Grid):
        raise ValueError(f"{what}: method='time' computes the impulse response on an FFT grid, "
                         f"so it needs a flamo.Grid; got {type(points).__name__} (explicit "
                         f"points are evaluated with method='frequency')")


def impulse_response_by_recursion(system, grid) -> torch.Tensor:
    """The first nfft samples of the exact impulse response, (nfft, out, in), by
    :func:`flamo.render` at the grid's fs, in its dtype and on its device (no aliasing)."""
    _require_grid(grid, "impulse_response")
    n_in = system.shape[1]
    x = torch.zeros(n_in, grid.nfft, n_in, dtype=grid.dtype, device=grid.device)
    idx = torch.arange(n_in, device=grid.device)
    x[idx, 0, idx] = 1
    y = render(system, x, fs=grid.fs)  # (in, nfft, out): the response to each input
    return y.permute(1, 2, 0)


def time_response(system, grid) -> torch.Tensor:
    """(M, out, in) complex: the DFT of h[n] gamma^n, n < nfft (see the module docstring)."""
    from .. import signal

    _require_grid(grid, "response")
    return signal.rfft(impulse_response_by_recursion(system, grid), grid, dim=-3)


def time_features(root, T: int) -> dict:
    """What a gradient step of the time method costs, counted on a realization for T
    samples: processor calls (one chunk through one node; a loop cuts the signal into
    chunks of its block length), scipy filter calls, per-sample multiply-adds (matrices,
    taps, delay copies) and second-order-section samples."""
    f = dict.fromkeys(TIME_COSTS, 0.0)

    def walk(node, chunks):
        if isinstance(node, r.Loop):
            chunks = max(chunks, T / max(node.block_length(), 1))
        if node.parts:
            for p in node.parts:
                walk(p, chunks)
            return
        out, inp = node.shape
        f["calls"] += chunks
        if isinstance(node, r.SOSBank):
            k = node.params[0].shape[0] * node.params[0].shape[1]
            f["filter_calls"] += chunks * k
            f["section_samples"] += T * k
        elif isinstance(node, (r.FIRBank, r.RationalBank)):
            n = out * inp if isinstance(node, r.FIRBank) and not node.diagonal else out
            f["filter_calls"] += chunks * n
            f["sample_ops"] += T * n * node.params[0].shape[-1]
        elif isinstance(node, (r.MatrixGain, r.DelayGains)):
            f["sample_ops"] += T * out * inp
        else:
            f["sample_ops"] += T * out

    walk(root, 1.0)
    return f


def frequency_features(root, M: int) -> dict:
    """What a gradient step of frequency sampling costs, counted on the same realization at
    M points: nodes (a fixed overhead each), complex multiply-adds per point (products,
    delay phases, section evaluations), the dense loop solves (n^3 / 3 per point) and the
    solved points (M per loop: a batched solve costs per matrix, whatever its size, which
    dominates small loops on long grids)."""
    f = dict.fromkeys(FREQUENCY_COSTS, 0.0)

    def walk(node):
        f["nodes"] += 1
        if isinstance(node, r.Loop):
            n = node.shape[1]
            f["solve_ops"] += M * (n ** 3 / 3 + 2 * n * n)
            f["solve_points"] += M
        if node.parts:
            for p in node.parts:
                walk(p)
            return
        out, inp = node.shape
        if isinstance(node, r.SOSBank):
            f["point_ops"] += M * 12 * node.params[0].shape[0] * node.params[0].shape[1]
        elif isinstance(node, (r.FIRBank, r.RationalBank)):
            n = out * inp if isinstance(node, r.FIRBank) and not node.diagonal else out
            f["point_ops"] += M * n * node.params[0].shape[-1]
        elif isinstance(node, (r.MatrixGain, r.DelayGains)):
            f["point_ops"] += M * out * inp
        else:
            f["point_ops"] += M * out

    walk(root)
    return f


def estimated_seconds(system, grid) -> dict:
    """Estimated seconds of one gradient step (response, then backward) by each method on
    ``grid``'s device: ``{"frequency": s, "time": s}``; "time" is inf where the system
    has no time-domain realization (or one that cannot run: a loop without delay).

    Parameters
    ----------
    system : flamo.DSPModule
    grid : flamo.Grid
    """
    _require_grid(grid, "estimated_seconds")
    try:
        with torch.no_grad():
            root = realize_system(system, grid.fs)
    except (NotImplementedError, ValueError):
        root = None
    if root is None:
        return {"frequency": 0.0, "time": float("inf")}
    seconds = {}
    for method, features, costs in (("frequency", frequency_features(root, grid.M), FREQUENCY_COSTS),
                                    ("time", time_features(root, grid.nfft), TIME_COSTS)):
        seconds[method] = sum(features[k] * costs[k] for k in costs)
    return seconds


def choose_method(system, points) -> str:
    """"time" or "frequency" for ``response(points, method="auto")``.

    Frequency sampling on explicit points, on CUDA (the recursions run on the CPU; no GPU
    was lent to calibrate a crossover), for batched parameters and for systems without a
    time-domain realization; otherwise the cheaper by :func:`estimated_seconds`.
    """
    from ..grid import Grid

    if not isinstance(points, Grid) or torch.device(points.device).type != "cpu":
        return "frequency"
    cost = estimated_seconds(system, points)
    return "time" if cost["time"] < cost["frequency"] else "frequency"
