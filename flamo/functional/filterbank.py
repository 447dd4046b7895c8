"""Fractional-octave filterbank designs: Butterworth band-pass sections and complementary masks.

Two ways to split a signal into octave or third-octave bands:

- :func:`butterworth_bandpass`: the classic IIR band-pass of each band (causal, minimum
  phase; IEC 61260-style analysis filters), designed by the bilinear transform of the
  analog Butterworth prototype with prewarped band edges;
- :func:`band_masks`: complementary zero-phase magnitude masks whose bands sum to exactly 1
  at every frequency (adjacent bands cross over with cos^2 / sin^2 in log frequency), so
  summing the bands reconstructs the input perfectly.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["band_edges", "butterworth_bandpass", "band_masks"]


def _centres(owner, centres):
    c = [float(f) for f in centres]
    if not c or c[0] <= 0 or any(b <= a for a, b in zip(c, c[1:])) or not all(map(math.isfinite, c)):
        raise ValueError(f"{owner}: centres must be finite, positive and increasing, got {c}")
    return c


def band_edges(centres, fraction: int = 1) -> np.ndarray:
    """Band edges f_c 2^(-1 / (2 b)) and f_c 2^(1 / (2 b)) of 1/b-octave bands, in Hz.

    Parameters
    ----------
    centres : sequence of float
        (B,) increasing centre frequencies in Hz.
    fraction : int, default 1
        b: 1 for octave, 3 for third-octave bands.

    Returns
    -------
    numpy.ndarray
        (B, 2) float64 lower and upper edges in Hz.
    """
    c = np.asarray(_centres("band_edges", centres))
    if isinstance(fraction, bool) or not isinstance(fraction, int) or fraction < 1:
        raise ValueError(f"band_edges: fraction must be an int >= 1 (1 octave, 3 third octave), "
                         f"got {fraction!r}")
    half = 2.0 ** (1 / (2 * fraction))
    return np.stack([c / half, c * half], axis=-1)


def butterworth_bandpass(order: int, low: float, high: float, fs: float) -> np.ndarray:
    """Digital Butterworth band-pass filter as second-order sections.

    The analog prototype's poles exp(1j pi (2k + n + 1) / (2n)), k = 0..n-1, are moved to a
    band-pass with centre Omega_0 = sqrt(Omega_1 Omega_2) and bandwidth Omega_2 - Omega_1
    (s -> (s^2 + Omega_0^2) / (s (Omega_2 - Omega_1))), the edges prewarped as
    Omega = 2 fs tan(pi f / fs), and mapped by the bilinear transform z = (2 fs + s) /
    (2 fs - s): 2n poles, n zeros at z = 1 and n at z = -1, |H| = 1 at the centre and
    1 / sqrt(2) (-3.01 dB) at both edges (Oppenheim & Schafer, Discrete-Time Signal
    Processing, 3rd ed., sec. 7.2; the design of ``scipy.signal.butter(..., btype="band")``).

    Parameters
    ----------
    order : int
        n, the order of the prototype (the band-pass has order 2n, n sections).
    low, high : float
        Band edges in Hz, 0 < low < high < fs / 2.
    fs : float
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        (n, 6) float64 sections [b0, b1, b2, a0, a1, a2] (scipy's layout, a0 = 1), the gain
        in the first section.
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"butterworth_bandpass: order must be an int >= 1, got {order!r}")
    if not (fs > 0 and 0 < low < high < fs / 2):
        raise ValueError(f"butterworth_bandpass: need 0 < low < high < fs / 2 = {fs / 2:g} Hz, got "
                         f"low={low!r}, high={high!r}")
    w1, w2 = (2 * fs * math.tan(math.pi * f / fs) for f in (low, high))
    bandwidth, centre2 = w2 - w1, w1 * w2
    k = np.arange(order)
    prototype = np.exp(1j * np.pi * (2 * k + order + 1) / (2 * order))  # left half plane
    half = prototype * bandwidth / 2
    root = np.sqrt(half ** 2 - centre2)
    analog = np.concatenate([half + root, half - root])  # (2n,) band-pass poles
    poles = (2 * fs + analog) / (2 * fs - analog)
    # gain: bandwidth^n s^n / prod(s - p) under the bilinear map
    gain = np.real(bandwidth ** order * (2 * fs) ** order / np.prod(2 * fs - analog))
    is_real = np.abs(poles.imag) <= 1e-12 * np.abs(poles)
    upper = poles[~is_real & (poles.imag > 0)]
    real = np.sort(poles[is_real].real)
    pairs = [(p, np.conj(p)) for p in upper] + [tuple(real[i:i + 2]) for i in range(0, real.size, 2)]
    if len(pairs) != order or any(len(p) != 2 for p in pairs):
        raise ValueError(f"butterworth_bandpass: could not pair the {poles.size} poles into "
                         f"{order} sections (low={low:g}, high={high:g}, fs={fs:g})")
    sos = np.zeros((order, 6))
    for i, (p, q) in enumerate(pairs):
        sos[i, :3] = [1.0, 0.0, -1.0]  # one zero at z = 1 and one at z = -1
        sos[i, 3:] = [1.0, -np.real(p + q), np.real(p * q)]
    sos[0, :3] *= gain
    return sos


def band_masks(freqs: torch.Tensor, centres) -> torch.Tensor:
    """Complementary zero-phase band masks at frequencies ``freqs`` (Hz).

    Band i rises as sin^2 from centre i - 1 to centre i and falls as cos^2 to centre i + 1,
    both in log2 frequency; the lowest band extends to DC and the highest to Nyquist, so
    the masks are in [0, 1] and sum to exactly 1 at every frequency.

    Parameters
    ----------
    freqs : torch.Tensor
        (M,) non-negative frequencies in Hz.
    centres : sequence of float
        (B,) increasing centre frequencies in Hz.

    Returns
    -------
    torch.Tensor
        (M, B) real masks in float64.
    """
    c = _centres("band_masks", centres)
    logf = torch.log2(freqs.to(torch.float64).clamp_min(1e-6))
    logc = torch.log2(torch.tensor(c, dtype=torch.float64, device=logf.device))
    masks = []
    for i in range(len(c)):
        m = torch.ones_like(logf)
        if i > 0:
            t = ((logf - logc[i - 1]) / (logc[i] - logc[i - 1])).clamp(0, 1)
            m = m * torch.sin(0.5 * math.pi * t) ** 2
        if i < len(c) - 1:
            t = ((logf - logc[i]) / (logc[i + 1] - logc[i])).clamp(0, 1)
            m = m * torch.cos(0.5 * math.pi * t) ** 2
        masks.append(m)
    return torch.stack(masks, dim=-1)
