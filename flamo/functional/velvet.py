"""Velvet noise: sparse sequences of +-1 pulses, one pulse per cell of a regular grid.

Velvet noise (Jarvelainen & Karjalainen, "Reverberation modeling using velvet noise", AES 30th
Int. Conf., 2007; Valimaki, Holm-Rasmussen, Alary & Lehtonen, "Late reverberation synthesis
using filtered velvet noise", Applied Sciences 7(5), 483, 2017) of density rho pulses per
second at sample rate fs divides time into cells of Td = fs / rho samples and puts one pulse
in each cell m, at

    k(m) = round(m Td + r1(m) (Td - 1)),    s(m) = 2 round(r2(m)) - 1,

with r1, r2 uniform in [0, 1): the positions are jittered, never closer than one sample
apart, and the signs are random, so the sequence sounds smoother than white noise at a
fraction of the nonzero samples (about 2000 pulses/s is perceptually smooth).
"""

from __future__ import annotations

import math
import numbers

import torch

from .._common import seeded_generator

__all__ = ["velvet_pulses"]


def _positive(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{owner}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


def velvet_pulses(length, density, fs, channels=1, seed=None, pulse_range=1.0):
    """Pulse positions and signs of velvet-noise sequences.

    Parameters
    ----------
    length : int
        Sequence length in samples (>= 1).
    density : float
        Pulse density in pulses per second (> 0, at most fs: one pulse per sample).
    fs : float
        Sample rate in Hz (> 0).
    channels : int, default 1
        Number of independent sequences.
    seed : int, optional
        Seed of the positions and signs (None: a fresh draw).
    pulse_range : float, default 1.0
        Fraction of each cell, in (0, 1], in which its pulse may fall: 1 is the original
        velvet noise; smaller values confine each pulse to the start of its cell
        (k(m) = round(m Td + r1(m) pulse_range (Td - 1))), which keeps the spacing between
        pulses closer to Td.

    Returns
    -------
    positions : torch.Tensor
        (channels, P) int64 sample indices, increasing along each row, all < ``length``;
        P = floor(length / Td) pulses per sequence (the last partial cell holds none).
    signs : torch.Tensor
        (channels, P) float64 values +1 or -1.

    Raises
    ------
    ValueError
        For a non-positive length, density, fs or channel count, a density above fs, a
        pulse_range outside (0, 1], or a length shorter than one cell (no pulse).
    """
    owner = "velvet_pulses"
    if isinstance(length, bool) or not isinstance(length, numbers.Integral) or length < 1:
        raise ValueError(f"{owner}: length must be an int >= 1 samples, got {length!r}")
    if isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or channels < 1:
        raise ValueError(f"{owner}: channels must be an int >= 1, got {channels!r}")
    density, fs = _positive(owner, "density", density), _positive(owner, "fs", fs)
    if density > fs:
        raise ValueError(f"{owner}: density must be at most fs = {fs:g} pulses/s (one pulse per "
                         f"sample), got {density:g}")
    if isinstance(pulse_range, bool) or not isinstance(pulse_range, numbers.Real) \
            or not 0 < pulse_range <= 1:
        raise ValueError(f"{owner}: pulse_range must lie in (0, 1], got {pulse_range!r}")
    cell = fs / density  # Td, samples per pulse
    count = int(math.floor(length / cell + 1e-9))
    if count < 1:
        raise ValueError(f"{owner}: {length} samples are shorter than one cell of fs / density = "
                         f"{cell:g} samples, so the sequence would hold no pulse")
    gen = seeded_generator(seed)
    jitter = torch.rand(int(channels), count, generator=gen, dtype=torch.float64)
    coins = torch.rand(int(channels), count, generator=gen, dtype=torch.float64)
    m = torch.arange(count, dtype=torch.float64)
    positions = torch.round(m * cell + jitter * pulse_range * (cell - 1)).to(torch.int64)
    positions = positions.clamp(max=int(length) - 1)
    signs = 2 * torch.round(coins) - 1
    return positions, signs
