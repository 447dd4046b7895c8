r"""Error model of frequency sampling: time aliasing against rounding noise.

A system sampled at the M = nfft // 2 + 1 points z_k = exp(1j omega_k) / gamma returns, after
the inverse FFT and the gamma^-n compensation (see :mod:`flamo.grid`),

    h_hat[n] = h[n] + sum_{k >= 1} gamma^(k nfft) h[n + k nfft],   n = 0 .. nfft - 1,

plus the rounding noise of the computation (Dal Santo et al., "FLAMO", ICASSP 2025). Two
error terms compete as ``alias_decay_db`` grows:

**Aliasing.** For an impulse response decaying as rho^n, rho = 10^(-3 / (fs T60)) per sample,
each wrap is attenuated by q = (gamma rho)^nfft, and the relative L2 error over the window is

    e_alias = q / (1 - q),     20 log10 q = -(alias_decay_db + 60 nfft / (fs T60)).

For a single pole p this is exact sample by sample: h_hat[n] = p^n / (1 - (gamma p)^nfft)
(:func:`aliased_one_pole`). For a system whose modes all decay at rate rho (an FDN with
per-line gains g_i = rho^(m_i)) it is the expected size of the error.

**Rounding.** A float computation of H(z_k) and of the inverse FFT leaves a relative error of
a few eps per frequency bin (eps = ``torch.finfo(dtype).eps``). By Parseval this is a white
noise floor in the gamma-weighted signal h[n] gamma^n with energy (C eps)^2 ||h gamma^n||^2,
spread evenly over the nfft samples. The compensation multiplies sample n by gamma^-n, so

    e_round = C eps * sqrt( (1 / nfft) sum_{n < nfft} gamma^(-2n) ) * ||h gamma^n|| / ||h||,

where, for h[n] = rho^n over the window,

    (1 / nfft) sum gamma^(-2n) = (10^(alias_decay_db / 10) - 1) / (nfft (gamma^-2 - 1))
                                ~ (10^(alias_decay_db / 10) - 1) / (alias_decay_db ln(10) / 10),
    ||h gamma^n||^2 / ||h||^2   = [(1 - (gamma rho)^(2 nfft)) / (1 - (gamma rho)^2)]
                                  / [(1 - rho^(2 nfft)) / (1 - rho^2)].

The amplification grows as 10^(alias_decay_db / 20) divided by a slowly growing factor; the
second ratio (< 1) says that a slowly decaying response loses more of its energy to the
envelope, so the noise is relatively larger. The factor
C (nfft / 2^15)^alpha (:data:`ROUNDING_CONSTANT`, :data:`ROUNDING_NFFT_EXPONENT`) collects what
the model does not resolve: the error of the loop solve, which grows with the condition number
of I - F B (larger when gamma^m rho^m of a delay line m is closer to 1, i.e. for larger nfft at
the same alias_decay_db), and of the FFT. Both were fitted (least squares in log C) to float32
measurements of FDNs (N = 6, T60 = 0.5, 2, 9 s, points where rounding dominates aliasing by
12 dB) in ``experiments/aliasing_sweep.py``, where the refit is recorded next to the values
used here, and validated there on held-out FDNs with other delays, N, T60 and matrices.

The model is meant for reverberators, whose loops hold delays of hundreds of samples. A
low-order filter with a pole p close to the unit circle is worse conditioned (1 - |gamma p|
is tiny): in float32 its rounding error is about two orders of magnitude above this model
(the sweep records the constant that fits one-pole filters); pass a larger ``constant`` there.
Note also that float32 *stores* such a pole with a relative error of 6e-8, which moves a decay
1 - |p| ~ 1e-5 by about 1 %: no evaluation scheme can undo that.

**Where float32 loses precision** (measured stage by stage in ``experiments/aliasing_fig2.py``,
file ``precision_stages.csv``). Forming the delay phase omega_k m in float32 rounds it by up to
pi m eps radians, a relative error of the response that the compensation amplifies like any other
rounding: this alone caps a naive float32 evaluation near the errors reported for the reference
library. :func:`flamo.functional.delay_response` forms it exactly, as 2 pi ((k m) mod nfft) / nfft
in float64, so what remains is the unavoidable part: storing H(z_k) in complex64 at all
(relative error ~eps per bin), plus the float32 loop solve and inverse FFT, which add a few eps
each. Computing only the inverse FFT and envelope in float64 (``flamo.signal.irfft`` on a
float64 grid applied to the float32 response) recovers only that last part (a few dB), since
the complex64 response itself already carries the floor this model describes.

**Total.** :func:`predicted_error` returns e_alias + e_round (an upper estimate: the two are
uncorrelated, so the measured error lies between their root-sum-square and their sum), and
:func:`recommend_alias_decay_db` the setting that minimizes it.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from .functional.attenuation import t60_to_gain

__all__ = ["ROUNDING_CONSTANT", "ROUNDING_NFFT_EXPONENT", "MAX_ROUNDING_ERROR", "decay_rate",
           "aliased_one_pole", "aliasing_error", "aliasing_error_db", "rounding_error", "rounding_error_bound",
           "max_alias_decay_db", "predicted_error", "recommend_alias_decay_db"]

#: Fitted constant C of the rounding term at nfft = 2^15 (see the module docstring and
#: ``experiments/aliasing_sweep.py``, file ``rounding_fit.csv``).
ROUNDING_CONSTANT = 1.0  # rounded; fitted 0.98 and 1.08 on two draws of the training matrices
#: Fitted exponent alpha of the growth of the rounding term with nfft, (nfft / 2^15)^alpha.
ROUNDING_NFFT_EXPONENT = 0.5  # rounded; fitted 0.50 and 0.44 (the same two draws)

#: Relative L2 rounding error of an impulse response above which a grid warns
#: (:func:`max_alias_decay_db`): 1 %, -40 dB.
MAX_ROUNDING_ERROR = 1e-2

_EPS = {torch.float32: torch.finfo(torch.float32).eps, torch.float64: torch.finfo(torch.float64).eps}


def _check_nfft(nfft, owner):
    if isinstance(nfft, bool) or not isinstance(nfft, numbers.Integral) or nfft < 2:
        raise ValueError(f"{owner}: nfft must be an int >= 2, got {nfft!r}")
    return int(nfft)


def _check_positive(value, name, owner):
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value <= 0):
        raise ValueError(f"{owner}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_db(alias_decay_db, owner):
    db = np.asarray(alias_decay_db, dtype=float)
    if not np.all(np.isfinite(db)) or np.any(db < 0):
        raise ValueError(f"{owner}: alias_decay_db must be finite and >= 0 dB, got {alias_decay_db!r}")
    return db


def _check_dtype(dtype, owner):
    if dtype not in _EPS:
        raise TypeError(f"{owner}: dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return _EPS[dtype]


def decay_rate(t60, fs=48000.0):
    """Per-sample amplitude decay rho = 10^(-3 / (fs T60)) of a response with reverberation
    time ``t60`` seconds (60 dB of decay) at sample rate ``fs`` Hz."""
    t60 = _check_positive(t60, "t60", "decay_rate")
    fs = _check_positive(fs, "fs", "decay_rate")
    one = torch.tensor(1.0, dtype=torch.float64)  # a one-sample delay line, in float64
    return float(t60_to_gain(one, t60, fs))


def aliased_one_pole(pole, nfft, alias_decay_db=0.0):
    """Closed-form frequency-sampled impulse response of H(z) = 1 / (1 - p z^-1).

    Parameters
    ----------
    pole : complex or float
        Pole p, |p| < 1 (or |gamma p| < 1).
    nfft : int
        Window length in samples.
    alias_decay_db : float
        Attenuation per wrap in dB (gamma = 10^(-alias_decay_db / (20 nfft))).

    Returns
    -------
    numpy.ndarray
        (nfft,) float64 (complex128 for a complex pole): h_hat[n] = p^n / (1 - (gamma p)^nfft),
        the geometric sum of the wrapped copies gamma^(k nfft) p^(n + k nfft).
    """
    nfft = _check_nfft(nfft, "aliased_one_pole")
    db = float(_check_db(alias_decay_db, "aliased_one_pole"))
    gamma = 10.0 ** (-db / (20.0 * nfft))
    p = complex(pole) if isinstance(pole, complex) else float(pole)
    if abs(gamma * p) >= 1:
        raise ValueError(f"aliased_one_pole: need |gamma * pole| < 1, got |{gamma:.6g} * {pole!r}| >= 1")
    n = np.arange(nfft)
    return p ** n / (1.0 - (gamma * p) ** nfft)


def aliasing_error(nfft, t60, fs=48000.0, alias_decay_db=0.0):
    """Relative L2 aliasing error q / (1 - q), q = (gamma rho)^nfft (linear, not dB).

    Exact for a one-pole response p^n with p = rho; the expected error of responses whose
    modes all decay at rate rho. ``alias_decay_db`` may be an array (the result then is one).
    """
    q = 10.0 ** _log10_q(nfft, t60, fs, alias_decay_db, "aliasing_error")
    return q / (1.0 - q)


def aliasing_error_db(nfft, t60, fs=48000.0, alias_decay_db=0.0):
    """:func:`aliasing_error` in dB, 20 log10(q / (1 - q)), formed from log q: finite where q
    underflows float64 (a short T60 at a large nfft: T60 = 0.05 s at 48 kHz and nfft = 2^18
    gives -6554 dB, where ``20 * log10(aliasing_error(...))`` is -inf)."""
    log10_q = _log10_q(nfft, t60, fs, alias_decay_db, "aliasing_error_db")
    return 20.0 * log10_q - 20.0 * np.log10(-np.expm1(log10_q * math.log(10.0)))


def _log10_q(nfft, t60, fs, alias_decay_db, owner):
    """log10 (gamma rho)^nfft, validated for ``owner``."""
    nfft = _check_nfft(nfft, owner)
    rho = decay_rate(t60, fs)
    db = _check_db(alias_decay_db, owner)
    return -db / 20.0 + nfft * math.log10(rho)


def rounding_error(nfft, t60, fs=48000.0, alias_decay_db=0.0, dtype=torch.float32,
                   constant=None, nfft_exponent=None):
    """Predicted relative L2 rounding error C (nfft / 2^15)^alpha eps A(gamma) E(gamma, rho).

    A is the RMS of the compensation gamma^-n over the window and E = ||h gamma^n|| / ||h||
    for h = rho^n (see the module docstring). ``constant`` (C) and ``nfft_exponent`` (alpha)
    default to :data:`ROUNDING_CONSTANT` and :data:`ROUNDING_NFFT_EXPONENT`.
    """
    nfft = _check_nfft(nfft, "rounding_error")
    rho = decay_rate(t60, fs)
    db = _check_db(alias_decay_db, "rounding_error")
    eps = _check_dtype(dtype, "rounding_error")
    c = ROUNDING_CONSTANT if constant is None else _check_positive(constant, "constant", "rounding_error")
    alpha = ROUNDING_NFFT_EXPONENT if nfft_exponent is None else float(nfft_exponent)
    c = c * (nfft / 2.0**15) ** alpha
    log_gamma = -db / (20.0 * nfft) * math.log(10.0)  # <= 0
    mean_amp = _mean_compensation(nfft, db)
    log_rho = math.log(rho)

    def energy(log_r):  # sum_{n < nfft} r^(2n)
        return -np.expm1(2 * nfft * log_r) / -np.expm1(2 * log_r)

    ratio = energy(log_gamma + log_rho) / energy(log_rho)
    return c * eps * np.sqrt(mean_amp * ratio)


def _mean_compensation(nfft, db):
    """Mean of gamma^(-2n) over n < nfft, (gamma^(-2 nfft) - 1) / (nfft (gamma^-2 - 1)), 1 at
    gamma = 1 (inf where it overflows float64)."""
    log_gamma = -db / (20.0 * nfft) * math.log(10.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where(db > 0, np.expm1(-2 * nfft * log_gamma) / (nfft * np.expm1(-2 * log_gamma)), 1.0)


def rounding_error_bound(nfft, alias_decay_db=0.0, dtype=torch.float32):
    """The largest :func:`rounding_error` over all decay rates: its factor E = ||h gamma^n|| / ||h||
    (<= 1) set to 1, which a short response attains. A property of the grid alone.

    Returns
    -------
    float or numpy.ndarray
        C (nfft / 2^15)^alpha eps sqrt(mean gamma^(-2n)), linear; inf where gamma^-nfft
        overflows float64.
    """
    nfft = _check_nfft(nfft, "rounding_error_bound")
    db = _check_db(alias_decay_db, "rounding_error_bound")
    eps = _check_dtype(dtype, "rounding_error_bound")
    c = ROUNDING_CONSTANT * (nfft / 2.0**15) ** ROUNDING_NFFT_EXPONENT
    return c * eps * np.sqrt(_mean_compensation(nfft, db))


def max_alias_decay_db(nfft, dtype=torch.float32, max_error=MAX_ROUNDING_ERROR):
    """The largest alias_decay_db whose :func:`rounding_error_bound` stays at ``max_error``.

    Beyond it the compensation gamma^-n amplifies the dtype's rounding noise above
    ``max_error`` of the response (relative L2), for responses that do not grow. A
    :class:`flamo.Grid` warns (:class:`flamo.exceptions.PrecisionWarning`) above it.

    Parameters
    ----------
    nfft : int
    dtype : torch.float32 or torch.float64
    max_error : float, default :data:`MAX_ROUNDING_ERROR`
        Tolerated relative L2 rounding error (linear).

    Returns
    -------
    float
        dB, to 0.01 dB (rounded down); e.g. 122 for float32 and 2^12 points, 300.5 for
        float64.
    """
    max_error = _check_positive(max_error, "max_error", "max_alias_decay_db")
    low, high = 0.0, 1.0
    while rounding_error_bound(nfft, high, dtype) <= max_error:  # the bound grows monotonically
        low, high = high, 2 * high
    if low == 0.0 and rounding_error_bound(nfft, 0.0, dtype) > max_error:
        return 0.0
    while high - low > 0.005:
        mid = (low + high) / 2
        low, high = (mid, high) if rounding_error_bound(nfft, mid, dtype) <= max_error else (low, mid)
    return math.floor(low * 100) / 100


def predicted_error(nfft, t60, fs=48000.0, alias_decay_db=0.0, dtype=torch.float32,
                    constant=None):
    """Predicted total relative L2 error = aliasing_error + rounding_error (linear).

    Parameters
    ----------
    nfft : int
        FFT length (samples).
    t60 : float
        Reverberation time of the response (seconds), i.e. its decay rate.
    fs : float
        Sample rate (Hz).
    alias_decay_db : float or array_like
        Attenuation per wrap (dB, >= 0).
    dtype : torch.float32 or torch.float64
        Precision of the evaluation.
    constant : float, optional
        Rounding constant C (default :data:`ROUNDING_CONSTANT`).

    Returns
    -------
    float or numpy.ndarray
        Relative L2 error of the impulse response over the nfft-sample window (linear; use
        20 log10 for dB), same shape as ``alias_decay_db``.
    """
    return (aliasing_error(nfft, t60, fs, alias_decay_db)
            + rounding_error(nfft, t60, fs, alias_decay_db, dtype, constant))


def recommend_alias_decay_db(nfft, t60, fs=48000.0, dtype=torch.float32, max_db=400.0,
                             resolution_db=0.1, constant=None):
    """The alias_decay_db that minimizes :func:`predicted_error`.

    The aliasing term falls by 20 dB per 20 dB of alias_decay_db while the rounding term
    rises by slightly less, so the total has one minimum, near the point where they cross:
    alias_decay_db ~ (-20 log10(C eps) - 60 nfft / (fs T60)) / 2 plus a small correction.
    It is found by a dense search over [0, ``max_db``] in steps of ``resolution_db``.

    Parameters
    ----------
    nfft : int
        FFT length (samples).
    t60 : float
        Reverberation time (seconds) of the system to evaluate; use the longest one when
        it varies with frequency.
    fs : float
        Sample rate (Hz).
    dtype : torch.float32 or torch.float64
    max_db, resolution_db : float
        Search range and step (dB).
    constant : float, optional
        Rounding constant C (default :data:`ROUNDING_CONSTANT`).

    Returns
    -------
    float
        Recommended alias_decay_db in dB (0 when the response decays enough by itself).

    Examples
    --------
    >>> import flamo
    >>> db = recommend_alias_decay_db(2**15, t60=9.0, fs=48000, dtype=torch.float32)
    >>> grid = flamo.Grid(2**15, fs=48000, alias_decay_db=db)
    >>> 0 < db < 100
    True
    """
    _check_nfft(nfft, "recommend_alias_decay_db")
    max_db = _check_positive(max_db, "max_db", "recommend_alias_decay_db")
    resolution_db = _check_positive(resolution_db, "resolution_db", "recommend_alias_decay_db")
    _check_dtype(dtype, "recommend_alias_decay_db")
    candidates = np.arange(0.0, max_db + resolution_db / 2, resolution_db)
    err = predicted_error(nfft, t60, fs, candidates, dtype, constant)
    return float(candidates[int(np.argmin(err))])
