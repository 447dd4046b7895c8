"""Excitation signals: impulse, sine, exponential sweep, white noise and velvet noise.

Every generator takes a duration in seconds and a sample rate fs in Hz, and returns a real
(T, channels) tensor in the library's time-first layout (see :mod:`flamo.signal`), with
T = round(duration * fs) samples, ready for ``module(x, grid)`` and the losses. The random
ones (white and velvet noise) take a ``seed`` and draw every channel independently; the same
seed gives the same signal on every platform (a CPU ``torch.Generator``).

(This module is not :mod:`flamo.signal`, the time <-> frequency conversions on a grid: it
makes signals, that one transforms them.)
"""

from __future__ import annotations

import math
import numbers

import torch

from ._common import seeded_generator
from .functional.velvet import velvet_pulses
from .signal import impulse as unit_impulse

__all__ = ["impulse", "sine", "exponential_sweep", "white_noise", "velvet_noise"]


def _number(owner, name, value, positive=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or (positive and value <= 0):
        want = "a finite number > 0" if positive else "a finite number"
        raise ValueError(f"{owner}: {name} must be {want}, got {value!r}")
    return float(value)


def _length(owner, duration, fs):
    duration = _number(owner, "duration", duration)
    fs = _number(owner, "fs", fs)
    length = int(round(duration * fs))
    if length < 1:
        raise ValueError(f"{owner}: duration * fs = {duration * fs:g} rounds to no sample; "
                         f"need at least one")
    return length, fs


def _channels(owner, channels):
    if isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or channels < 1:
        raise ValueError(f"{owner}: channels must be an int >= 1, got {channels!r}")
    return int(channels)


def _time(length, fs):
    return torch.arange(length, dtype=torch.float64) / fs


def impulse(duration, fs, channels=1, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """Unit impulse: 1 at t = 0 in every channel, 0 elsewhere.

    Parameters
    ----------
    duration : float
        Length in seconds.
    fs : float
        Sample rate in Hz.
    channels : int, default 1
    dtype : torch.dtype, default torch.float32
    device : torch.device or str, default "cpu"

    Returns
    -------
    torch.Tensor
        (T, channels), T = round(duration * fs).
    """
    length, _ = _length("impulse", duration, fs)
    return unit_impulse(length, _channels("impulse", channels), dtype=dtype, device=device)


def sine(freq, duration, fs, amplitude=1.0, phase=0.0, channels=1, dtype=torch.float32,
         device="cpu") -> torch.Tensor:
    """Sinusoid x(t) = amplitude sin(2 pi freq t + phase), t = n / fs.

    Parameters
    ----------
    freq : float
        Frequency in Hz, in [0, fs / 2].
    duration : float
        Length in seconds.
    fs : float
        Sample rate in Hz.
    amplitude : float, default 1.0
        Peak amplitude (linear).
    phase : float, default 0.0
        Phase at t = 0 in radians.
    channels : int, default 1
        The same sinusoid in every channel.
    dtype, device : optional

    Returns
    -------
    torch.Tensor
        (T, channels), computed in float64 and then cast.
    """
    length, fs = _length("sine", duration, fs)
    freq = _number("sine", "freq", freq, positive=False)
    if not 0 <= freq <= fs / 2:
        raise ValueError(f"sine: freq must lie in [0, fs / 2] = [0, {fs / 2:g}] Hz, got {freq:g}")
    x = _number("sine", "amplitude", amplitude, positive=False) * torch.sin(
        2 * math.pi * freq * _time(length, fs) + _number("sine", "phase", phase, positive=False))
    return x.unsqueeze(-1).expand(length, _channels("sine", channels)).to(dtype=dtype, device=device)


def exponential_sweep(f_start, f_stop, duration, fs, amplitude=1.0, channels=1,
                      dtype=torch.float32, device="cpu") -> torch.Tensor:
    """Exponential (logarithmic) sine sweep from f_start to f_stop (Farina, AES 108th Conv., 2000).

    x(t) = amplitude sin(2 pi f_start L (exp(t / L) - 1)), L = D / ln(f_stop / f_start),
    with D the duration: the instantaneous frequency f_start exp(t / L) rises by the same
    number of octaves per second, from f_start at t = 0 to f_stop at t = D.

    Parameters
    ----------
    f_start, f_stop : float
        Start and end frequencies in Hz, 0 < f_start, f_stop <= fs / 2, f_start != f_stop
        (a falling sweep has f_stop < f_start).
    duration : float
        Length D in seconds.
    fs : float
        Sample rate in Hz.
    amplitude : float, default 1.0
    channels : int, default 1
    dtype, device : optional

    Returns
    -------
    torch.Tensor
        (T, channels), computed in float64 and then cast.
    """
    owner = "exponential_sweep"
    length, fs = _length(owner, duration, fs)
    f1, f2 = _number(owner, "f_start", f_start), _number(owner, "f_stop", f_stop)
    if max(f1, f2) > fs / 2 or f1 == f2:
        raise ValueError(f"{owner}: need 0 < f_start, f_stop <= fs / 2 = {fs / 2:g} Hz and "
                         f"f_start != f_stop, got f_start={f1:g}, f_stop={f2:g}")
    rate = float(duration) / math.log(f2 / f1)  # L, seconds per e-fold of frequency
    t = _time(length, fs)
    x = _number(owner, "amplitude", amplitude, positive=False) * torch.sin(
        2 * math.pi * f1 * rate * torch.expm1(t / rate))
    return x.unsqueeze(-1).expand(length, _channels(owner, channels)).to(dtype=dtype, device=device)


def white_noise(duration, fs, std=1.0, channels=1, seed=None, dtype=torch.float32,
                device="cpu") -> torch.Tensor:
    """Gaussian white noise of standard deviation ``std``, independent per channel.

    Parameters
    ----------
    duration : float
        Length in seconds.
    fs : float
        Sample rate in Hz.
    std : float, default 1.0
        Standard deviation (linear, > 0).
    channels : int, default 1
    seed : int, optional
        Seed of the draw (None: a fresh one).
    dtype, device : optional

    Returns
    -------
    torch.Tensor
        (T, channels), drawn in float64 and then cast.
    """
    length, _ = _length("white_noise", duration, fs)
    x = torch.randn(length, _channels("white_noise", channels), generator=seeded_generator(seed),
                    dtype=torch.float64)
    return (_number("white_noise", "std", std) * x).to(dtype=dtype, device=device)


def velvet_noise(duration, fs, density=2000.0, channels=1, seed=None, pulse_range=1.0,
                 dtype=torch.float32, device="cpu") -> torch.Tensor:
    """Velvet noise: one +-1 pulse per cell of fs / density samples, 0 elsewhere.

    See :func:`flamo.functional.velvet_pulses` for the construction (Jarvelainen &
    Karjalainen, AES 2007; Valimaki et al., Applied Sciences 2017).

    Parameters
    ----------
    duration : float
        Length in seconds.
    fs : float
        Sample rate in Hz.
    density : float, default 2000.0
        Pulses per second (<= fs).
    channels : int, default 1
        Independent sequences.
    seed : int, optional
    pulse_range : float, default 1.0
        Fraction of each cell in which its pulse may fall, (0, 1].
    dtype, device : optional

    Returns
    -------
    torch.Tensor
        (T, channels) with floor(T density / fs) nonzero samples per channel.
    """
    length, fs = _length("velvet_noise", duration, fs)
    channels = _channels("velvet_noise", channels)
    positions, signs = velvet_pulses(length, density, fs, channels=channels, seed=seed,
                                     pulse_range=pulse_range)
    x = torch.zeros(channels, length, dtype=torch.float64).scatter_(-1, positions, signs)
    return x.T.contiguous().to(dtype=dtype, device=device)
