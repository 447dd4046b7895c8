"""FIR filters and fractional-delay filter designs sampled at the evaluation points."""

from __future__ import annotations

import torch

from ..grid import as_points

__all__ = ["fir_response", "lagrange_taps", "thiran_coefficients", "allpass_response"]


def fir_response(taps: torch.Tensor, points) -> torch.Tensor:
    """Sample H(z) = sum_n h[n] z^-n at the evaluation points, taps along the last dim.

    On a Grid the samples are one FFT of h[n] gamma^n (taps longer than nfft are folded
    modulo nfft first, which is exact at the grid points); at explicit points the powers
    z^-n are formed in float64 (see :meth:`flamo.Points.polynomial`).

    Parameters
    ----------
    taps : torch.Tensor
        (..., N, L) real taps h[0..L-1] of N filters (leading dims are batch dims), or (L,)
        for one filter (may require grad).
    points : flamo.Grid, flamo.Points or torch.Tensor
        Where to evaluate: a grid, a point set, or a 1-D tensor of points z.

    Returns
    -------
    torch.Tensor
        (..., M, N) complex tensor in the points' complex dtype, (M,) for one filter: the
        frequency axis is second to last, before the channel axis.
    """
    h = as_points(points).polynomial(taps)  # (..., [N,] M)
    return h if taps.ndim == 1 else h.transpose(-1, -2)


def lagrange_taps(delay: torch.Tensor, order: int) -> torch.Tensor:
    """Taps of the Lagrange-interpolation fractional-delay FIR of a given order.

    h[n] = prod_{k != n} (D - k) / (n - k), n = 0 .. order (Laakso, Valimaki, Karjalainen,
    Laine, "Splitting the unit delay", IEEE Signal Processing Magazine 1996, eq. 42). The
    taps are polynomials in D, so they are smooth in the delay, and for integer D in
    [0, order] the filter is exactly z^-D. The error is smallest for D near order / 2.

    Parameters
    ----------
    delay : torch.Tensor
        (...,) delays D in samples (may require grad).
    order : int
        Filter order N >= 1 (N + 1 taps).

    Returns
    -------
    torch.Tensor
        (..., N + 1) taps.
    """
    k = torch.arange(order + 1, dtype=delay.dtype, device=delay.device)
    diff = k.unsqueeze(-1) - k  # (n, k): n - k
    off = ~torch.eye(order + 1, dtype=torch.bool, device=delay.device)
    factors = (delay[..., None, None] - k) / torch.where(off, diff, torch.ones_like(diff))
    return torch.where(off, factors, torch.ones_like(factors)).prod(-1)


def thiran_coefficients(delay: torch.Tensor, order: int) -> torch.Tensor:
    """Denominator a[0..N] of the Thiran allpass z^-N A(z^-1) / A(z) with group delay D at DC.

    a_k = (-1)^k C(N, k) prod_{n=0}^{N} (D - N + n) / (D - N + k + n) (Thiran 1971; Laakso
    et al. 1996, eq. 86), a_0 = 1. The allpass is stable for D > N - 1 and exactly z^-N at
    D = N.

    Parameters
    ----------
    delay : torch.Tensor
        (...,) delays D in samples, D > N - 1 (may require grad).
    order : int
        Allpass order N >= 1.

    Returns
    -------
    torch.Tensor
        (..., N + 1) coefficients, a[..., 0] = 1.
    """
    k = torch.arange(1, order + 1, dtype=delay.dtype, device=delay.device)  # a_0 = 1 apart
    log_binom = (torch.lgamma(torch.tensor(order + 1.0, dtype=delay.dtype, device=delay.device))
                 - torch.lgamma(k + 1) - torch.lgamma(order - k + 1))
    sign = 1 - 2 * torch.remainder(k, 2)
    n = torch.arange(order + 1, dtype=delay.dtype, device=delay.device)
    base = delay[..., None, None] - order + n  # (..., 1, n)
    ratio = base / (base + k.unsqueeze(-1))  # (..., k, n); base + k > 0 when D > N - 1
    rest = sign * torch.exp(log_binom).round() * ratio.prod(-1)
    return torch.cat([torch.ones_like(rest[..., :1]), rest], dim=-1)

def allpass_response(a: torch.Tensor, points) -> torch.Tensor:
    """Sample the allpass z^-N A(z^-1) / A(z), A(z) = sum_k a_k z^-k.

    ``a`` is (..., N, order + 1) (or (order + 1,)); the result is shaped as
    :func:`fir_response`'s.
    """
    return fir_response(a.flip(-1), points) / fir_response(a, points)
