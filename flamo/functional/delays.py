"""Delay lines sampled at the evaluation points."""

from __future__ import annotations

import torch

from ..grid import as_points

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
    """
    points = as_points(points)
    return points.inverse_powers(delays).to(points.complex_dtype)
