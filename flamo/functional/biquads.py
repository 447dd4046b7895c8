"""Biquad designs from physical parameters: RBJ cookbook, first-order shelves, SVF.

Every design is a pure torch function of tensors with any leading batch dims; the result
is a (..., 6) section [b0 b1 b2 a0 a1 a2] in scipy.signal's layout, differentiable with
respect to every argument, ready for :func:`flamo.functional.sos_response`.

References
----------
R. Bristow-Johnson, "Cookbook formulae for audio EQ biquad filter coefficients"
(the "audio EQ cookbook", W3C Audio EQ note, 2005/2021).
J.-M. Jot, "Proportional parametric equalizers: application to digital reverberation and
environmental audio processing", 139th AES Convention, 2015 (proportional shelves and peak).
V. Valimaki, J. D. Reiss, "All about audio equalization: solutions and frontiers", Applied
Sciences 6(5), 129, 2016 (first-order shelves and the peak filter with its bandwidth at
the mid gain, Sections 3.1-3.2).
B. Kuznetsov, J. D. Parker, F. Esqueda, "Differentiable IIR filters for machine learning
applications", DAFx 2020 (state-variable filter).
S. Lee, H.-S. Choi, K. Lee, "Differentiable artificial reverberation", IEEE/ACM TASLP 30,
2022 (SVF parametrization: tan warping, resonance, output mixing).
"""

from __future__ import annotations

import math

import torch

__all__ = ["BIQUAD_KINDS", "biquad", "rbj_lowpass", "rbj_highpass", "rbj_bandpass", "rbj_notch",
           "rbj_allpass", "rbj_peak", "rbj_lowshelf", "rbj_highshelf", "first_order_lowshelf",
           "first_order_highshelf", "proportional_peak", "svf", "svf_mixing"]


def _tensors(*values):
    """Tensors of one floating dtype: the promoted dtype of the tensor arguments (Python
    numbers are converted exactly to it), so float64 inputs stay float64."""
    dtype = None
    for v in values:
        if isinstance(v, torch.Tensor):
            dtype = v.dtype if dtype is None else torch.promote_types(dtype, v.dtype)
    if dtype is None or not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    return [torch.as_tensor(v, dtype=dtype) if not isinstance(v, torch.Tensor) else v.to(dtype)
            for v in values]


def _prepare(freq, q, fs):
    """w0 = 2 pi f / fs, cos w0 and alpha = sin w0 / (2 Q), broadcast together."""
    freq, q = _tensors(freq, q)
    w0 = 2 * math.pi * freq / fs
    return torch.cos(w0), torch.sin(w0) / (2 * q)


def _amp(gain_db, like):
    """RBJ's A = 10^(gain_db / 40) (square root of the linear peak/shelf gain)."""
    return torch.pow(10.0, _tensors(gain_db, like)[0] / 40.0)


def _section(b0, b1, b2, a0, a1, a2):
    parts = torch.broadcast_tensors(b0, b1, b2, a0, a1, a2)
    return torch.stack(parts, dim=-1)


def rbj_lowpass(freq, q, fs):
    """Second-order lowpass; |H| at ``freq`` equals Q (-3.01 dB for Q = 1/sqrt(2)).

    Parameters
    ----------
    freq : tensor, Hz, in (0, fs/2). q : tensor, > 0. fs : float, Hz.

    Returns
    -------
    torch.Tensor
        (..., 6) section.
    """
    c, alpha = _prepare(freq, q, fs)
    return _section((1 - c) / 2, 1 - c, (1 - c) / 2, 1 + alpha, -2 * c, 1 - alpha)


def rbj_highpass(freq, q, fs):
    """Second-order highpass; |H| at ``freq`` equals Q."""
    c, alpha = _prepare(freq, q, fs)
    return _section((1 + c) / 2, -(1 + c), (1 + c) / 2, 1 + alpha, -2 * c, 1 - alpha)


def rbj_bandpass(freq, q, fs):
    """Bandpass with 0 dB peak gain at ``freq`` (cookbook's "constant 0 dB peak gain")."""
    c, alpha = _prepare(freq, q, fs)
    return _section(alpha, torch.zeros_like(alpha), -alpha, 1 + alpha, -2 * c, 1 - alpha)


def rbj_notch(freq, q, fs):
    """Notch: zero of transmission at ``freq``, unit gain at DC and Nyquist."""
    c, alpha = _prepare(freq, q, fs)
    one = torch.ones_like(alpha)
    return _section(one, -2 * c, one, 1 + alpha, -2 * c, 1 - alpha)


def rbj_allpass(freq, q, fs):
    """Second-order allpass, phase -pi at ``freq``."""
    c, alpha = _prepare(freq, q, fs)
    return _section(1 - alpha, -2 * c, 1 + alpha, 1 + alpha, -2 * c, 1 - alpha)


def rbj_peak(freq, q, gain_db, fs):
    """Peaking EQ: exactly ``gain_db`` at ``freq``, 0 dB at DC and Nyquist."""
    c, alpha = _prepare(freq, q, fs)
    A = _amp(gain_db, alpha)
    return _section(1 + alpha * A, -2 * c, 1 - alpha * A, 1 + alpha / A, -2 * c, 1 - alpha / A)


def rbj_lowshelf(freq, q, gain_db, fs):
    """Second-order low shelf: ``gain_db`` at DC, 0 dB at Nyquist, half the dB gain at ``freq``."""
    c, alpha = _prepare(freq, q, fs)
    A = _amp(gain_db, alpha)
    s = 2 * torch.sqrt(A) * alpha
    return _section(A * ((A + 1) - (A - 1) * c + s), 2 * A * ((A - 1) - (A + 1) * c),
                    A * ((A + 1) - (A - 1) * c - s), (A + 1) + (A - 1) * c + s,
                    -2 * ((A - 1) + (A + 1) * c), (A + 1) + (A - 1) * c - s)


def rbj_highshelf(freq, q, gain_db, fs):
    """Second-order high shelf: 0 dB at DC, ``gain_db`` at Nyquist, half the dB gain at ``freq``."""
    c, alpha = _prepare(freq, q, fs)
    A = _amp(gain_db, alpha)
    s = 2 * torch.sqrt(A) * alpha
    return _section(A * ((A + 1) + (A - 1) * c + s), -2 * A * ((A - 1) + (A + 1) * c),
                    A * ((A + 1) + (A - 1) * c - s), (A + 1) - (A - 1) * c + s,
                    2 * ((A - 1) - (A + 1) * c), (A + 1) - (A - 1) * c - s)


def first_order_lowshelf(freq, gain_db, fs):
    """First-order low shelf, bilinear transform (prewarped at ``freq``) of
    H(s) = (s + sqrt(G)) / (s + 1 / sqrt(G)), s normalized to the cutoff.

    Gain G = 10^(gain_db/20) at DC, 1 at Nyquist, sqrt(G) (half the dB gain) at ``freq``;
    the magnitude is monotone between, and the pole (1 - K/sqrt(G)) / (1 + K/sqrt(G)),
    K = tan(pi f / fs), lies inside the unit circle for every f in (0, fs/2).

    This is the proportional shelf of Jot (2015) and Valimaki & Reiss (2016): the crossover
    sits at half the dB gain for every gain, and the gains G and 1/G give reciprocal
    responses, so the dB response scales (approximately) in proportion to ``gain_db``.
    """
    freq, gain_db = _tensors(freq, gain_db)
    k = torch.tan(math.pi * freq / fs)
    r = torch.pow(10.0, gain_db / 40.0)  # sqrt(G)
    zero = torch.zeros_like(k * r)
    return _section(k * r + 1, k * r - 1, zero, k / r + 1, k / r - 1, zero)


def first_order_highshelf(freq, gain_db, fs):
    """First-order high shelf: H(s) = (sqrt(G) s + 1) / (s / sqrt(G) + 1), bilinear at
    ``freq``: 1 at DC, G at Nyquist, sqrt(G) at ``freq``, monotone, pole inside the circle;
    proportional like :func:`first_order_lowshelf`."""
    freq, gain_db = _tensors(freq, gain_db)
    k = torch.tan(math.pi * freq / fs)
    r = torch.pow(10.0, gain_db / 40.0)
    zero = torch.zeros_like(k * r)
    return _section(r + k, k - r, zero, 1 / r + k, k - 1 / r, zero)


def proportional_peak(freq, bandwidth, gain_db, fs):
    """Proportional peak (presence) filter: G at ``freq``, sqrt(G) at both band edges.

    The bilinear transform of H(s) = (s^2 + sqrt(G) B s + W^2) / (s^2 + B s / sqrt(G) + W^2)
    (Jot 2015; Valimaki & Reiss 2016, whose peak filter with the bandwidth defined at the
    mid gain is the same section), with t = tan(pi ``bandwidth`` / fs) and c = cos(w0):

        b = [1 + t sqrt(G), -2 c, 1 - t sqrt(G)],  a = [1 + t / sqrt(G), -2 c, 1 - t / sqrt(G)].

    On the unit circle |H|^2 = (1 + G x^2) / (1 + x^2 / G) with x = t sin(w) / |cos(w) - c|:
    exactly 1 (0 dB) at DC and Nyquist, G at w0 and sqrt(G), half the dB gain for every G,
    at the two edges w1 < w0 < w2 with w2 - w1 = 2 pi ``bandwidth`` / fs and cos(w0) =
    cos((w1 + w2) / 2) / cos((w2 - w1) / 2). G and 1/G give reciprocal responses. The poles
    are inside the unit circle for 0 < bandwidth < fs/2 and any G > 0 (a2/a0 = (1 - t/sqrt(G))
    / (1 + t/sqrt(G)) lies in (-1, 1) and |a1| < a0 + a2 = 2).

    Parameters
    ----------
    freq : tensor
        Centre frequency in Hz, in (0, fs/2).
    bandwidth : tensor
        Distance in Hz between the two half-dB-gain edges, in (0, fs/2).
    gain_db : tensor
        Gain at the centre in dB.
    fs : float
        Sample rate in Hz.

    Returns
    -------
    torch.Tensor
        (..., 6) sections, the broadcast shape of the arguments.
    """
    freq, bandwidth, gain_db = _tensors(freq, bandwidth, gain_db)
    t = torch.tan(math.pi * bandwidth / fs)
    c = torch.cos(2 * math.pi * freq / fs)
    r = torch.pow(10.0, gain_db / 40.0)  # sqrt(G)
    return _section(1 + t * r, -2 * c, 1 - t * r, 1 + t / r, -2 * c, 1 - t / r)


#: kind -> (design function, uses Q, uses gain)
_DESIGNS = {
    "lowpass": (rbj_lowpass, True, False), "highpass": (rbj_highpass, True, False),
    "bandpass": (rbj_bandpass, True, False), "notch": (rbj_notch, True, False),
    "allpass": (rbj_allpass, True, False), "peak": (rbj_peak, True, True),
    "lowshelf": (rbj_lowshelf, True, True), "highshelf": (rbj_highshelf, True, True),
    "lowshelf1": (first_order_lowshelf, False, True), "highshelf1": (first_order_highshelf, False, True),
}
#: Names accepted by :func:`biquad` and :class:`flamo.Biquad`.
BIQUAD_KINDS = tuple(_DESIGNS)


def biquad(kind: str, freq, q, gain_db, fs: float) -> torch.Tensor:
    """Design one section per element of the broadcast (freq, q, gain_db).

    Parameters
    ----------
    kind : str
        One of :data:`BIQUAD_KINDS`: ``lowpass``, ``highpass``, ``bandpass``, ``notch``,
        ``allpass``, ``peak``, ``lowshelf``, ``highshelf`` (RBJ cookbook) or ``lowshelf1``,
        ``highshelf1`` (first order, Q ignored).
    freq : torch.Tensor
        Cutoff or centre frequency in Hz, in (0, fs/2).
    q : torch.Tensor
        Quality factor, > 0 (ignored by first-order kinds).
    gain_db : torch.Tensor
        Gain in dB of peak and shelf kinds (ignored by the others).
    fs : float
        Sample rate in Hz.

    Returns
    -------
    torch.Tensor
        (..., 6) sections [b0 b1 b2 a0 a1 a2]; the RBJ designs have every pole strictly
        inside the unit circle for freq in (0, fs/2) and Q > 0 (a2/a0 and a1/a0 lie inside
        the stability triangle because alpha > 0 and |cos w0| < 1).
    """
    if kind not in _DESIGNS:
        raise ValueError(f"biquad: kind must be one of {BIQUAD_KINDS}, got {kind!r}")
    fn, uses_q, uses_gain = _DESIGNS[kind]
    freq, q, gain_db = torch.broadcast_tensors(*_tensors(freq, q, gain_db))
    args = [freq] + [q] * uses_q + [gain_db] * uses_gain
    return fn(*args, fs)


def svf(freq, resonance, m_lp, m_bp, m_hp, fs) -> torch.Tensor:
    """State-variable filter as a biquad (Kuznetsov et al. 2020; Lee et al. 2022).

    The analog prototype H(s) = (m_hp s^2 + m_bp s + m_lp) / (s^2 + 2 R s + 1), s normalized
    to the cutoff, mixes the highpass, bandpass and lowpass outputs of an SVF. The bilinear
    transform with tan warping g = tan(pi f / fs) gives

        b = [g^2 m_lp + g m_bp + m_hp, 2 g^2 m_lp - 2 m_hp, g^2 m_lp - g m_bp + m_hp]
        a = [g^2 + 2 R g + 1, 2 g^2 - 2, g^2 - 2 R g + 1].

    For g > 0 and R > 0 the poles are strictly inside the unit circle (|a2/a0| < 1 and
    |a1| < a0 + a2), whatever the mixing coefficients.

    Parameters
    ----------
    freq : tensor, Hz in (0, fs/2). resonance : tensor R > 0 (R = 1/(2Q)).
    m_lp, m_bp, m_hp : tensors, mixing coefficients (any real values).
    fs : float, Hz.

    Returns
    -------
    torch.Tensor
        (..., 6) sections.
    """
    freq, resonance, m_lp, m_bp, m_hp = _tensors(freq, resonance, m_lp, m_bp, m_hp)
    g = torch.tan(math.pi * freq / fs)
    g2 = g * g
    two_rg = 2 * resonance * g
    return _section(g2 * m_lp + g * m_bp + m_hp, 2 * (g2 * m_lp - m_hp), g2 * m_lp - g * m_bp + m_hp,
                    g2 + two_rg + 1, 2 * (g2 - 1), g2 - two_rg + 1)


def svf_mixing(kind: str, resonance, gain_db=0.0):
    """Mixing coefficients (m_lp, m_bp, m_hp) that make an SVF a classic filter.

    ``lowpass`` (1, 0, 0), ``highpass`` (0, 0, 1), ``bandpass`` (0, 2R, 0) (0 dB at the
    cutoff), ``notch`` (1, 0, 1), ``peak`` (1, 2 R G, 1) (gain G exactly at the cutoff),
    ``lowshelf`` (G, 2 R sqrt(G), 1) and ``highshelf`` (1, 2 R sqrt(G), G)
    (G at DC / Nyquist), with G = 10^(gain_db/20).
    """
    r = torch.as_tensor(resonance)
    G = torch.pow(10.0, torch.as_tensor(gain_db, dtype=r.dtype) / 20.0)
    one, zero = torch.ones_like(r * G), torch.zeros_like(r * G)
    table = {"lowpass": (one, zero, zero), "highpass": (zero, zero, one),
             "bandpass": (zero, 2 * r * one, zero), "notch": (one, zero, one),
             "peak": (one, 2 * r * G, one), "lowshelf": (G, 2 * r * torch.sqrt(G), one),
             "highshelf": (one, 2 * r * torch.sqrt(G), G)}
    if kind not in table:
        raise ValueError(f"svf_mixing: kind must be one of {tuple(table)}, got {kind!r}")
    return table[kind]
