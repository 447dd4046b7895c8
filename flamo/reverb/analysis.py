r"""Analysis of FDN impulse responses: modal decomposition and echo density.

Modal decomposition
-------------------
For the FDN :math:`H(z) = d + c^T (I - D(z) A)^{-1} D(z) b` with integer delays m_i and
per-line gains g_i, :math:`D(z) = \mathrm{diag}(g_i z^{-m_i})`, we have
:math:`(I - D A)^{-1} D = (D^{-1} - A)^{-1}`, so

.. math::
    H(z) = d + c^T P(z)^{-1} b, \qquad P(z) = \mathrm{diag}(z^{m_i} / g_i) - A,

a polynomial matrix whose determinant has degree :math:`\sum_i m_i` (Schlecht & Habets,
"Modal decomposition of feedback delay networks", IEEE TSP 67(20), 2019). The poles are the
roots of det P(z); they are found all at once with the Ehrlich-Aberth iteration, using the
Newton ratio :math:`p / p' = 1 / \mathrm{tr}(P(z)^{-1} P'(z))` (Jacobi's formula) so that the
determinant is never expanded into coefficients. At a simple pole lambda with right and left
null vectors v, u of P(lambda), :math:`P(z)^{-1} \approx v u^H / ((z - \lambda) u^H P'(\lambda) v)`,
hence the residue

.. math::
    \rho = \frac{(c^T v)(u^H b)}{u^H P'(\lambda) v}, \qquad
    H(z) = d + \sum_i \frac{\rho_i}{z - \lambda_i}, \qquad
    h[n] = d\,\delta[n] + \sum_i \rho_i \lambda_i^{n - 1}.

The distribution of |rho_i| is the "modal excitation" whose spread the colorless-FDN
optimization narrows (Dal Santo, Prawda, Schlecht, Valimaki, DAFx 2023).

Echo density
------------
The normalized echo density profile of Abel & Huang ("A simple, robust measure of
reverberation echo density", AES 121st Conv., 2006): in a sliding window w (20 ms Hann),
the weighted fraction of samples whose magnitude exceeds the window's standard deviation,
divided by erfc(1 / sqrt(2)) (the fraction expected for Gaussian noise). Gaussian noise gives
about 1, sparse early reflections give about 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import erfc

from .structure import fdn_structure

__all__ = ["ModalDecomposition", "fdn_modes", "modal_decomposition", "echo_density"]

# Elements of one (rows x roots) block of the Aberth sum: bounds its memory (16 B each).
_ABERTH_BLOCK = 2**21


@dataclass
class ModalDecomposition:
    """Poles and residues of an FDN, H(z) = d + sum_i residues_i / (z - poles_i).

    Attributes
    ----------
    poles : numpy.ndarray
        (K,) complex poles, K = sum of the delays (conjugate pairs for a real FDN).
    residues : numpy.ndarray
        (K,) complex residues rho_i of H at each pole (z-domain form above). The residues
        of the form sum r_i / (1 - lambda_i z^-1) (scipy.signal.residuez) are rho_i / lambda_i.
    direct : float
        d, the value of H at z = infinity.
    iterations : int
        Aberth iterations run.
    converged : bool
        True when every correction fell below the tolerance.
    """

    poles: np.ndarray
    residues: np.ndarray
    direct: float
    iterations: int
    converged: bool

    def transfer(self, z) -> np.ndarray:
        """H(z) = d + sum_i rho_i / (z - lambda_i) at the points z (any shape)."""
        z = np.asarray(z, dtype=complex)
        flat = z.reshape(-1)
        out = np.empty(flat.shape, dtype=complex)
        step = max(1, _ABERTH_BLOCK // max(1, self.poles.size))
        for s in range(0, flat.size, step):
            zz = flat[s:s + step, None]
            out[s:s + step] = self.direct + (self.residues / (zz - self.poles)).sum(-1)
        return out.reshape(z.shape)

    def impulse_response(self, length: int) -> np.ndarray:
        """h[n] = d delta[n] + sum_i rho_i lambda_i^(n-1), n = 0 .. length-1 (real part)."""
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
            raise ValueError(f"impulse_response: length must be an int >= 1, got {length!r}")
        h = np.zeros(length)
        h[0] = self.direct
        state = self.residues.copy()  # rho_i lambda_i^(n-1) at n = 1
        block = 256
        powers = self.poles[:, None] ** np.arange(block)  # (K, block)
        for start in range(1, length, block):
            count = min(block, length - start)
            h[start:start + count] = np.real(state @ powers[:, :count])
            state = state * self.poles ** block
        return h


def _loop_matrix(z, m, inv_g, A):
    """P(z) = diag(z^m / g) - A and the diagonal of P'(z), for points z (K,)."""
    zm = z[:, None] ** m  # (K, N)
    P = np.broadcast_to(-A, (z.size,) + A.shape).copy()
    diag = zm * inv_g
    idx = np.arange(m.size)
    P[:, idx, idx] += diag
    dP = m * diag / z[:, None]
    return P, dP


def _log_derivative(z, m, inv_g, A):
    """p'(z) / p(z) = trace(P^-1 P') for p = det P (Jacobi's formula), vectorized over z (K,).

    Inside the unit circle P itself is well scaled. Outside, z^m can overflow, so the
    rows are scaled by g z^-m: Q = I - diag(g z^-m) A and P^-1 P' = Q^-1 diag(m / z).
    """
    n = m.size
    idx = np.arange(n)
    outside = np.abs(z) > 1
    M = np.empty((z.size, n, n), dtype=complex)
    diag = np.empty((z.size, n), dtype=complex)  # P'_ii (inside) or m_i / z (outside)
    with np.errstate(all="ignore"):
        zi, zo = z[~outside, None], z[outside, None]
        zm = zi ** m * inv_g  # z^m / g
        inside_m = np.broadcast_to(-A, (zi.shape[0], n, n)).copy()
        inside_m[:, idx, idx] += zm
        M[~outside], diag[~outside] = inside_m, m * zm / zi
        outside_m = -(zo ** (-m) / inv_g)[:, :, None] * A  # -diag(g z^-m) A
        outside_m[:, idx, idx] += 1
        M[outside], diag[outside] = outside_m, m / zo
        try:
            trace = np.einsum("kii,ki->k", np.linalg.inv(M), diag)
        except np.linalg.LinAlgError:  # some point hit a root exactly: do them one by one
            trace = np.empty(z.size, dtype=complex)
            for i in range(z.size):
                try:
                    trace[i] = np.einsum("ii,i->", np.linalg.inv(M[i]), diag[i])
                except np.linalg.LinAlgError:
                    trace[i] = np.inf
    return trace


def _aberth_sum(z, rows):
    """sum_{j != i} 1 / (z_i - z_j) for i in ``rows``, in memory-bounded blocks."""
    out = np.empty(rows.size, dtype=complex)
    step = max(1, _ABERTH_BLOCK // z.size)
    for s in range(0, rows.size, step):
        r = rows[s:s + step]
        diff = np.subtract.outer(z[r], z)
        diff[np.arange(r.size), r] = np.inf  # drop j = i
        with np.errstate(divide="ignore", invalid="ignore"):
            out[s:s + step] = np.reciprocal(diff, out=diff).sum(-1)
    return out


def fdn_modes(delays, A, b, c, g=None, d=0.0, tol=1e-12, max_iter=100,
              initial_radius=None) -> ModalDecomposition:
    """Poles and residues of an FDN with integer delays (Ehrlich-Aberth on det P(z)).

    Parameters
    ----------
    delays : array_like
        (N,) integer delay lengths in samples, >= 1.
    A : array_like
        (N, N) feedback matrix.
    b, c : array_like
        (N,) input and output gains.
    g : array_like, optional
        (N,) per-line gains, > 0 (default ones: lossless lines).
    d : float, default 0
        Direct gain.
    tol : float, default 1e-12
        Stop when every Aberth correction |w_i| is below tol * max(1, |z_i|).
    max_iter : int, default 100
    initial_radius : float, optional
        Radius of the circle of initial guesses. Default: the geometric mean of the pole
        radii, (|det A| prod g)^(1 / sum m) (exact for an orthogonal A and g_i = rho^m_i).

    Returns
    -------
    ModalDecomposition
        ``converged`` is False if ``max_iter`` was reached; check it.

    Notes
    -----
    Each iteration costs one batched N x N inverse per unconverged root and the Aberth sum
    over all K = sum(m) roots (O(K^2), computed in blocks). Poles of multiplicity > 1 (e.g.
    equal delays) converge slowly and their residues are not defined by this formula.
    """
    m = np.asarray(delays, dtype=float)
    if m.ndim != 1 or m.size == 0 or np.any(m != np.round(m)) or np.any(m < 1):
        raise ValueError(f"fdn_modes: delays must be a 1-D array of integers >= 1, got {m.tolist()}")
    m = m.astype(np.int64)
    n = m.size
    A = np.asarray(A, dtype=complex)
    if A.shape != (n, n):
        raise ValueError(f"fdn_modes: A must have shape ({n}, {n}), got {A.shape}")
    b = np.asarray(b, dtype=complex).reshape(-1)
    c = np.asarray(c, dtype=complex).reshape(-1)
    for name, v in (("b", b), ("c", c)):
        if v.shape != (n,):
            raise ValueError(f"fdn_modes: {name} must have shape ({n},), got {v.shape}")
    g = np.ones(n) if g is None else np.asarray(g, dtype=float).reshape(-1)
    if g.shape != (n,) or np.any(g <= 0) or not np.all(np.isfinite(g)):
        raise ValueError(f"fdn_modes: g must be (N,) = ({n},) finite gains > 0, got {g.tolist()}")
    inv_g = 1.0 / g
    K = int(m.sum())
    if initial_radius is None:
        log_det = np.log(abs(np.linalg.det(A))) if abs(np.linalg.det(A)) > 0 else 0.0
        initial_radius = math.exp((log_det + np.log(g).sum()) / K)
    # Equispaced guesses with an angular offset of a quarter spacing, so no two guesses are
    # conjugates and real roots can be reached (Aberth, Math. Comp. 27, 1973).
    angles = 2 * np.pi * (np.arange(K) + 0.25) / K
    z = initial_radius * np.exp(1j * angles)
    active = np.arange(K)
    iterations = 0
    for iterations in range(1, max_iter + 1):
        # Aberth step w = N / (1 - N S) with the Newton ratio N = p / p', written as
        # 1 / (p'/p - S): p'/p vanishes far inside the circle (p ~ det(-A) + O(z^min m)).
        log_derivative = _log_derivative(z[active], m, inv_g, A)
        with np.errstate(all="ignore"):
            w = 1.0 / (log_derivative - _aberth_sum(z, active))
        w[~np.isfinite(w) | np.isinf(log_derivative)] = 0.0  # an exact root
        z[active] -= w
        done = np.abs(w) <= tol * np.maximum(1.0, np.abs(z[active]))
        active = active[~done]
        if active.size == 0:
            break
    converged = active.size == 0
    # Residues from the null vectors of P at each pole (smallest singular value).
    P, dP = _loop_matrix(z, m, inv_g, A)
    U, _, Vh = np.linalg.svd(P)
    v = Vh[:, -1, :].conj()  # right null vector: P v ~ 0
    u = U[:, :, -1]  # left null vector: u^H P ~ 0
    numerator = (v @ c) * (u.conj() @ b)
    denominator = np.einsum("ki,ki,ki->k", u.conj(), dP, v)
    residues = numerator / denominator
    return ModalDecomposition(poles=z, residues=residues, direct=float(np.real(d)),
                              iterations=iterations, converged=converged)


def modal_decomposition(system, fs=None, **kwargs) -> ModalDecomposition:
    """:func:`fdn_modes` of a single-input single-output FDN read by
    :func:`flamo.reverb.fdn_structure` (e.g. built by :func:`flamo.reverb.build_fdn`);
    keyword arguments go to fdn_modes.

    ``fs`` (Hz) is the sample rate of the decomposition, needed when the line gains come
    from T60s (:class:`flamo.HomogeneousAttenuation`).

    Raises
    ------
    ValueError
        If the FDN has more than one input or output, or a frequency-dependent part (filter
        sections in the loop attenuation, a tone filter): the decomposition here covers
        per-line gains only (a diagonal :class:`flamo.Gain`,
        :class:`flamo.HomogeneousAttenuation`, no attenuation, a constant tone gain).
    """
    fdn = fdn_structure(system, fs=fs)
    if fdn.shape != (1, 1):
        raise ValueError(f"modal_decomposition: supports one input and one output, got an FDN of "
                         f"shape {fdn.shape}")
    if fdn.frequency_dependent:
        parts = [type(p).__name__ for p, s in ((fdn.attenuation, fdn.sections),
                                               (fdn.tone, fdn.tone_sections)) if s is not None]
        raise ValueError(f"modal_decomposition: supports per-line gains only (diagonal Gain, "
                         f"HomogeneousAttenuation) and a constant tone gain; this FDN has filter "
                         f"sections in {', '.join(parts)}")
    with torch.no_grad():
        scale = 1.0 if fdn.tone is None else fdn.tone_gains.double()[0]
        arrays = dict(m=fdn.m, A=fdn.A.double(), b=fdn.b.double()[:, 0],
                      c=scale * fdn.c.double()[0], g=fdn.gains, d=fdn.d.double()[0, 0])
        p = {k: None if v is None else v.detach().cpu().double().numpy() for k, v in arrays.items()}
    return fdn_modes(p["m"], p["A"], p["b"], p["c"], g=p["g"], d=float(p["d"]), **kwargs)


def echo_density(h, fs, window_ms=20.0, hop=1):
    """Normalized echo density profile (Abel & Huang, AES 2006).

    eta(t) = (1 / erfc(1/sqrt 2)) sum_n w(n) 1{|h(t + n)| > sigma(t)},
    sigma(t)^2 = sum_n w(n) h(t + n)^2, with w a Hann window of ``window_ms`` normalized to
    sum 1. Only positions where the window fits entirely inside ``h`` are evaluated.

    Parameters
    ----------
    h : array_like
        (T,) impulse response.
    fs : float
        Sample rate in Hz.
    window_ms : float, default 20
        Window length in milliseconds.
    hop : int, default 1
        Step between evaluated positions in samples.

    Returns
    -------
    eta : numpy.ndarray
        (P,) normalized echo density, about 1 for Gaussian noise and about 0 for sparse
        impulses; 0 where the window holds only zeros.
    t : numpy.ndarray
        (P,) times of the window centres in seconds.
    """
    h = np.asarray(h, dtype=float)
    if h.ndim != 1:
        raise ValueError(f"echo_density: h must be 1-D (T,), got shape {h.shape}")
    if not fs > 0:
        raise ValueError(f"echo_density: fs must be > 0 Hz, got {fs!r}")
    length = int(round(window_ms * 1e-3 * fs))
    if length < 3 or length > h.size:
        raise ValueError(f"echo_density: the window ({window_ms} ms = {length} samples) must "
                         f"span 3 .. len(h) = {h.size} samples")
    if isinstance(hop, bool) or not isinstance(hop, (int, np.integer)) or hop < 1:
        raise ValueError(f"echo_density: hop must be an int >= 1, got {hop!r}")
    w = np.hanning(length + 2)[1:-1]  # no zero end points
    w /= w.sum()
    starts = np.arange(0, h.size - length + 1, hop)
    frames = np.lib.stride_tricks.sliding_window_view(h, length)
    eta = np.empty(starts.size)
    step = max(1, 2**22 // length)
    for s in range(0, starts.size, step):
        block = frames[starts[s:s + step]]  # (P, L) view rows
        sigma = np.sqrt(block**2 @ w)
        eta[s:s + step] = (np.abs(block) > sigma[:, None]) @ w
    eta /= erfc(1 / np.sqrt(2))
    t = (starts + (length - 1) / 2) / fs
    return eta, t
