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

from ..exceptions import PrecisionWarning, warn
from ..modules import DSPModule
from ..system import Parallel, Recursion, Series
from ..timedomain import realization as td
from .structure import fdn_structure

__all__ = ["ModalDecomposition", "fdn_modes", "loop_modes", "modal_decomposition", "echo_density"]

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


def _aberth(log_derivative, K, initial_radius, tol, max_iter):
    """The K roots of a function p, given its log-derivative p'/p at points (vectorized),
    by the Ehrlich-Aberth iteration; returns (roots (K,), iterations, converged)."""
    # Equispaced guesses with an angular offset of a quarter spacing, so no two guesses are
    # conjugates and real roots can be reached (Aberth, Math. Comp. 27, 1973).
    angles = 2 * np.pi * (np.arange(K) + 0.25) / K
    z = initial_radius * np.exp(1j * angles)
    active = np.arange(K)
    iterations = 0
    for iterations in range(1, max_iter + 1):
        # Aberth step w = N / (1 - N S) with the Newton ratio N = p / p', written as
        # 1 / (p'/p - S): p'/p vanishes far inside the circle (p ~ det(-A) + O(z^min m)).
        ratio = log_derivative(z[active])
        with np.errstate(all="ignore"):
            w = 1.0 / (ratio - _aberth_sum(z, active))
        w[~np.isfinite(w) | np.isinf(ratio)] = 0.0  # an exact root
        z[active] -= w
        done = np.abs(w) <= tol * np.maximum(1.0, np.abs(z[active]))
        active = active[~done]
        if active.size == 0:
            break
    return z, iterations, active.size == 0


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
    z, iterations, converged = _aberth(lambda zz: _log_derivative(zz, m, inv_g, A), K,
                                       initial_radius, tol, max_iter)
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
    """Poles and residues of a single-input single-output system with one feedback loop.

    An FDN with per-line gains only, read by :func:`flamo.reverb.fdn_structure` (e.g. built
    by :func:`flamo.reverb.build_fdn` with a diagonal :class:`flamo.Gain`,
    :class:`flamo.HomogeneousAttenuation` or no attenuation, and a constant tone gain),
    goes to :func:`fdn_modes` (closed-form loop matrix); every other system, e.g. an FDN
    with filters in its loop or a filter feedback matrix (:class:`flamo.Paraunitary`), to
    :func:`loop_modes`. Keyword arguments go to the one used.

    ``fs`` (Hz) is the sample rate of the decomposition, needed when gains or filters come
    from T60s or frequencies in Hz.

    Raises
    ------
    ValueError
        As :func:`loop_modes` for a system outside its scope.
    """
    try:
        fdn = fdn_structure(system, fs=fs)
        closed_form = fdn.shape == (1, 1) and not fdn.frequency_dependent
        if closed_form:
            fdn.A  # raises for a frequency-dependent feedback (Paraunitary, DelayMatrix)
    except ValueError:  # not FDN-shaped, or a loop part without gains, sections or a constant matrix
        closed_form = False
    if not closed_form:
        return loop_modes(system, fs=fs, **kwargs)
    with torch.no_grad():
        scale = 1.0 if fdn.tone is None else fdn.tone_gains.double()[0]
        arrays = dict(m=fdn.m, A=fdn.A.double(), b=fdn.b.double()[:, 0],
                      c=scale * fdn.c.double()[0], g=fdn.gains, d=fdn.d.double()[0, 0])
        p = {k: None if v is None else v.detach().cpu().double().numpy() for k, v in arrays.items()}
    return fdn_modes(p["m"], p["A"], p["b"], p["c"], g=p["g"], d=float(p["d"]), **kwargs)


# -- any system with one Recursion ----------------------------------------------------------
_STATIC = (td.Gains, td.MatrixGain)
#: |z| below which loop_modes counts an Aberth iterate as a root at z = 0.
_ZERO_POLE = 1e-10


def _loop_of(system, fs):
    """The one Recursion of a tree of Series / Parallel whose other leaves are static."""
    loops = []

    def walk(node, path):
        if isinstance(node, Recursion):
            loops.append((node, path))
        elif isinstance(node, (Series, Parallel)):
            for name, part in node.named_parts():
                walk(part, f"{path}.{name}" if path else name)
        else:
            realization = _realize(node, path, fs)
            if not isinstance(realization, _STATIC):
                raise ValueError(
                    f"loop_modes: the parts outside the loop must be static gains (Gain, Matrix, "
                    f"...), got {type(node).__name__} {path!r}: its own poles or delays are not "
                    f"modes of the loop; move it into the Recursion or leave it out")

    walk(system, "")
    if len(loops) != 1:
        raise ValueError(f"loop_modes: the system must hold exactly one flamo.Recursion (inside "
                         f"Series / Parallel), got {len(loops)}")
    return loops[0]


def _realize(module, path, fs):
    try:
        return module.realize(fs)
    except NotImplementedError as err:
        raise ValueError(f"loop_modes: {type(module).__name__} {path!r} holds a part without a "
                         f"rational (difference-equation) form, whose poles cannot be found: {err}") from err


def _loop_parts(node, path):
    """(state count, monic denominators as (order + 1,) arrays) of a loop's realization."""
    if isinstance(node, (td.Chain, td.Sum)):
        states, dens = 0, []
        for part in node.parts:
            k, d = _loop_parts(part, path)
            states, dens = states + k, dens + d
        return states, dens
    if isinstance(node, td.Loop):
        raise ValueError(f"loop_modes: {path!r} holds a loop inside its loop; nested loops are not "
                         f"supported")
    if isinstance(node, _STATIC):
        return 0, []
    if isinstance(node, td.Delays):
        return int(node.delays.sum()), []
    if isinstance(node, td.DelayGains):
        return int(node.delays.amax(0).sum()), []  # one delay line per input, its longest tap
    params = [p.detach().cpu().double().numpy() for p in node.params]
    if isinstance(node, td.FIRBank):
        taps = params[0]
        return int((taps.shape[-1] - 1) * (taps.shape[0] if node.diagonal else taps.shape[1])), []
    if isinstance(node, td.SOSBank):
        a = params[0][..., 3:].reshape(-1, 3)
        return 2 * a.shape[0], list(a)
    if isinstance(node, td.RationalBank):
        a = params[1]
        return (a.shape[-1] - 1) * a.shape[0], list(a)
    raise ValueError(f"loop_modes: {path!r} realizes as {type(node).__name__}, which is not a "
                     f"rational part known to the decomposition")


def _denominator_log_derivative(z, dens):
    """sum_j d/dz log a_j(1/z) for monic a_j(w) = sum_k a_jk w^k, at z (M,)."""
    out = np.zeros(z.shape, dtype=complex)
    for order in sorted({d.size for d in dens}):
        a = np.stack([d for d in dens if d.size == order])  # (J, order)
        k = np.arange(order)
        w = (1 / z)[:, None] ** k  # (M, order): z^-k
        value = w @ a.T  # (M, J)
        slope = (-(k * w) / z[:, None]) @ a.T  # d/dz of a(1/z)
        out += (slope / value).sum(-1)
    return out


class _LoopMatrix:
    """P(z) = I - F(z) B(z) of a Recursion (its ``characteristic``) and dP/dz, float64."""

    def __init__(self, loop, fs, degree):
        self.loop, self.fs = loop, fs
        # central differences along z with a relative step of 1e-3 / degree: the five-point
        # stencil's truncation (degree step)^4 / 30 and its rounding 1e-16 / step stay below
        # 1e-10; the three-point one (truncation (degree step)^2 / 6 < 2e-7) steers the
        # iteration, whose fixed points are the roots whatever the derivative's error
        self.step = 1e-3 / max(1, degree)

    def __call__(self, z):
        with torch.no_grad():
            return self.loop.characteristic(torch.as_tensor(z), fs=self.fs, dtype=torch.float64).numpy()

    def with_derivative(self, z, points=5):
        """(P(z), P'(z)) from one evaluation of the ``points``-point stencil (3 or 5)."""
        h = self.step * z
        if points == 3:
            p0, p1, m1 = np.split(self(np.concatenate([z, z + h, z - h])), 3)
            return p0, (p1 - m1) / (2 * h)[:, None, None]
        p0, p2, p1, m1, m2 = np.split(self(np.concatenate([z, z + 2 * h, z + h, z - h, z - 2 * h])), 5)
        return p0, (-p2 + 8 * p1 - 8 * m1 + m2) / (12 * h)[:, None, None]


def loop_modes(system, fs=None, tol=1e-12, max_iter=100, initial_radius=None) -> ModalDecomposition:
    """Poles and residues of a single-input single-output system whose loop is a Recursion.

    The system is a tree of :class:`flamo.Series` / :class:`flamo.Parallel` holding one
    :class:`flamo.Recursion` H_R = (I - F B)^-1 F and, outside it, static gains only (an
    FDN's input, output and direct gains); F and B may hold delays, gains, matrices, FIRs
    and filters (any module that realizes as rational parts, :meth:`flamo.DSPModule.realize`).

    Poles: with P(z) = I - F(z) B(z) (:meth:`flamo.Recursion.characteristic`), the loop's
    characteristic polynomial is f(z) = z^K det P(z) prod_j a_j(1/z), a_j the monic
    denominators of the filter sections in the loop (which cancel the poles of P's entries)
    and K the state dimension of the loop's realization (the delays, the filter orders and
    the FIR lengths): f has degree K and its roots are the eigenvalues of the loop's
    state-space realization. The K roots are found at once by the Ehrlich-Aberth iteration
    (as in :func:`fdn_modes`) from f'/f = K / z + tr(P^-1 P') + sum_j (log a_j(1/z))', P' by
    a central difference of P along z (three points while iterating, five for the residues).

    Residues: at a simple pole lambda with null vectors P v = 0, u^H P = 0, the loop's
    response has the residue v u^H F(lambda) / (u^H P'(lambda) v) (as in :func:`fdn_modes`);
    the static gains around the loop multiply it, and the direct term is H(z) at z = 1e100.

    Roots at z = 0 (a state count above the degree of the loop's polynomial, e.g. a section
    with a zero last coefficient, or a one-pole filter after a delay) are not modes and are
    left out, so ``poles`` may hold fewer than K entries; so is a pole closer than 1e-7 to
    0, where P(z) overflows (the check below warns if its residue mattered). The iterates
    evaluate z^-m: delays of hundreds of samples overflow float64 for |z| below about
    10^(-300 / m), where the iteration stalls; :func:`fdn_modes` (per-line gains) scales
    that away.

    Parameters
    ----------
    system : flamo.DSPModule
        (1, 1) system as above.
    fs : float, optional
        Sample rate in Hz, for modules designed in Hz or seconds.
    tol, max_iter, initial_radius
        As in :func:`fdn_modes`; the default radius is the geometric mean over the unit
        circle of |det F(z) B(z)|^(1 / K) (exact for an FDN with per-line gains), 0.9 where
        that is not finite.

    Returns
    -------
    ModalDecomposition
        ``converged`` is False when the iteration stopped at ``max_iter`` or when the modes
        do not reproduce H on the unit circle to 1e-6 relative (with a PrecisionWarning).

    Raises
    ------
    ValueError
        For a system that is not (1, 1), holds no or several Recursions, nested loops,
        non-static parts outside the loop, or parts without a rational realization.
    """
    if not isinstance(system, DSPModule):
        raise TypeError(f"loop_modes: system must be a flamo.DSPModule, got {type(system).__name__}")
    if tuple(system.shape) != (1, 1):
        raise ValueError(f"loop_modes: supports one input and one output, got a system of shape "
                         f"{tuple(system.shape)}")
    loop, path = _loop_of(system, fs)
    where = path or "the system"
    K, dens = _loop_parts(td.Chain([_realize(loop.forward_path, where, fs),
                                    _realize(loop.feedback_path, where, fs)]), where)
    P = _LoopMatrix(loop, fs, K)
    if initial_radius is None:
        circle = np.exp(2j * np.pi * (np.arange(64) + 0.5) / 64)
        with np.errstate(divide="ignore"):
            mean_log = np.log(np.abs(np.linalg.det(np.eye(P(circle[:1]).shape[-1]) - P(circle)))).mean()
        initial_radius = math.exp(mean_log / K) if np.isfinite(mean_log) else 0.9

    def log_derivative(z):
        out = np.full(z.shape, np.inf, dtype=complex)  # inf: an exact root, stop there
        away = np.abs(z) > _ZERO_POLE  # z -> 0: a root at 0 (P(z) itself overflows there)
        with np.errstate(all="ignore"):
            zz = z[away]
            try:
                trace = np.einsum("kii->k", np.linalg.solve(*P.with_derivative(zz, points=3)))
            except np.linalg.LinAlgError:
                return out
            out[away] = K / zz + trace + _denominator_log_derivative(zz, dens)
        out[~np.isfinite(out)] = np.inf
        return out

    poles, iterations, converged = _aberth(log_derivative, K, initial_radius, tol, max_iter)
    # Roots at z = 0 come from states that no loop path reaches at full length (e.g. a
    # section whose numerator or denominator has a zero last coefficient): not modes. A
    # genuine pole within 1e-7 of 0 is left out with them (P(z) overflows there); the check
    # below then reports the residue it carried.
    poles = poles[np.abs(poles) > 1e3 * _ZERO_POLE]
    at_poles, slope = P.with_derivative(poles)
    U, _, Vh = np.linalg.svd(at_poles)
    v, u = Vh[:, -1, :].conj(), U[:, :, -1]  # P v ~ 0, u^H P ~ 0
    with torch.no_grad():
        forward = loop.forward_path.probe(torch.as_tensor(poles), fs=fs, dtype=torch.float64).numpy()
    scale = np.einsum("ki,ki->k", u.conj(), np.einsum("kij,kj->ki", slope, v))
    loop_residue = v[:, :, None] * np.einsum("ki,kij->kj", u.conj(), forward)[:, None, :] / scale[:, None, None]
    residues = _around(system, loop, poles, loop_residue, fs)[:, 0, 0]
    with torch.no_grad():
        direct = system.probe(torch.tensor([1e100 + 0j], dtype=torch.complex128), fs=fs).numpy()[0, 0, 0]
    modes = ModalDecomposition(poles=poles, residues=residues, direct=float(direct.real),
                               iterations=iterations, converged=converged)
    check = np.exp(2j * np.pi * (np.arange(16) + 0.37) / 16)
    with torch.no_grad():
        truth = system.probe(torch.as_tensor(check), fs=fs, dtype=torch.float64).numpy()[:, 0, 0]
    error = np.abs(modes.transfer(check) - truth).max() / np.abs(truth).max()
    if not error < 1e-6:
        warn(f"loop_modes: the {K} modes reproduce the system's response on the unit circle only "
             f"to {error:.2g} relative (converged={converged}); multiple poles, or a loop whose "
             f"state count {K} exceeds its degree, make the residues inexact", PrecisionWarning)
        modes.converged = False
    return modes


def _around(node, loop, poles, loop_residue, fs):
    """Residues (K, out, in) of ``node`` at the loop's poles: the loop's residue times the
    responses at the poles of what is in series with it (the other branches of a Parallel
    have no pole there)."""
    if node is loop:
        return loop_residue
    parts = list(node)
    for i, part in enumerate(parts):
        if any(m is loop for m in part.modules()):
            inner = _around(part, loop, poles, loop_residue, fs)
            if isinstance(node, Parallel):
                return inner
            z = torch.as_tensor(poles)
            with torch.no_grad():
                for before in reversed(parts[:i]):
                    inner = inner @ before.probe(z, fs=fs, dtype=torch.float64).numpy()
                for after in parts[i + 1:]:
                    inner = after.probe(z, fs=fs, dtype=torch.float64).numpy() @ inner
            return inner
    raise AssertionError("the loop is in the tree")  # _loop_of found it there


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
