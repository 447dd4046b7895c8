r"""The workloads as plain numbers, and their float64 ground truth (numpy and scipy only).

A *case* is a small JSON-able dict, e.g. ``{"workload": "fdn", "n": 16, "nfft": 131072,
"seed": 0}``; :func:`numbers` turns it into the arrays every adapter builds its system from,
so all methods of a case run the same system. The ground truth never uses any library under
test: the FDN impulse response is a float64 block recursion over the shortest delay, the
cascade is :func:`scipy.signal.sosfilt`, the colorless FDN's response is the closed form
c^T (I - D(z) A)^-1 D(z) b solved per frequency.

Workloads
---------
``fdn``
    H(z) = c^T (I - D(z) A)^-1 D(z) b, D(z) = diag(g_i z^-m_i), A orthogonal (stored as a
    free matrix), output: the impulse response of length nfft, loss: mean((h - t)^2) against
    a fixed decaying-noise target t.
``fdn_geq``
    The same FDN with an octave graphic EQ per line in the loop instead of g, in one of two
    arrangements: ``forward`` (Recursion(Series(Delay, GEQ), A)) or ``feedback`` (the GEQ
    after the matrix in the feedback path, Recursion(Delay, Series(A, GEQ)), as FLAMO's
    examples write it). The command gains -60 m_i / (fs T60_b) dB come from one T60 per
    octave band; each library designs its own sections from them (the designs differ), and
    each is checked against the ground truth of the sections it realized.
``cascade``
    8 biquads per channel (a different stable cascade per channel), filtering white noise
    of ``length`` samples; loss: mean((y - t)^2).
``colorless``
    One training step of the colorless FDN of FLAMO's example (lossless loop, orthogonal
    matrix expm(skew(W)), alias decay 30 dB): Adam on mean((|H| - 1)^2) + 0.2 sparsity(A)
    over the whole grid.
``fit``
    Time to target: an 8-biquad cascade (:func:`fit_sos`, one shared stable
    parametrization) fitted to a target magnitude (a Butterworth lowpass or a random stable
    cascade) by Adam on the log-magnitude error, :func:`fit_loss`.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import scipy.signal

FS = 48000
#: Reverberation time of the FDN workloads (s): g_i = 10^(-3 m_i / (fs T60)).
T60 = 1.0
#: Delay lengths are drawn (distinct) from [low, high) samples.
DELAY_RANGE = (500, 3000)
#: Time-aliasing mitigation of every frequency-sampling method on the FDN workloads (dB per
#: wrap); FLAMO's examples use 30.
ALIAS_DECAY_DB = 30.0
#: Colorless FDN delays: FLAMO's colorless example (also the paper's N = 6 set).
COLORLESS_DELAYS = {6: [887, 911, 941, 1699, 1951, 2053]}
COLORLESS_SPARSITY_WEIGHT = 0.2
SECTIONS = 8
#: Octave-band T60 profile of the GEQ workload, 31.25 Hz .. 16 kHz (s).
GEQ_T60 = tuple(np.geomspace(2.0, 0.5, 10).tolist())
#: The slowest pole of the random cascades; sets the FFT size of frequency sampling.
CASCADE_MAX_RADIUS = 0.99
#: Tail level the frequency-sampling FFT size must reach before wrapping (dB).
TAIL_DB = 140.0
#: Stable parametrization of the fitted cascades: pole radius r_max * sigmoid(rho).
FIT_MAX_RADIUS = 0.999
#: Floor of the log-magnitude loss of the fit workload (|H| + eps, eps = -60 dB).
FIT_EPS = 1e-3


def _rng(case: dict, *salt: int) -> np.random.Generator:
    return np.random.default_rng([int(case.get("seed", 0)), *salt])


def next_pow2(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1, n))))


def cascade_nfft(length: int) -> int:
    """FFT size of frequency sampling for a cascade filtering ``length`` samples: the next
    power of two >= length + the samples the slowest pole takes to decay by TAIL_DB."""
    tail = math.ceil(TAIL_DB / 20 / -math.log10(CASCADE_MAX_RADIUS))
    return next_pow2(length + tail)


def gamma(nfft: int, alias_decay_db: float = ALIAS_DECAY_DB) -> float:
    """Radius factor of the sampling circle |z| = 1/gamma (each wrap alias_decay_db down)."""
    return 10 ** (-alias_decay_db / (20 * nfft))


# -- numbers ----------------------------------------------------------------------------
def _orthogonal(rng, n):
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def _stable_sections(rng, k, r_lo, r_hi, zero_r=(0.5, 1.0)):
    """(k, 6) sections with poles of radius [r_lo, r_hi), each scaled to peak |H_k| = 1."""
    r, th = rng.uniform(r_lo, r_hi, k), rng.uniform(0.02, math.pi - 0.02, k)
    zr, zt = rng.uniform(*zero_r, k), rng.uniform(0, math.pi, k)
    b = np.stack([np.ones(k), -2 * zr * np.cos(zt), zr ** 2], axis=1)
    a = np.stack([np.ones(k), -2 * r * np.cos(th), r ** 2], axis=1)
    sos = np.concatenate([b, a], axis=1)
    for s in sos:
        _, h = scipy.signal.sosfreqz(s[None], worN=4096)
        s[:3] /= np.abs(h).max()
    return sos


def numbers(case: dict) -> dict:
    """The arrays of ``case`` (float64 numpy; delays as int64), see the module docstring.

    Returns
    -------
    dict
        fdn / fdn_geq / colorless: ``m`` (N,), ``A`` (N, N), ``b``, ``c`` (N,), and ``g``
        (N,) (fdn), ``command_db`` (N, 10) and ``t60_bands`` (10,) (fdn_geq), ``W`` (N, N)
        with A = expm(W - W^T) (colorless); ``target`` (nfft,) for fdn / fdn_geq.
        cascade: ``sos`` (C, 8, 6), ``x`` (C, T), ``target`` (C, T).
        fit: ``target_mag`` (M,), ``theta0`` (8, 5) initial parameters of :func:`fit_sos`.
    """
    w = case["workload"]
    if w in ("fdn", "fdn_geq"):
        n, nfft = case["n"], case["nfft"]
        rng = _rng(case, 1, n)
        m = np.sort(rng.choice(np.arange(*DELAY_RANGE), size=n, replace=False)).astype(np.int64)
        out = dict(m=m, A=_orthogonal(rng, n), b=rng.normal(size=n) / math.sqrt(n),
                   c=rng.normal(size=n) / math.sqrt(n))
        t = np.arange(nfft)
        out["target"] = 0.05 * rng.normal(size=nfft) * 10 ** (-3 * t / (FS * T60))
        if w == "fdn":
            out["g"] = 10 ** (-3 * m / (FS * T60))
        else:
            out["t60_bands"] = np.asarray(GEQ_T60)
            out["command_db"] = -60.0 * m[:, None] / (FS * out["t60_bands"][None, :])
        return out
    if w == "colorless":
        n = case["n"]
        rng = _rng(case, 3, n)
        m = np.asarray(COLORLESS_DELAYS.get(n) or np.sort(rng.choice(np.arange(*DELAY_RANGE), n,
                                                                     replace=False)), np.int64)
        W = np.triu(rng.uniform(-1, 1, (n, n)) / math.sqrt(n), 1)
        S = W - W.T
        return dict(m=m, W=W, A=scipy.linalg.expm(S), b=rng.normal(size=n) / n,
                    c=rng.normal(size=n) / n)
    if w == "cascade":
        ch, length = case["channels"], case["length"]
        rng = _rng(case, 2, ch)
        sos = np.stack([_stable_sections(rng, SECTIONS, 0.5, CASCADE_MAX_RADIUS) for _ in range(ch)])
        return dict(sos=sos, x=rng.normal(size=(ch, length)), target=0.1 * rng.normal(size=(ch, length)))
    if w == "fit":
        nfft = case["nfft"]
        if case["target"] == "butterworth":
            target = scipy.signal.butter(2 * SECTIONS, 0.25, output="sos")
        else:
            target = _stable_sections(_rng(case, 4, int(case["target"])), SECTIONS, 0.5, 0.95,
                                      zero_r=(0.5, 1.2))
        omega = 2 * np.pi * np.arange(nfft // 2 + 1) / nfft
        _, h = scipy.signal.sosfreqz(target, worN=omega)
        theta0 = np.zeros((SECTIONS, 5))
        theta0[:, 0] = 1.0
        theta0[:, 3] = np.log(0.7 / FIT_MAX_RADIUS / (1 - 0.7 / FIT_MAX_RADIUS))  # r = 0.7
        theta0[:, 4] = np.linspace(0.2, 2.9, SECTIONS)
        return dict(target_mag=np.abs(h), target_sos=target, theta0=theta0)
    raise ValueError(f"numbers: unknown workload {w!r}")


# -- shared parametrization and loss of the fit workload --------------------------------
def fit_sos(theta, lib=np):
    """(K, 5) parameters [b0, b1, b2, rho, phi] -> (K, 6) sections with a0 = 1 and poles
    r e^{+-j phi}, r = FIT_MAX_RADIUS * sigmoid(rho): stable for every value.

    ``lib`` is ``numpy`` or ``torch`` (the same formula in both, for the float64 reference
    and for every differentiable method)."""
    sig = 1 / (1 + lib.exp(-theta[..., 3]))
    r = FIT_MAX_RADIUS * sig
    a1 = -2 * r * lib.cos(theta[..., 4])
    a2 = r * r
    one = theta[..., 0] * 0 + 1
    return lib.stack([theta[..., 0], theta[..., 1], theta[..., 2], one, a1, a2], -1)


def fit_loss(mag, target_mag, lib=np):
    """mean (20 log10(|H| + eps) - 20 log10(|T| + eps))^2 in dB^2, eps = FIT_EPS."""
    d = 20 * lib.log10(mag + FIT_EPS) - 20 * lib.log10(target_mag + FIT_EPS)
    return (d * d).mean()


def fit_true_loss(theta, target_mag, nfft) -> float:
    """:func:`fit_loss` of parameters ``theta`` (K, 5) in float64 (scipy.signal.sosfreqz)."""
    omega = 2 * np.pi * np.arange(nfft // 2 + 1) / nfft
    _, h = scipy.signal.sosfreqz(fit_sos(np.asarray(theta, np.float64)), worN=omega)
    return float(fit_loss(np.abs(h), target_mag))


# -- ground truth -----------------------------------------------------------------------
def fdn_impulse_response(m, A, b, c, length, g=None, sos=None, arrangement="forward"):
    """float64 impulse response of an FDN by a block recursion over the shortest delay.

    With v the delay-line inputs and w the filtered delay-line outputs:
    ``forward``: w_i = F_i(z^-m_i v_i), v = A w + b x;  ``feedback``: w_i = z^-m_i v_i,
    v = F(A w) + b x; y = c^T w in both. F_i is g_i times the cascade sos[i] (either may
    be None). Within a block of at most min(m) samples every delayed sample is already
    known, so the recursion runs block by block exactly (scipy.signal.sosfilt keeps each
    filter's state across blocks).

    Parameters
    ----------
    m : (N,) int, A : (N, N), b, c : (N,), g : (N,) or None, sos : (N, K, 6) or None
    length : int
    arrangement : {"forward", "feedback"}

    Returns
    -------
    numpy.ndarray
        (length,) float64.
    """
    m = np.asarray(m, np.int64)
    A, b, c = (np.asarray(v, np.float64) for v in (A, b, c))
    n, mmax, block = len(m), int(m.max()), int(m.min())
    if arrangement not in ("forward", "feedback"):
        raise ValueError(f"fdn_impulse_response: arrangement must be 'forward' or 'feedback', "
                         f"got {arrangement!r}")
    v = np.zeros((n, mmax + length))  # v[:, mmax + t] is the delay-line input at time t
    y = np.zeros(length)
    if sos is not None:  # any nonzero a0 (scipy.signal.sosfilt wants a0 = 1)
        sos = np.asarray(sos, np.float64)
        sos = sos / sos[..., 3:4]
    zi = None if sos is None else [np.zeros((sos.shape[1], 2)) for _ in range(n)]
    rows = np.arange(n)[:, None]

    def filt(seg):
        if sos is not None:
            out = np.empty_like(seg)
            for i in range(n):
                out[i], zi[i] = scipy.signal.sosfilt(sos[i], seg[i], zi=zi[i])
            seg = out
        return seg if g is None else seg * np.asarray(g, np.float64)[:, None]

    for t in range(0, length, block):
        L = min(block, length - t)
        delayed = v[rows, mmax + t - m[:, None] + np.arange(L)[None, :]]
        x = np.zeros(L)
        if t == 0:
            x[0] = 1.0
        if arrangement == "forward":
            w = filt(delayed)
            v[:, mmax + t:mmax + t + L] = A @ w + b[:, None] * x
        else:
            w = delayed
            v[:, mmax + t:mmax + t + L] = filt(A @ w) + b[:, None] * x
        y[t:t + L] = c @ w
    return y


def colorless_response(m, A, b, c, nfft, alias_decay_db=ALIAS_DECAY_DB):
    """float64 H(z) = c^T (I - D(z) A)^-1 D(z) b, D = diag(z^-m), lossless, at the M = nfft/2+1
    points z_k = e^{j 2 pi k / nfft} / gamma; (M,) complex128."""
    m = np.asarray(m, np.float64)
    k = np.arange(nfft // 2 + 1)[:, None]
    phase = 2 * np.pi * np.remainder(k * m[None, :], nfft) / nfft
    d = gamma(nfft, alias_decay_db) ** m[None, :] * np.exp(-1j * phase)  # (M, N)
    loop = np.eye(len(m))[None] - d[:, :, None] * np.asarray(A)[None]
    x = np.linalg.solve(loop, (d * np.asarray(b)[None, :])[..., None])[..., 0]
    return x @ np.asarray(c)


def sparsity(A) -> float:
    """(N sqrt(N) - sum |A_ij|) / (N (sqrt(N) - 1)) (0 dense, 1 permutation)."""
    n = A.shape[-1]
    return float((n * math.sqrt(n) - np.abs(A).sum()) / (n * (math.sqrt(n) - 1)))


def cascade_output(sos, x):
    """(C, T) float64 output of one cascade per channel (scipy.signal.sosfilt)."""
    sos = np.asarray(sos, np.float64)
    sos = sos / sos[..., 3:4]
    x = np.asarray(x, np.float64)
    return np.stack([scipy.signal.sosfilt(np.ascontiguousarray(s), np.ascontiguousarray(xi))
                     for s, xi in zip(sos, x)])


def truth(case: dict, physical: dict) -> np.ndarray:
    """float64 ground-truth output of ``case`` for the physical numbers an adapter realized.

    ``physical`` holds what the output depends on: fdn: m, A, b, c, g; fdn_geq: m, A, b, c,
    sos (N, K, 6); cascade: sos, x; colorless: m, A, b, c.
    """
    w = case["workload"]
    p = physical
    if w == "fdn":
        return fdn_impulse_response(p["m"], p["A"], p["b"], p["c"], case["nfft"], g=p["g"])
    if w == "fdn_geq":
        return fdn_impulse_response(p["m"], p["A"], p["b"], p["c"], case["nfft"], sos=p["sos"],
                                    arrangement=case["arrangement"])
    if w == "cascade":
        return cascade_output(p["sos"], p["x"])
    if w == "colorless":
        return np.abs(colorless_response(p["m"], p["A"], p["b"], p["c"], case["nfft"]))
    raise ValueError(f"truth: no ground truth for workload {w!r}")


def loss(case: dict, output: np.ndarray, physical: dict, nums: dict) -> float:
    """The workload's loss of an output (float64), the function every method differentiates."""
    w = case["workload"]
    if w in ("fdn", "fdn_geq", "cascade"):
        return float(np.mean((output - nums["target"]) ** 2))
    if w == "colorless":
        return float(np.mean((output - 1) ** 2) + COLORLESS_SPARSITY_WEIGHT * sparsity(physical["A"]))
    raise ValueError(f"loss: no loss for workload {w!r}")


def relative_error(estimate, reference) -> float:
    """||estimate - reference|| / ||reference|| (float64)."""
    estimate = np.asarray(estimate, np.float64)
    reference = np.asarray(reference, np.float64)
    return float(np.linalg.norm(estimate - reference) / np.linalg.norm(reference))
