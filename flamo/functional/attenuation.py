"""Attenuation for reverberation: delay-line gains and filters from a T60(f) curve.

A recirculating delay line of m samples decays by 60 dB in T60 seconds when its loop gain
is g = 10^(-3 m / (fs T60)) per pass (-60 m / (fs T60) dB). Frequency-dependent decay puts
a filter in each line whose magnitude follows that formula at every frequency (Jot &
Chaigne, "Digital delay networks for designing artificial reverberators", AES 1991).
Every design here has magnitude < 1 at every frequency when every T60 is finite and > 0,
so an FDN with an orthogonal (lossless) feedback matrix stays stable.
"""

from __future__ import annotations

import math

import torch

from .._common import as_real_tensor
from .biquads import first_order_lowshelf
from .geq import AccurateGEQ, unit_circle_db
from .proportional import ProportionalEQ

__all__ = ["t60_to_gain", "gain_to_t60", "t60_to_gain_db", "onepole_attenuation", "shelf_attenuation",
           "geq_attenuation", "proportional_attenuation"]


def t60_to_gain_db(delays, t60, fs: float) -> torch.Tensor:
    """Per-pass gain in dB, -60 m / (fs T60), broadcast over (delays, t60); no validation
    (the designs below call it on values their mappings keep valid)."""
    return -60.0 * delays / (fs * t60)


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
        Linear gains in (0, 1], shape of ``delays`` broadcast with ``t60``, in the dtype of
        ``delays`` (a tensor keeps its dtype; Python values take the default float32, as
        everywhere in flamo: pass float64 tensors for reference work).
    """
    m = as_real_tensor(delays, "delays", "t60_to_gain")
    t = as_real_tensor(t60, "t60", "t60_to_gain", dtype=m.dtype)
    if (m < 0).any():
        raise ValueError(f"t60_to_gain: delays must be >= 0 samples, got min {m.min().item():g}")
    if (t <= 0).any():
        raise ValueError(f"t60_to_gain: t60 must be > 0 seconds, got min {t.min().item():g}")
    if not fs > 0:
        raise ValueError(f"t60_to_gain: fs must be > 0 Hz, got {fs!r}")
    return 10.0 ** (t60_to_gain_db(m, t, float(fs)) / 20.0)


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
    m = as_real_tensor(delays, "delays", "gain_to_t60")
    g = as_real_tensor(gain, "gain", "gain_to_t60", dtype=m.dtype)
    if (m <= 0).any():
        raise ValueError(f"gain_to_t60: delays must be > 0 samples, got min {m.min().item():g}")
    if ((g <= 0) | (g >= 1)).any():
        raise ValueError(f"gain_to_t60: gain must lie in (0, 1) (a decaying line), got range "
                         f"[{g.min().item():g}, {g.max().item():g}]")
    if not fs > 0:
        raise ValueError(f"gain_to_t60: fs must be > 0 Hz, got {fs!r}")
    return -3.0 * m / (float(fs) * torch.log10(g))


def _soft_limit(x, limit, power: int = 4):
    """x / (1 + (x / limit)^p)^(1/p), p = ``power`` (even): smooth, odd, monotone,
    |.| < limit, and equal to x up to a relative (x / limit)^p / p."""
    return x / (1 + (x / limit) ** power) ** (1 / power)


def _first_order(b0, b1, a0, a1):
    zero = torch.zeros_like(b0)
    return torch.stack([b0, b1, zero, a0, a1, zero], dim=-1)


def onepole_attenuation(delays, t60_dc, t60_nyquist, fs: float) -> torch.Tensor:
    """One-pole attenuation filters H_i(z) = b_i / (1 - p_i z^-1) (Jot & Chaigne 1991).

    The DC gain g_0 = 10^(-3 m / (fs T60_dc)) and Nyquist gain g_pi = 10^(-3 m / (fs
    T60_nyquist)) are met exactly: p = (g_0 - g_pi) / (g_0 + g_pi), b = g_0 (1 - p) (Jot &
    Chaigne's closed form is a first-order approximation of this pole for long T60).
    |p| < 1 because both gains are positive (soft-limited, see the code, so that float64
    still resolves it for ratios beyond 170 dB per pass), and the magnitude
    is monotone in frequency, so max |H| = max(g_0, g_pi) < 1.

    Returns
    -------
    torch.Tensor
        (..., N, 6) first-order sections (b2 = a2 = 0).
    """
    g0 = t60_to_gain(delays, t60_dc, fs)
    # p = tanh(s), s = (ln g0 - ln g_pi) / 2, soft-limited to |s| < 10 so that |p| <= 1 - 4e-9
    # stays representable: the Nyquist gain g0 e^(-2 s) then lies between g0 and g_pi (< 1);
    # the limit changes s by a relative (s / 10)^4 / 4, i.e. < 1e-4 below 40 dB per pass.
    half_log_ratio = (math.log(10) / 40) * (t60_to_gain_db(delays, t60_dc, fs)
                                             - t60_to_gain_db(delays, t60_nyquist, fs))
    p = torch.tanh(_soft_limit(half_log_ratio, 10.0))
    return _first_order(g0 * (1 - p), torch.zeros_like(p), torch.ones_like(p), -p)


def shelf_attenuation(delays, t60_dc, t60_nyquist, crossover, fs: float) -> torch.Tensor:
    """First-order shelf attenuation: gain g_pi times a first-order low shelf of gain
    g_0 / g_pi at ``crossover`` Hz (:func:`flamo.functional.first_order_lowshelf`).

    DC gain g_0, Nyquist gain g_pi (see :func:`onepole_attenuation`), their geometric mean
    at the crossover; monotone, so max |H| = max(g_0, g_pi) < 1. The shelf's dB gain is
    soft-limited to +/-120 dB (beyond that the DC gain lies between g_pi and g_0).

    Returns
    -------
    torch.Tensor
        (..., N, 6) first-order sections.
    """
    g0_db = t60_to_gain_db(delays, t60_dc, fs)
    gpi_db = t60_to_gain_db(delays, t60_nyquist, fs)
    # soft limit of the shelf's dB gain to +/-120 dB keeps its pole resolvable in float64;
    # exact to a relative (x / 120)^4 / 4, and the DC gain stays between g_pi and g_0
    sos = first_order_lowshelf(crossover, _soft_limit(g0_db - gpi_db, 120.0), fs)
    scale = torch.pow(10.0, gpi_db / 20.0)
    return torch.cat([sos[..., :3] * scale.unsqueeze(-1), sos[..., 3:]], dim=-1)


def _check_omegas(lowest, device):
    """DC, Nyquist and 1024 log-spaced frequencies from ``lowest`` / 16 to Nyquist (rad), float64."""
    low = math.log10(lowest / 16)
    return torch.cat([torch.zeros(1, dtype=torch.float64),
                      torch.logspace(low, math.log10(math.pi), 1024, dtype=torch.float64)]).to(device)


def _below_unity(sos, lowest, margin_db, sharpness):
    """Lower each cascade (..., N, K, 6) by softplus(s (e + margin)) / s dB, e its maximum in
    dB on the check grid of :func:`_check_omegas`: the maximum becomes <= -margin_db."""
    omega = _check_omegas(lowest, sos.device)
    peak = unit_circle_db(sos, omega).amax(-2)  # (..., N) dB
    correction = torch.nn.functional.softplus(sharpness * (peak + margin_db)) / sharpness  # dB
    scale = torch.pow(10.0, -correction / 20.0)[..., None, None]
    first = torch.cat([sos[..., :1, :3] * scale, sos[..., :1, 3:]], dim=-1)
    return torch.cat([first, sos[..., 1:, :]], dim=-2)


def geq_attenuation(design: AccurateGEQ, delays, t60_bands, margin_db: float = 0.05,
                    sharpness: float = 1000.0, max_attenuation_db: float = 24.0) -> torch.Tensor:
    """Per-line graphic-EQ attenuation filters from band T60s.

    Line i gets command gains -60 m_i / (fs T60_b) dB (all < 0), soft-limited to
    (-``max_attenuation_db``, 0) (x / (1 + (x / 24)^4)^(1/4): 1e-4 relative at -6 dB; the
    design is accurate for spans of about 24 dB, and a faster decay than 24 dB per pass, a
    T60 below 2.5 m / fs, is rarely wanted), realized by the accurate
    cascade GEQ (``design``, which should use ``offset=True`` so that the gain at DC and
    Nyquist is the mean command gain, below 0 dB). The accurate GEQ can overshoot its
    targets between bands by up to about 1 dB, which would break a loop gain < 1 when
    T60 is long. Each line's cascade is therefore sampled at 1026 check frequencies (DC,
    Nyquist and a log grid 1/100 octave fine from centre_1 / 16); with e its maximum in dB
    and L = -margin_db, the broadband gain is lowered by softplus(s (e - L)) / s dB
    (s = ``sharpness`` per dB), which is >= e - L. The maximum over the check grid is
    thus at most L < 0 dB, and the correction is below ln(2) / s dB when e <= L (< 1e-7 dB
    once e is 0.01 dB below L at s = 1000). A long T60 attenuates a line by a fraction of a
    dB per pass, so the knee must be that sharp: s = 10 lowered a line of 1499 samples at
    T60 = 9 s (-0.21 dB per pass) by a further 0.019 dB, a T60 8 % short. Between check
    points a cascade of B biquads cannot rise measurably (tested on fine grids).

    Parameters
    ----------
    design : AccurateGEQ
    delays : tensor (..., N)
        Delay lengths in samples.
    t60_bands : tensor (..., B) or (..., N, B)
        T60 per band in seconds (> 0).
    margin_db, sharpness, max_attenuation_db : float

    Returns
    -------
    torch.Tensor
        (..., N, B, 6) sections.
    """
    command = t60_to_gain_db(delays.unsqueeze(-1), t60_bands, design.fs)  # (..., N, B)
    command = _soft_limit(command, max_attenuation_db)
    return _below_unity(design.sections(command), design.omega[0].item(), margin_db, sharpness)


def proportional_attenuation(design: ProportionalEQ, delays, t60_bands, margin_db: float = 0.01,
                             sharpness: float = 1000.0, max_attenuation_db: float = 300.0,
                             max_span_db: float = 60.0) -> torch.Tensor:
    """Per-line proportional-EQ attenuation filters from band T60s (Jot 2015).

    Line i gets band gains -60 m_i / (fs T60_b) dB, proportional to its delay m_i. Their
    mean is soft-limited to (-``max_attenuation_db``, 0) and their deviations from it to
    +/-``max_span_db`` / 2 (x / (1 + (x / L)^p)^(1/p), p = 4 and 8: relative changes below
    1e-9 for a mean of -30 dB and deviations of +/-6 dB; far beyond what the cascade can
    follow, the limit keeps its design well conditioned), and realized by the proportional cascade (``design``,
    :class:`flamo.functional.ProportionalEQ`), whose section gains scale with m_i in its
    linear solve and are refined per line. The response at DC, the band centres and Nyquist
    is the band gains to the design's accuracy, so line i decays by 60 dB in T60_b at every
    centre; T60 below the lowest centre is T60_1, above the highest T60_B. As in
    :func:`geq_attenuation`, each cascade's maximum over 1026 check frequencies is held at or
    below -``margin_db`` dB by a smooth broadband correction softplus(s (e + margin)) / s dB,
    so the loop gain of an FDN with a lossless feedback matrix stays below 1. The
    proportional cascade hardly overshoots its band gains, so the defaults are tighter than
    the GEQ's: a margin of 0.01 dB and s = 1000 per dB make the correction below 1e-11 dB
    when the maximum lies 0.03 dB below 0 dB (T60 < 2000 m / fs s, 41 s for m = 1000 samples
    at 48 kHz); a line whose weakest band attenuates less than that per pass is shortened to
    about that T60.

    Parameters
    ----------
    design : ProportionalEQ
    delays : tensor (..., N)
        Delay lengths in samples.
    t60_bands : tensor (..., B) or (..., N, B)
        T60 per band in seconds (> 0).
    margin_db, sharpness : float
        See :func:`geq_attenuation`.
    max_attenuation_db, max_span_db : float
        Limits (dB) of the mean band gain and of the span of band gains of each line.

    Returns
    -------
    torch.Tensor
        (..., N, B + 2, 6) sections.
    """
    command = t60_to_gain_db(delays.unsqueeze(-1), t60_bands, design.fs)  # (..., N, B)
    mean = command.mean(-1, keepdim=True)
    command = (_soft_limit(mean, max_attenuation_db)
               + _soft_limit(command - mean, max_span_db / 2, power=8))
    lowest = 2 * math.pi * design.centres[0].item() / design.fs
    return _below_unity(design.sections(command), lowest, margin_db, sharpness)
