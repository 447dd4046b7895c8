"""Delay lines sampled at the evaluation points."""

from __future__ import annotations

import torch

from ..exceptions import DelayWrapWarning, warn
from ..grid import Grid, as_points

__all__ = ["delay_response"]


def delay_response(delays: torch.Tensor, points) -> torch.Tensor:
    """Sample z^-m at the evaluation points for each delay length m.

    The powers come from :meth:`flamo.Points.inverse_powers`, in float64 before the cast:
    on a Grid the phase omega_k m is formed exactly as 2 pi ((k m) mod nfft) / nfft, so a
    long integer delay keeps an exact phase even in float32.

    Parameters
    ----------
    delays : torch.Tensor
        (..., N) delay lengths in samples (real, may be fractional, may require grad).
    points : flamo.Grid, flamo.Points or torch.Tensor
        Where to evaluate: a grid, a point set, or a 1-D tensor of points z.

    Returns
    -------
    torch.Tensor
        (..., M, N) complex tensor in the points' complex dtype; differentiable w.r.t. m
        with d z^-m / dm = -log(z) z^-m.

    Warns
    -----
    flamo.exceptions.DelayWrapWarning
        On a :class:`flamo.Grid`, for a length outside [0, nfft): the grid cannot tell m
        from m mod nfft, so its impulse response lands at n = m mod nfft (1000 samples on
        nfft = 256 at n = 232; -46.5 near the end of the window). One host synchronization.
    """
    points = as_points(points, "delay_response")
    if isinstance(points, Grid) and delays.numel():
        with torch.no_grad():
            low, high = torch.aminmax(delays.detach())
            low, high = low.item(), high.item()
        if low < 0 or high >= points.nfft:
            warn(f"delay_response: delay lengths in [{low:g}, {high:g}] samples lie outside [0, nfft) = [0, "
                 f"{points.nfft}): frequency sampling wraps them modulo nfft (a delay m shows up at "
                 f"n = m mod {points.nfft}). Use a grid with nfft > {max(high, 0):g}, and bound "
                 f"learnable lengths by a mapping (e.g. Interval(0, nfft - 1))", DelayWrapWarning)
    return points.inverse_powers(delays).to(points.complex_dtype)
