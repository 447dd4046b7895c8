"""Time <-> frequency on a grid, with the anti-aliasing envelope.

Sampling a system at z_k = exp(1j omega_k) / gamma is the DFT of h[n] gamma^n, so every
signal that meets a sampled response must be weighted the same way: a time signal x[n]
enters as the DFT of x[n] gamma^n (:func:`rfft`), and the product Y_k = H(z_k) X_k is the DFT
of (h * x)[n] gamma^n, which :func:`irfft` turns back by multiplying with gamma^-n. This is
right for any input, not only for unit impulses. Aliased copies of the output are attenuated
by ``alias_decay_db`` per wrap; rounding noise is amplified by up to gamma^-(nfft - 1).
"""

from __future__ import annotations

import torch

from .grid import Grid

__all__ = ["rfft", "irfft", "impulse", "filter_signal"]


def _envelope(grid):
    """gamma^n, n = 0 .. nfft - 1, computed in float64 and cast."""
    n = torch.arange(grid.nfft, dtype=torch.float64)
    return torch.exp(grid.log_gamma * n).to(grid.dtype)


def _inverse_envelope(grid):
    """gamma^-n, n = 0 .. nfft - 1."""
    n = torch.arange(grid.nfft, dtype=torch.float64)
    return torch.exp(-grid.log_gamma * n).to(grid.dtype)


def _require_grid(owner, grid):
    if not isinstance(grid, Grid):
        raise TypeError(f"{owner}: time signals live on the FFT grid: pass a flamo.Grid, got "
                        f"{type(grid).__name__}")


def _envelope_shape(ndim: int, dim: int, length: int):
    shape = [1] * ndim
    shape[dim] = length
    return shape


def rfft(x: torch.Tensor, grid, dim: int = -2) -> torch.Tensor:
    """Spectrum of a real signal on the grid: rfft(x[n] gamma^n, nfft).

    Parameters
    ----------
    x : torch.Tensor
        Real signal with time along ``dim`` (default -2: shape (..., T, channels)),
        T <= nfft samples; it is zero-padded to nfft.
    grid : flamo.Grid
    dim : int

    Returns
    -------
    torch.Tensor
        Complex tensor with M = nfft // 2 + 1 frequencies along ``dim``.
    """
    _require_grid("rfft", grid)
    if x.is_complex():
        raise TypeError("rfft: x must be a real tensor, got a complex one")
    length = x.shape[dim]
    if length > grid.nfft:
        raise ValueError(f"rfft: signal has {length} samples along dim {dim}, more than "
                         f"nfft={grid.nfft}; use a grid with nfft >= {length}")
    env = grid.cached(_envelope, x.device)[:length]
    x = x.to(grid.dtype) * env.reshape(_envelope_shape(x.ndim, dim, length))
    return torch.fft.rfft(x, n=grid.nfft, dim=dim)


def irfft(spectrum: torch.Tensor, grid, dim: int = -2) -> torch.Tensor:
    """Real signal from its spectrum on the grid: irfft(X, nfft) gamma^-n.

    Parameters
    ----------
    spectrum : torch.Tensor
        Complex tensor with M = nfft // 2 + 1 frequencies along ``dim``.
    grid : flamo.Grid
    dim : int

    Returns
    -------
    torch.Tensor
        Real tensor with nfft samples along ``dim``, gamma-compensated.
    """
    _require_grid("irfft", grid)
    if spectrum.shape[dim] != grid.M:
        raise ValueError(f"irfft: expected M={grid.M} frequencies along dim {dim}, "
                         f"got {spectrum.shape[dim]}")
    x = torch.fft.irfft(spectrum, n=grid.nfft, dim=dim)
    env = grid.cached(_inverse_envelope, x.device).to(x.dtype)
    return x * env.reshape(_envelope_shape(x.ndim, dim, grid.nfft))


def impulse(length: int, channels: int = 1, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """Unit impulse, (length, channels): 1 at n = 0 in every channel."""
    x = torch.zeros(length, channels, dtype=dtype, device=device)
    x[0] = 1
    return x


def filter_signal(module, x: torch.Tensor, grid) -> torch.Tensor:
    """Filter a time signal with a module or system by frequency sampling.

    Parameters
    ----------
    module : flamo.modules.DSPModule
        Any module or system with ``in`` inputs and ``out`` outputs.
    x : torch.Tensor
        Real signal, (..., T, in) with T <= nfft; a 1-D (T,) signal is accepted for
        single-input modules.
    grid : flamo.Grid

    Returns
    -------
    torch.Tensor
        (..., nfft, out), or (nfft,) for a 1-D input to a single-output module: the
        output over the whole window; what lies beyond nfft samples wraps around,
        attenuated by alias_decay_db per wrap.
    """
    _require_grid("filter_signal", grid)
    n_out, n_in = module.shape
    squeeze = x.ndim == 1
    if squeeze:
        if n_in != 1:
            raise ValueError(f"filter_signal: a 1-D signal needs a single-input module, "
                             f"{type(module).__name__} has {n_in} inputs")
        x = x.unsqueeze(-1)
    if x.shape[-1] != n_in:
        raise ValueError(f"filter_signal: {type(module).__name__} expects {n_in} input "
                         f"channels (last dim of x), got x of shape {tuple(x.shape)}")
    h = module.response(grid)  # (..., M, out, in)
    spectrum = (h @ rfft(x, grid).unsqueeze(-1)).squeeze(-1)  # (..., M, out)
    y = irfft(spectrum, grid)
    return y.squeeze(-1) if squeeze and n_out == 1 else y
