"""Delay lines sampled on the grid."""

from __future__ import annotations

import math

import torch

__all__ = ["delay_response"]


def delay_response(samples: torch.Tensor, grid) -> torch.Tensor:
    """Sample z^-m on the grid for each delay length m.

    z_k^-m = gamma^m exp(-1j omega_k m). The phase omega_k m of a long delay is large
    (up to pi * m), and rounding it in float32 would cost accuracy, so it is computed as
    2 pi ((k m) mod nfft) / nfft in float64: exact for integer m, and for fractional m
    accurate to float64 before the final cast.

    Parameters
    ----------
    samples : torch.Tensor
        (..., N) delay lengths in samples (real, may be fractional, may require grad).
    grid : flamo.Grid

    Returns
    -------
    torch.Tensor
        (..., M, N) complex tensor in ``grid.complex_dtype``; differentiable w.r.t. m with
        d z^-m / dm = (log(gamma) - 1j omega) z^-m.
    """
    m = samples.to(torch.float64).unsqueeze(-2)  # (..., 1, N)
    k = torch.arange(grid.M, dtype=torch.float64, device=m.device).unsqueeze(-1)  # (M, 1)
    phase = (2 * math.pi / grid.nfft) * torch.remainder(k * m, grid.nfft)
    magnitude = torch.exp(grid.log_gamma * m).expand_as(phase)
    return torch.polar(magnitude, -phase).to(grid.complex_dtype)
