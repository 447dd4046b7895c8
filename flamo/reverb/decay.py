"""Conversions between reverberation time and per-line gains.

A delay line of m samples followed by the gain g attenuates a circulating signal by
20 log10(g) dB every m samples. For the level to fall by 60 dB in T60 seconds the gain must
be g = 10^(-3 m / (fs T60)) (Jot & Chaigne, "Digital delay networks for designing
artificial reverberators", AES 90th Conv., 1991): every line then decays at the same rate
per sample, and with a lossless (orthogonal) feedback matrix all poles lie on the circle of
radius 10^(-3 / (fs T60)).
"""

from __future__ import annotations

import torch

__all__ = ["t60_to_gain", "gain_to_t60"]


def _as_tensor(value, name, owner):
    # Python numbers and arrays become float64, never the float32 default dtype.
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=torch.float64)
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{owner}: {name} must be real, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if not torch.isfinite(t).all():
        raise ValueError(f"{owner}: {name} must be finite")
    return t


def t60_to_gain(delays, t60, fs) -> torch.Tensor:
    """Per-line gains g = 10^(-3 m / (fs T60)) that give the reverberation time T60.

    Parameters
    ----------
    delays : array_like
        (N,) delay lengths m in samples, >= 0.
    t60 : float or array_like
        Reverberation time in seconds, > 0; broadcast against ``delays`` (a (K, 1) array
        gives (K, N) gains, e.g. one row per frequency band).
    fs : float
        Sample rate in Hz, > 0.

    Returns
    -------
    torch.Tensor
        Linear gains in (0, 1], shape of ``delays`` broadcast with ``t60``; the dtype of a
        tensor ``delays``, else float64.
    """
    m = _as_tensor(delays, "delays", "t60_to_gain")
    t = _as_tensor(t60, "t60", "t60_to_gain").to(m.dtype)
    if (m < 0).any():
        raise ValueError(f"t60_to_gain: delays must be >= 0 samples, got min {m.min().item():g}")
    if (t <= 0).any():
        raise ValueError(f"t60_to_gain: t60 must be > 0 seconds, got min {t.min().item():g}")
    if not fs > 0:
        raise ValueError(f"t60_to_gain: fs must be > 0 Hz, got {fs!r}")
    return torch.pow(torch.tensor(10.0, dtype=m.dtype), -3.0 * m / (float(fs) * t))


def gain_to_t60(delays, gain, fs) -> torch.Tensor:
    """Inverse of :func:`t60_to_gain`: T60 = -3 m / (fs log10 g) in seconds.

    Parameters
    ----------
    delays : array_like
        (N,) delay lengths in samples, > 0.
    gain : float or array_like
        Linear gains in (0, 1); broadcast against ``delays``.
    fs : float
        Sample rate in Hz, > 0.
    """
    m = _as_tensor(delays, "delays", "gain_to_t60")
    g = _as_tensor(gain, "gain", "gain_to_t60").to(m.dtype)
    if (m <= 0).any():
        raise ValueError(f"gain_to_t60: delays must be > 0 samples, got min {m.min().item():g}")
    if ((g <= 0) | (g >= 1)).any():
        raise ValueError(f"gain_to_t60: gain must lie in (0, 1) (a decaying line), got range "
                         f"[{g.min().item():g}, {g.max().item():g}]")
    if not fs > 0:
        raise ValueError(f"gain_to_t60: fs must be > 0 Hz, got {fs!r}")
    return -3.0 * m / (float(fs) * torch.log10(g))
