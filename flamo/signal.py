"""Time signals: the layout every flamo function uses, and time <-> frequency on a grid.

**Time first, like frequency first.** A time signal is (T,) (one channel) or (..., T, C):
time at dim -2, channels last, batch dims leading, exactly as responses are (..., M, out, in)
with the points first. ``module(x, grid)`` returns (..., nfft, out), the losses and decay
analyses of :mod:`flamo.optim` and the baselines take signals this way, and none of them has
an axis argument; ``module.impulse_response(grid)`` is (..., nfft, out, in), so
``ir[..., j]`` is the (nfft, out) signal for input j. Functions whose output gains an axis
(bands of a filterbank, bins of an STFT) put it first, before the batch dims; for a (T,)
signal it becomes the channel axis. :func:`time_last` and :func:`time_first` convert to and
from the time-last layout of torch.stft, scipy.signal and most audio libraries, and
:func:`time_last` is where layouts are checked: a time axis shorter than a function needs
raises ValueError naming the layout, and more channels than samples warns.

Sampling a system at z_k = exp(1j omega_k) / gamma is the DFT of h[n] gamma^n, so every
signal that meets a sampled response must be weighted the same way: a time signal x[n]
enters as the DFT of x[n] gamma^n (:func:`rfft`), and the product Y_k = H(z_k) X_k is the DFT
of (h * x)[n] gamma^n, which :func:`irfft` turns back by multiplying with gamma^-n. This is
right for any input, not only for unit impulses. Aliased copies of the output are attenuated
by ``alias_decay_db`` per wrap; rounding noise is amplified by up to gamma^-(nfft - 1).
"""

from __future__ import annotations

import warnings

import torch

from ._common import as_real_tensor
from .grid import Grid
from .response import Response

__all__ = ["rfft", "irfft", "impulse", "filter_signal", "module_input", "time_last", "time_first",
           "as_signal"]


def time_last(x, owner: str = "time_last", name: str = "x", min_length: int = 1,
              check_channels: bool = True) -> torch.Tensor:
    """A time signal (T,) or (..., T, C) as (T,) or (..., C, T), after checking its layout.

    Parameters
    ----------
    x : torch.Tensor
        Real signal, time first: (T,) or (..., T, C).
    owner, name : str
        Function and argument named in error messages.
    min_length : int, default 1
        Fewest samples the caller needs along the time axis.
    check_channels : bool, default True
        Warn when ``x`` has more channels than samples (a transposed signal, usually);
        False for layouts where that is expected (an STFT's bins as channels).

    Returns
    -------
    torch.Tensor
        A view with time last.

    Raises
    ------
    TypeError
        If ``x`` is not a real floating tensor.
    ValueError
        If ``x`` is 0-d or has fewer than ``min_length`` samples along its time axis (the
        usual sign of a time-last signal passed where time comes first).
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        what = f"dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"{owner}: {name} must be a real floating tensor, got {what}")
    if x.ndim == 0:
        raise ValueError(f"{owner}: {name} must be a time signal (T,) or (..., T, C), got a scalar")
    length = x.shape[0] if x.ndim == 1 else x.shape[-2]
    if length < min_length:
        raise ValueError(f"{owner}: {name} of shape {tuple(x.shape)} has {length} samples along "
                         f"its time axis, needs >= {min_length}; time signals are (T,) or "
                         f"(..., T, C), time first (transpose a time-last signal)")
    if check_channels and x.ndim >= 2 and x.shape[-1] > length:
        warnings.warn(f"{owner}: {name} of shape {tuple(x.shape)} has more channels "
                      f"({x.shape[-1]}) than samples ({length}); time signals are (..., T, C), "
                      f"time first: is it time-last?", stacklevel=3)
    return x if x.ndim == 1 else x.movedim(-2, -1)


def time_first(y: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`time_last`: (T,) stays, (..., C, T) becomes (..., T, C)."""
    return y if y.ndim == 1 else y.movedim(-1, -2)


def as_signal(x, owner: str, name: str = "x") -> torch.Tensor:
    """A time signal as a tensor: tensors as given, numpy arrays and (nested) lists converted
    (their dtype kept, Python numbers in float32, as for module parameters).

    Raises
    ------
    TypeError
        For a non-array-like or complex value, naming ``owner`` and ``name``.
    """
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (str, bytes, dict)) or x is None:
        raise TypeError(f"{owner}: {name} must be a real time signal (tensor, numpy array or list), "
                        f"got {type(x).__name__}")
    return as_real_tensor(x, name, owner)


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


def _layout_dim(x, dim):
    """The time (or frequency) axis: ``dim`` if given, else that of (T,) or (..., T, C)."""
    return dim if dim is not None else (0 if x.ndim == 1 else -2)


def rfft(x: torch.Tensor, grid, dim: int | None = None) -> torch.Tensor:
    """Spectrum of a real signal on the grid: rfft(x[n] gamma^n, nfft).

    Parameters
    ----------
    x : torch.Tensor
        Real signal (T,) or (..., T, C), time first, T <= nfft samples; it is zero-padded
        to nfft.
    grid : flamo.Grid
    dim : int, optional
        Another time axis (e.g. -3 for impulse-response matrices (..., T, out, in)).

    Returns
    -------
    torch.Tensor
        Complex tensor with M = nfft // 2 + 1 frequencies along the time axis.
    """
    _require_grid("rfft", grid)
    x = as_signal(x, "rfft")
    if x.is_complex():
        raise TypeError("rfft: x must be a real tensor, got a complex one")
    dim = _layout_dim(x, dim)
    length = x.shape[dim]
    if length > grid.nfft:
        raise ValueError(f"rfft: signal has {length} samples along dim {dim}, more than "
                         f"nfft={grid.nfft}; use a grid with nfft >= {length}")
    env = grid.cached(_envelope, x.device)[:length]
    x = x.to(grid.dtype) * env.reshape(_envelope_shape(x.ndim, dim, length))
    return torch.fft.rfft(x, n=grid.nfft, dim=dim)


def irfft(spectrum: torch.Tensor, grid, dim: int | None = None) -> torch.Tensor:
    """Real signal from its spectrum on the grid: irfft(X, nfft) gamma^-n.

    Parameters
    ----------
    spectrum : torch.Tensor
        Complex spectrum (M,) or (..., M, C), frequency first, M = nfft // 2 + 1.
    grid : flamo.Grid
    dim : int, optional
        Another frequency axis (-3 for responses (..., M, out, in)).

    Returns
    -------
    torch.Tensor
        Real tensor with nfft samples along the frequency axis, gamma-compensated.
    """
    _require_grid("irfft", grid)
    dim = _layout_dim(spectrum, dim)
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
    x : torch.Tensor or array_like
        Real signal, (..., T, in) with T <= nfft; a 1-D (T,) signal is accepted for
        single-input modules. Numpy arrays and lists are converted (:func:`as_signal`).
    grid : flamo.Grid

    Returns
    -------
    torch.Tensor
        (..., nfft, out), or (nfft,) for a 1-D input to a single-output module: the
        output over the whole window; what lies beyond nfft samples wraps around,
        attenuated by alias_decay_db per wrap.
    """
    _require_grid("filter_signal", grid)
    x, squeeze = module_input(module, as_signal(x, "filter_signal"), "filter_signal")
    # The module acts on the input spectrum as a one-column matrix (..., M, in, 1): a
    # diagonal module then scales it (never an (M, in, in) matrix), a loop solves for that
    # column alone (see DSPModule.apply_to).
    column = Response(rfft(x, grid).unsqueeze(-1), False)
    spectrum = module.apply_to(column, grid).data.squeeze(-1)  # (..., M, out)
    y = irfft(spectrum, grid)
    return y.squeeze(-1) if squeeze else y


def module_input(module, x: torch.Tensor, owner: str):
    """A signal laid out for ``module``: (x as (..., T, in), whether the output is to be
    squeezed back to (T,)); a (T,) signal is accepted for single-input modules and gives
    a (T,) output from a single-output one. ValueError, naming ``owner``, otherwise."""
    n_out, n_in = module.shape
    squeeze = x.ndim == 1
    if squeeze:
        if n_in != 1:
            raise ValueError(f"{owner}: a 1-D signal needs a single-input module, "
                             f"{type(module).__name__} has {n_in} inputs")
        x = x.unsqueeze(-1)
    if x.ndim < 2 or x.shape[-1] != n_in:
        raise ValueError(f"{owner}: {type(module).__name__} expects {n_in} input channels, x of "
                         f"shape (..., T, {n_in}) (time first, channels last), got {tuple(x.shape)}")
    return x, squeeze and n_out == 1
