"""Feedback-loop kernels: the structured loop solve of FDNs and the loop determinant.

A loop whose matrix is a product of per-line (diagonal) frequency-dependent parts and one
frequency-independent matrix A has the loop matrix P(z) = I - diag(l(z)) A diag(r(z)) at
every point z, whichever path holds the filters (delays and attenuation in the forward path,
or filters before or after the matrix in the feedback path): the diagonals of the parts on
either side of A multiply into l and r. :func:`diagonal_loop_solve` factors it once per point
and reuses the factors in the backward pass; :func:`flamo.response.solve_loop` uses it for
every :class:`flamo.Recursion` of that form. The point axis is a batch axis here: any number
of points, in any order. When A is the identity plus a rank-one matrix (a Householder
reflection, :class:`IdentityPlusRankOne`), P is a diagonal plus a rank-one matrix and the
solve takes the Sherman-Morrison formula instead, O(N) per point and right-hand side, with
the LU solve at the points where the diagonal is too close to singular for it.

The LU factors P = Pi L U of the loop matrix P(z) = I - F(z) B(z) also give its determinant
at no extra solve, det P = (-1)^(row swaps) prod_i u_ii. :func:`lu_determinant` is the one
place where it is formed (for the structured and the generic solve alike, every arrangement),
as a :class:`LoopDeterminant`: log |det P|, its phase and the smallest relative pivot, which
:class:`flamo.Recursion` uses to detect singular loops and, by the argument principle
(:func:`winding_number`), loops with poles outside the circle of evaluation.
"""

from __future__ import annotations

import ctypes
import math
import sys
from dataclasses import dataclass
from typing import NamedTuple

import torch

__all__ = ["diagonal_loop_solve", "IdentityPlusRankOne", "LoopDeterminant", "lu_determinant",
           "singular_pivot_threshold", "SINGULAR_PIVOT_FACTOR", "winding_number", "MAX_PHASE_STEP",
           "RANK_ONE_MIN_DIAGONAL"]

#: Factor c of the singular-pivot threshold c N eps (see :func:`singular_pivot_threshold`).
SINGULAR_PIVOT_FACTOR = 16
#: Largest phase step of det P between neighbouring grid points (radians) that
#: :func:`winding_number` unwraps; a larger one leaves the count undetermined.
MAX_PHASE_STEP = math.pi / 2
#: Smallest min_i |Delta_ii| / s at which the Sherman-Morrison solve of a loop
#: I - diag(l) (I + p q^T) diag(r) is used (s the bound on the loop matrix's entries); below
#: it the point takes the LU solve. See :func:`diagonal_loop_solve`, Notes.
RANK_ONE_MIN_DIAGONAL = 2.0 ** -6


def singular_pivot_threshold(n: int, dtype: torch.dtype) -> float:
    """Relative pivot below which an n x n loop matrix is singular to working precision.

    Returns ``SINGULAR_PIVOT_FACTOR * n * eps`` with eps the machine epsilon of ``dtype``
    (real or complex): 3.8e-6 for a 2 x 2 float32 loop, 3.6e-15 for float64.

    Why this value: Gaussian elimination with partial pivoting returns the exact factors of
    P + E with |E| <= n eps |L||U| to first order, about n eps s for a modest growth factor,
    where s bounds the entries of P (Higham, "Accuracy and Stability of Numerical
    Algorithms", 2nd ed., 2002, Thm. 9.3); P itself is formed from responses that carry a
    few eps of rounding. A pivot |u_ii| <= n eps s is therefore indistinguishable from 0:
    the matrix is singular within its rounding and the solve returns digits of noise
    (typically a huge finite value). The factor 16 leaves room for the growth factor and
    the rounding of P; above the threshold the first-order relative error of the solution,
    about n eps s / min |u_ii|, is below 1/16. A small pivot proves near-singularity, since
    sigma_min(P) <= ||L||_2 sigma_min(U) <= n min |u_ii| (|l_ij| <= 1 and the smallest
    singular value of a triangular matrix is at most its smallest diagonal entry); the
    converse can fail for contrived matrices, which is why :class:`flamo.Recursion` also
    checks that the solution is finite.
    """
    eps = torch.finfo(dtype).eps
    return SINGULAR_PIVOT_FACTOR * int(n) * eps


@dataclass(frozen=True)
class LoopDeterminant:
    """det P(z) of a loop matrix P(z) = I - F(z) B(z) at the evaluation points.

    Formed by :func:`lu_determinant` from the LU factors that the loop solve computes; no
    autograd history.

    Attributes
    ----------
    log_abs : torch.Tensor
        (..., M) real: natural log of |det P(z_k)| (-inf where a pivot is exactly 0).
    phase : torch.Tensor
        (..., M) real: arg det P(z_k) in radians, in [-pi, pi).
    relative_pivot : torch.Tensor
        (..., M) real: min_i |u_ii| / s, the smallest pivot relative to the bound
        s = 1 + max_ij |F B|_ij on the entries of P.
    size : int
        N, the size of the loop matrix.
    """

    log_abs: torch.Tensor
    phase: torch.Tensor
    relative_pivot: torch.Tensor
    size: int

    @property
    def singular(self) -> torch.Tensor:
        """(..., M) bool: the loop matrix is singular to working precision there
        (relative pivot <= :func:`singular_pivot_threshold`, or not a number)."""
        threshold = singular_pivot_threshold(self.size, self.relative_pivot.dtype)
        return ~(self.relative_pivot > threshold)


def lu_determinant(lu: torch.Tensor, pivots: torch.Tensor, scale: torch.Tensor) -> LoopDeterminant:
    """The determinant of a loop matrix from its LU factors (LAPACK layout).

    Parameters
    ----------
    lu : torch.Tensor
        (..., M, N, N) complex LU factors as returned by ``torch.linalg.lu_factor``: U on
        and above the diagonal. For a diagonal loop matrix (every line its own loop) pass
        its diagonal (..., M, N) instead, and ``pivots=None``.
    pivots : torch.Tensor or None
        (..., M, N) int32 1-based row interchanges (LAPACK ``ipiv``); None: no interchange.
    scale : torch.Tensor
        (..., M) or broadcastable real bound s on the entries of the loop matrix
        (1 + max |F B|).

    Returns
    -------
    LoopDeterminant
        det P = (-1)^(row swaps) prod_i u_ii as log |det P| and phase (the sum of the
        pivots' logs and angles, so it neither overflows nor underflows), and the smallest
        relative pivot.
    """
    with torch.no_grad():
        u = lu if pivots is None else lu.diagonal(dim1=-2, dim2=-1)
        magnitude = u.abs()
        log_abs = magnitude.log().sum(-1)
        phase = u.angle().sum(-1)
        if pivots is not None:  # each interchange (ipiv_i != i) flips the sign
            rows = torch.arange(1, pivots.shape[-1] + 1, dtype=pivots.dtype, device=pivots.device)
            swaps = (pivots != rows).sum(-1)
            phase = phase + math.pi * (swaps % 2).to(phase.dtype)
        phase = torch.remainder(phase + math.pi, 2 * math.pi) - math.pi
        relative_pivot = magnitude.amin(-1) / scale.to(magnitude.dtype)
    return LoopDeterminant(log_abs, phase, relative_pivot.expand_as(log_abs), u.shape[-1])


def winding_number(phase: torch.Tensor, nfft: int):
    """How often det P winds around 0 on the full circle of a grid, from its half-grid phases.

    Parameters
    ----------
    phase : torch.Tensor
        (..., M) arg det P(z_k) at the M = nfft // 2 + 1 points z_k = exp(1j omega_k) / gamma
        of a :class:`flamo.Grid` (``LoopDeterminant.phase``). The system must be real, so
        that det P(conj z) = conj det P(z) supplies the lower half of the circle.
    nfft : int
        The grid's FFT length.

    Returns
    -------
    winding : torch.Tensor
        (...,) int64: the winding number of det P(z) as z runs once counterclockwise
        around the circle |z| = 1 / gamma, the sum of the phase steps between neighbouring
        points, each taken in [-pi, pi).
    largest_step : torch.Tensor
        (...,) real: the largest |phase step|, radians.
    step_bin : torch.Tensor
        (...,) int64: k such that that step lies between bins k and k + 1 (or their
        mirror images below the real axis).

    Notes
    -----
    **What the count is.** By the argument principle the winding number of det P around the
    circle C is (zeros of det P inside C) - (poles of det P inside C). For the loop of
    delay lines and a constant matrix, P(z) = I - diag(g z^-m) A is a polynomial in z^-1
    of degree D = sum_i m_i with det P(inf) = 1, and det P(z) = prod_{j=1}^{D} (1 - lambda_j
    z^-1) where lambda_j are the D roots of det(diag(z^m / g) - A), the poles of the loop:
    det P has a pole of order D at z = 0 and a zero at each lambda_j, so the winding number
    is #{|lambda_j| < R} - D = -#{|lambda_j| > R}: minus the number of loop poles outside
    the circle of radius R = 1 / gamma, 0 when there is none. Filters in the loop make det P
    rational; its poles are then also those of the filters, and the winding number is
    (their number outside C) - (the number of loop poles outside C): with stable parts (the
    library's filters, or an :class:`flamo.SOS` checked at construction), again minus the
    number of loop poles outside.

    **What the grid can resolve.** The sum of wrapped steps equals the true winding number
    only if every true phase change between neighbouring points is below pi in magnitude.
    A loop pole at relative distance eps = | |lambda| gamma - 1 | from the circle, midway
    between two points 2 pi / nfft apart, alone turns the phase by 2 atan(pi / (nfft eps))
    there, which exceeds pi / 2 when eps < pi / nfft, i.e. when its envelope decays (or
    grows) by less than pi nepers, about 27 dB, per nfft samples; several such poles add
    up. A step above :data:`MAX_PHASE_STEP` (pi / 2, a factor 2 below the ambiguity) is
    therefore reported through ``largest_step`` and the count must not be trusted: the grid
    does not resolve the loop (its time response wraps with little attenuation).
    """
    m = phase.shape[-1]
    if m != nfft // 2 + 1:
        raise ValueError(f"winding_number: phase must have nfft // 2 + 1 = {nfft // 2 + 1} points "
                         f"in its last dim, got shape {tuple(phase.shape)}")
    # The lower half of the circle, counterclockwise from the point after the last bin back to
    # the point before DC: conjugates of the upper bins in reverse order (without DC, and
    # without Nyquist when nfft is even: it lies on the real axis).
    lower = -phase.flip(-1)[..., (1 if nfft % 2 == 0 else 0):m - 1]
    full = torch.cat([phase, lower], dim=-1)  # (..., nfft) counterclockwise from DC
    step = torch.remainder(full.roll(-1, dims=-1) - full + math.pi, 2 * math.pi) - math.pi
    winding = torch.round(step.sum(-1) / (2 * math.pi)).to(torch.int64)
    largest_step, where = step.abs().max(-1)
    step_bin = torch.minimum(where, nfft - 1 - where)
    return winding, largest_step, step_bin


class IdentityPlusRankOne(NamedTuple):
    """A frequency-independent matrix A = I + p q^T given by its rank-one factors.

    A Householder reflection I - beta u u^T (beta = 2 / |u|^2, :func:`flamo.functional.householder`)
    is p = -beta u, q = u. Passed to :func:`diagonal_loop_solve` instead of the dense A, it
    selects the Sherman-Morrison solve; gradients then flow to p and q.

    Attributes
    ----------
    p, q : torch.Tensor
        (..., 1, N) complex factors (the 1 is the point axis: the same at every point).
    """

    p: torch.Tensor
    q: torch.Tensor

    def dense(self) -> torch.Tensor:
        """(..., 1, N, N) the matrix I + p q^T."""
        n = self.p.shape[-1]
        eye = torch.eye(n, dtype=torch.result_type(self.p, self.q), device=self.p.device)
        return eye + self.p.unsqueeze(-1) * self.q.unsqueeze(-2)


def diagonal_loop_solve(a, rhs: torch.Tensor, *, left: torch.Tensor | None = None,
                        right: torch.Tensor | None = None, determinant: bool = False):
    """Solve (I - diag(left) A diag(right)) x = rhs at every point.

    The loop matrix at every point is LU-factored once; the backward pass solves the
    adjoint system with the same factors (``lu_solve(..., adjoint=True)``) and forms the
    gradients of ``left``, ``right`` and ``A`` without any (M, N, N) temporary: with
    P = I - diag(l) A diag(r), x the solution and y = P^-H g the solved adjoint, the
    gradient of P is -y x^H (Giles, "An extended collection of matrix derivative results
    for forward and reverse mode AD", 2008), hence

        grad l = sum_k y * conj(A (r x)),    grad r = sum_k conj(x) * (A^H (conj(l) y)),
        grad A = sum_{m, k} (conj(l) y) (r x)^H,

    the last as one (N x MK)(MK x N) product. With A = I + p q^T
    (:class:`IdentityPlusRankOne`) the solve is by Sherman-Morrison (see Notes) and
    grad p = grad A conj(q), grad q = grad A^T conj(p), each O(N) per point.

    Parameters
    ----------
    a : torch.Tensor or IdentityPlusRankOne
        (..., 1, N, N) complex matrix, the same at every point; or its factors p, q
        (..., 1, N) when A = I + p q^T (a Householder reflection).
    rhs : torch.Tensor
        (..., M or 1, N, K) complex right-hand sides.
    left, right : torch.Tensor, optional
        (..., M, N) complex diagonals at the M points on either side of ``a`` (delays and
        filters per line); None is the identity. At least one must be given.
    determinant : bool, default False
        Also return the determinant of the loop matrix from the same factors.

    Returns
    -------
    torch.Tensor or (torch.Tensor, LoopDeterminant)
        (..., M, N, K) solution, batch dims broadcast; with ``determinant=True`` also the
        :class:`LoopDeterminant` (..., M) (for the rank-one form, with the batch dims of
        the solution). A point where the loop matrix is exactly singular
        gives non-finite entries (the factorization does not raise); :class:`flamo.Recursion`
        checks the determinant's pivots and the solution.

    Notes
    -----
    **The rank-one form.** With A = I + p q^T the loop matrix is a diagonal plus a rank-one
    matrix, P = Delta - alpha beta^T with Delta = I - diag(l r), alpha = l p, beta = r q.
    With w = Delta^-1 alpha and sigma = 1 - beta^T w (Sherman-Morrison),

        x = Delta^-1 rhs + w (beta^T Delta^-1 rhs) / sigma,    det P = sigma prod_i Delta_ii,

    and P^H = conj(Delta) - conj(beta) alpha^H is of the same form, so the adjoint solve
    reuses Delta and sigma: y = conj(Delta)^-1 g + conj(Delta^-1 beta) (w^H g) / conj(sigma).
    Each costs O(N) per point and right-hand side instead of the LU's O(N^3 / 3).

    *Its pivot.* The ``relative_pivot`` of :class:`LoopDeterminant` is min(min_i
    |Delta_ii| / s, |sigma| / (1 + sum_i |beta_i w_i|)): sigma is a sum of N + 1 terms of
    magnitudes 1 and |beta_i w_i|, so its rounding error is about N eps (1 + sum |beta_i
    w_i|) (Higham, 2nd ed., 2002, Sec. 3.1); at or below
    :func:`singular_pivot_threshold` (16 N eps) it is zero within its rounding and P = Delta
    (I - w beta^T), det(I - w beta^T) = sigma, is singular to working precision, as for a
    small LU pivot. A small value proves near-singularity too: the smallest singular value
    of I - w beta^T is at most 4 |sigma| / (1 + |w| |beta|) (its two nontrivial singular
    values multiply to |sigma| and the larger is at least max(1, |w| |beta| - 1)), so
    sigma_min(P) <= 4 max_i |Delta_ii| times this pivot.

    *When Sherman-Morrison is used.* The formula divides by Delta, whose entries
    1 - l_i r_i vanish where a line is lossless and in phase (|l_i r_i| = 1 and
    z^-m_i = 1 at DC on a grid with alias_decay_db = 0) although P need not be singular
    there. Its error then exceeds that of a backward-stable solve by up to the condition
    number of Delta relative to P's scale, s / min_i |Delta_ii| (Yip, "A note on the
    stability of solving a rank-p modification of a linear system by the Sherman-Morrison-
    Woodbury formula", SIAM J. Sci. Stat. Comput. 7(2), 1986). Every point with min_i
    |Delta_ii| < :data:`RANK_ONE_MIN_DIAGONAL` s (2^-6) takes the LU solve instead (its
    factors are kept for the adjoint), so the result is never less accurate than the LU
    solve by more than a factor of about 64 in that bound; s is the bound
    1 + max_ij |l_i A_ij r_j| of the LU path. Measured (``scripts/rank_one_accuracy.py``,
    complex64, N = 16, lossless lines near phase 0): at r = min_i |Delta_ii| / s >= 2^-6 the
    formula's error stayed below 1.6 eps cond(P) (the LU's below 0.6); below, its worst
    case grows about as 1 / r (9.6 at 2^-8 .. 2^-6, 660 at 2^-14 .. 2^-12). The LU points cost O(N^3) each and one host synchronization per call
    finds them.

    Examples
    --------
    The loop of an FDN, I - diag(g z^-m) A, one point:

    >>> a = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]], dtype=torch.complex128)
    >>> x = diagonal_loop_solve(a, torch.ones(1, 2, 1, dtype=torch.complex128),
    ...                         left=torch.tensor([[0.5, 0.5]], dtype=torch.complex128))
    >>> x[0, :, 0].real.tolist()
    [2.0, 2.0]

    The same matrix is the Householder reflection I - 2 u u^T / |u|^2 of u = (1, -1); by its
    factors p = -2 u / |u|^2 = -u and q = u, the same solution:

    >>> u = torch.tensor([[1.0, -1.0]], dtype=torch.complex128)
    >>> x = diagonal_loop_solve(IdentityPlusRankOne(-u, u), torch.ones(1, 2, 1, dtype=torch.complex128),
    ...                         left=torch.tensor([[0.5, 0.5]], dtype=torch.complex128))
    >>> x[0, :, 0].real.tolist()
    [2.0, 2.0]
    """
    _check_sides("diagonal_loop_solve", left, right)
    if isinstance(a, IdentityPlusRankOne):
        scale = diagonal_loop_scale(a.dense().detach(), left=left, right=right)
        x, *det = _RankOneLoopSolve.apply(a.p, a.q, rhs, left, right, scale, determinant)
    else:
        scale = diagonal_loop_scale(a, left=left, right=right) if determinant else None
        x, _, _, *det = _DiagonalLoopSolve.apply(a, rhs, left, right, scale)
    if not determinant:
        return x
    return x, LoopDeterminant(*det, rhs.shape[-2])


def diagonal_loop_determinant(a, *, left: torch.Tensor | None = None,
                              right: torch.Tensor | None = None) -> LoopDeterminant:
    """The :class:`LoopDeterminant` of I - diag(left) A diag(right) alone: the same
    factorization as :func:`diagonal_loop_solve` (``a`` a tensor or an
    :class:`IdentityPlusRankOne`), without a solve or autograd history."""
    _check_sides("diagonal_loop_determinant", left, right)
    with torch.no_grad():
        if isinstance(a, IdentityPlusRankOne):
            scale = diagonal_loop_scale(a.dense(), left=left, right=right)
            det = _rank_one_factor(a.p, a.q, left, right, scale, None, True)[-1]
            return LoopDeterminant(*det, a.p.shape[-1])
        scale = diagonal_loop_scale(a, left=left, right=right)
        *_, det = _factor_blocks(a, left, right, scale=scale)
    return LoopDeterminant(*det, a.shape[-1])


def diagonal_loop_scale(a: torch.Tensor, *, left: torch.Tensor | None = None,
                        right: torch.Tensor | None = None) -> torch.Tensor:
    """(..., M) bound s >= 1 + max_ij |l_i A_ij r_j| on the entries of the loop matrix,
    without an (M, N, N) temporary: exact with one diagonal (from the row or column maxima
    of |A|), max_i |l_i| max_j |r_j| colmax_j |A| with both."""
    with torch.no_grad():
        if right is None:  # max_i |l_i| rowmax_i |A|
            return 1 + (left.abs() * a.abs().amax(-1)).amax(-1)
        side = (right.abs() * a.abs().amax(-2)).amax(-1)  # max_j |r_j| colmax_j |A|
        return 1 + side if left is None else 1 + left.abs().amax(-1) * side


def _check_sides(owner, left, right):
    if left is None and right is None:
        raise ValueError(f"{owner}: give left and/or right, the frequency-dependent diagonals; "
                         f"a frequency-independent loop needs no structured solve")


#: Points per block of the loop solve's build-factor-solve pass: 4096 loop matrices of
#: 16 x 16 complex64 are 8 MiB, which stay in the last-level cache between the three steps.
#: Measured on the N = 16, nfft = 2^17 FDN step (2 cores, shared): 4096 and 2048 points
#: took 0.92-0.96 of the time of one block over all points, 512 took 1.16 (per-call overhead).
BLOCK_POINTS = 4096
#: Values (points x N) per block of the Sherman-Morrison pass: 2^16 complex64 values are
#: 512 KiB per (points, N) array, which stay in cache across its dozen passes. Measured on
#: the N = 16 and 64, nfft = 2^17 Householder FDN step (2 cores, shared): 0.92 and 0.88 of
#: the time of one block over all points (4096 points at N = 64: 0.97).
RANK_ONE_BLOCK_VALUES = 2 ** 16


def _factor_blocks(a, left, right, rhs=None, scale=None):
    """LU factors of I - diag(l) A diag(r) at every point and, with ``rhs``, the solution;
    with ``scale`` (the bound of :func:`diagonal_loop_scale`), the determinant.

    The loop matrices are written in column-major layout, LAPACK's, so ``lu_factor_ex``
    overwrites them in place and ``lu_solve`` reads them without copies (a row-major matrix
    costs one in each). Their transposes diag(r) (-A^T) diag(l) + I are written into one
    row-major buffer by one fused pass per block (``addcmul`` with the identity: no
    diag_embed, no product temporaries), and the points are processed in blocks of
    ``BLOCK_POINTS`` along the point axis: build, factor, read the determinant off U's
    diagonal (:func:`lu_determinant`) and solve each block while its matrices are in cache
    (no (M, N) temporaries of the whole grid for the determinant), instead of one pass
    over all (M, N, N) values per step. The buffer is marked for huge pages
    (:func:`_huge_page_empty`). A batch of several loops (leading dims beyond the
    points) is processed as one block.

    Returns
    -------
    lu, pivots, x, determinant
        (..., M, N, N) column-major factors, (..., M, N) int32 pivots, the (..., M, N, K)
        solution (None without ``rhs``) and the (..., M) ``log_abs``, ``phase`` and
        ``relative_pivot`` of :class:`LoopDeterminant` as a tuple (empty without
        ``scale``).
    """
    n = a.shape[-1]
    parts = [t.shape[:-1] for t in (left, right) if t is not None]
    batch = torch.broadcast_shapes(a.shape[:-2], *parts)
    dtype = torch.result_type(a, left if left is not None else right)
    kw = dict(device=a.device)
    loop_t = _huge_page_empty((*batch, n, n), dtype, a.device)
    pivots = torch.empty(*batch, n, dtype=torch.int32, **kw)
    info = torch.empty(batch, dtype=torch.int32, **kw)
    det_blocks = []
    x = None
    if rhs is not None:
        x_batch = torch.broadcast_shapes(batch, rhs.shape[:-2])
        x = torch.empty(*x_batch, n, rhs.shape[-1], dtype=torch.result_type(rhs, loop_t), **kw)
    m = batch[-1]
    whole = math.prod(batch[:-1]) > 1 or (x is not None and math.prod(x.shape[:-3]) > 1)
    step = m if whole else BLOCK_POINTS
    eye = torch.eye(n, dtype=dtype, **kw)
    neg_at = a.mT.neg()  # (..., 1, N, N): -A^T, once
    for start in range(0, m, step):
        block = slice(start, min(m, start + step))
        out_t = loop_t[..., block, :, :]
        l_row = None if left is None else _points(left, block, -2).unsqueeze(-2)
        r_col = None if right is None else _points(right, block, -2).unsqueeze(-1)
        if l_row is not None and r_col is not None:
            torch.mul(neg_at, l_row, out=out_t)
            torch.addcmul(eye, out_t, r_col, out=out_t)
        else:
            torch.addcmul(eye, neg_at, l_row if r_col is None else r_col, out=out_t)
        lu = out_t.mT
        torch.linalg.lu_factor_ex(lu, out=(lu, pivots[..., block, :], info[..., block]))
        if scale is not None:
            det = lu_determinant(lu, pivots[..., block, :], _points(scale, block, -1))
            det_blocks.append((det.log_abs, det.phase, det.relative_pivot))
        if x is not None:
            torch.linalg.lu_solve(lu, pivots[..., block, :], _points(rhs, block, -3),
                                  out=x[..., block, :, :])
    determinant = tuple(torch.cat(values, dim=-1) for values in zip(*det_blocks))
    return loop_t.mT, pivots, x, determinant


#: Transparent huge pages: the size of one and madvise's MADV_HUGEPAGE (Linux).
_HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE = 14
_libc = None


def _huge_page_empty(shape, dtype, device):
    """``torch.empty`` whose pages the kernel may back by 2 MiB transparent huge pages.

    Why: the loop matrices of a grid are one (M, N, N) buffer (134 MiB for N = 16,
    nfft = 2^17) that lives until the backward pass, so every step allocates it afresh and
    glibc serves it by a new mmap. Touching it first then costs one page fault per 4 KiB
    page (about 1 ms per MiB here, 4-5 times the fused build itself) unless the range is
    marked MADV_HUGEPAGE, which Linux's default THP mode ("madvise") requires. The mark is
    a hint with no effect on the values; elsewhere (not Linux, not the CPU, a failing
    call) this is plain ``torch.empty``.
    """
    global _libc
    t = torch.empty(shape, dtype=dtype, device=device)
    nbytes = t.numel() * t.element_size()
    if t.device.type != "cpu" or nbytes < 2 * _HUGE_PAGE or not sys.platform.startswith("linux"):
        return t
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        start = -(-t.data_ptr() // _HUGE_PAGE) * _HUGE_PAGE  # whole huge pages inside t
        end = (t.data_ptr() + nbytes) // _HUGE_PAGE * _HUGE_PAGE
        if end > start:
            _libc.madvise(start, end - start, _MADV_HUGEPAGE)  # a hint: failure is harmless
    return t


def _points(t, block, dim):
    """The block of points of ``t`` along ``dim`` (all of it where that dim is 1: broadcast)."""
    return t if t.shape[dim] == 1 else t[(..., block) + (slice(None),) * (-dim - 1)]


def _first_order_only():
    """Refuse a backward pass that records a graph (create_graph=True): the kernels' factors
    are constants there, so its second derivatives would be silently wrong."""
    if torch.is_grad_enabled():
        raise RuntimeError(
            "diagonal_loop_solve supports first-order gradients only (backward was called "
            "with create_graph=True); build the Recursion with structured_solve=False for "
            "double backward or Hessian-vector products")


class _DiagonalLoopSolve(torch.autograd.Function):
    """Autograd of :func:`diagonal_loop_solve` with the LU factors kept for backward."""

    generate_vmap_rule = True

    @staticmethod
    def forward(a, rhs, left, right, scale):
        lu, pivots, x, determinant = _factor_blocks(a, left, right, rhs, scale)
        return x, lu, pivots, *determinant

    @staticmethod
    def setup_context(ctx, inputs, output):
        a, rhs, left, right, _ = inputs
        x, lu, pivots, *determinant = output
        ctx.mark_non_differentiable(lu, pivots, *determinant)
        ctx.set_materialize_grads(False)  # no zero (M, N, N) gradient for the factors
        ctx.rhs_shape = rhs.shape
        ctx.save_for_backward(a, left, right, x, lu, pivots)

    @staticmethod
    def backward(ctx, grad_x, *_grad_factors_and_determinant):
        _first_order_only()
        a, left, right, x, lu, pivots = ctx.saved_tensors
        if grad_x is None:
            return None, None, None, None, None
        need_a, need_rhs, need_left, need_right, _ = ctx.needs_input_grad
        grad_a = grad_rhs = grad_left = grad_right = None
        y = torch.linalg.lu_solve(lu, pivots, grad_x, adjoint=True)  # P^-H grad_x
        if need_rhs:
            grad_rhs = y.sum_to_size(ctx.rhs_shape)
        rx = x if right is None else right.unsqueeze(-1) * x  # diag(r) x
        ly = y if left is None else left.conj().unsqueeze(-1) * y  # diag(conj l) y
        if need_left:  # dP_ij / dl_i = -A_ij r_j
            grad_left = (y * (a @ rx).conj()).sum(-1).sum_to_size(left.shape)
        if need_right:  # dP_ij / dr_j = -l_i A_ij
            grad_right = (x.conj() * (a.mH @ ly)).sum(-1).sum_to_size(right.shape)
        if need_a:
            grad_a = torch.einsum("...mik,...mjk->...ij", ly, rx.conj())
            grad_a = grad_a.unsqueeze(-3).sum_to_size(a.shape)
        return grad_a, grad_rhs, grad_left, grad_right, None


def _rank_one_factor(p, q, left, right, scale, rhs, determinant):
    """Sherman-Morrison for P = Delta - alpha beta^T (see :func:`diagonal_loop_solve`, Notes)
    at every point, in blocks of :data:`RANK_ONE_BLOCK_VALUES` // N points (its dozen passes
    over (M, N) values then stay in cache), and the LU factors at the points where Delta is too close to
    singular.

    Returns
    -------
    x, c, inv_d, w, sigma, fallback, lu, pivots, determinant
        The (*batch, N, K) solution and c = beta^T x (*batch, 1, K) (None without ``rhs``;
        batch = the loop's batch and point dims broadcast with those of ``rhs``), the
        inverse 1 / (1 - l r) of Delta's diagonal, w = Delta^-1 alpha (..., M, N), sigma =
        1 - beta^T w (..., M); the indices (a tuple over the batch dims) of the LU points and
        their (K', 1, N, N) factors and (K', 1, N) pivots (None where there is none);
        ``log_abs``, ``phase`` and ``relative_pivot`` (*batch) as a tuple (empty unless
        ``determinant``).
    """
    parts = [t.shape[:-1] for t in (left, right) if t is not None]
    batch = torch.broadcast_shapes(p.shape[:-1], q.shape[:-1], *parts,
                                   *(() if rhs is None else (rhs.shape[:-2],)))
    m, step = batch[-1], max(1, RANK_ONE_BLOCK_VALUES // p.shape[-1])
    if len(batch) > 1 or m <= step:  # a batch of loops: one block
        x, c, inv_d, w, sigma, d_min, det = _sherman_morrison(p, q, left, right, scale, rhs, determinant)
    else:
        def block_of(t, block, dim):
            return None if t is None else _points(t, block, dim)

        blocks = [_sherman_morrison(p, q, block_of(left, block, -2), block_of(right, block, -2),
                                    block_of(scale, block, -1), block_of(rhs, block, -3), determinant)
                  for block in (slice(start, start + step) for start in range(0, m, step))]
        x, c, inv_d, w, sigma, d_min = (None if values[0] is None else torch.cat(values, dim=dim)
                                        for values, dim in zip(zip(*(b[:6] for b in blocks)),
                                                               (-3, -3, -2, -2, -1, -1)))
        det = tuple(torch.cat(values, dim=-1) for values in zip(*(b[6] for b in blocks)))
    # NaN compares False: a non-finite point goes to the LU solve (which reports it).
    fallback = (~(d_min >= RANK_ONE_MIN_DIAGONAL * scale)).expand(batch).nonzero(as_tuple=True)
    lu = pivots = None
    if fallback[0].numel():
        def points(t, tail):  # the LU points of t, each as its own batch element of one point
            return None if t is None else t.expand(*batch, *t.shape[-tail:])[fallback].unsqueeze(-tail - 1)

        a = IdentityPlusRankOne(p, q).dense()
        lu, pivots, x_lu, det_lu = _factor_blocks(
            points(a, 2), points(left, 1), points(right, 1), points(rhs, 2),
            scale.expand(batch)[fallback].unsqueeze(-1) if determinant else None)
        if x is not None:
            x_lu = x_lu.squeeze(-3)
            x[fallback] = x_lu
            beta = q if right is None else right * q
            c[fallback] = (points(beta, 1).mT * x_lu).sum(-2, keepdim=True)
        for t, value in zip(det, det_lu):
            t[fallback] = value.squeeze(-1)
    return x, c, inv_d, w, sigma, fallback, lu, pivots, det


def _sherman_morrison(p, q, left, right, scale, rhs, determinant):
    """The formula at a block of points: x, c, inv_d, w, sigma (see :func:`_rank_one_factor`),
    min_i |Delta_ii| and the determinant's tuple, each with the full batch shape."""
    n = p.shape[-1]
    lr = left if right is None else right if left is None else left * right
    d = 1 - lr
    # One reciprocal, then products: a complex division costs about 10 multiplications here.
    inv_d = d.reciprocal()
    alpha = p if left is None else left * p
    beta = q if right is None else right * q
    w = alpha * inv_d
    bw = beta * w
    sigma = 1 - bw.sum(-1)
    batch = sigma.shape if rhs is None else torch.broadcast_shapes(sigma.shape, rhs.shape[:-2])
    d_abs2 = _abs2(d)
    d_min = d_abs2.amin(-1).sqrt().expand(batch)
    x = c = None
    if rhs is not None:
        y = rhs * inv_d.unsqueeze(-1)  # Delta^-1 rhs
        c = (beta.unsqueeze(-1) * y).sum(-2, keepdim=True) / sigma[..., None, None]  # beta^T x
        x = torch.addcmul(y, w.unsqueeze(-1), c)
        x, c = x.expand(*batch, n, rhs.shape[-1]).contiguous(), c.expand(*batch, 1, rhs.shape[-1]).contiguous()
    det = ()
    if determinant:
        log_abs = 0.5 * d_abs2.log().sum(-1) + sigma.abs().log()
        # arg prod d_i from the product of the unit-modulus d_i / |d_i| (no overflow, one
        # angle per point instead of N)
        phase = (d * d_abs2.rsqrt()).prod(-1).angle() + sigma.angle()
        phase = torch.remainder(phase + math.pi, 2 * math.pi) - math.pi
        pivot = torch.minimum(d_min / scale, sigma.abs() / (1 + _abs2(bw).sqrt().sum(-1)))
        det = tuple(t.expand(batch).clone() for t in (log_abs, phase, pivot))
    return x, c, inv_d, w, sigma, d_min, det


def _abs2(t):
    """|t|^2 of a complex tensor from its real and imaginary parts (complex abs, by hypot,
    is about 3 times slower on the CPU)."""
    parts = torch.view_as_real(t)
    return parts[..., 0].square() + parts[..., 1].square()


class _RankOneLoopSolve(torch.autograd.Function):
    """Autograd of :func:`diagonal_loop_solve` for A = I + p q^T: the backward pass reuses
    Delta, w, sigma and c = beta^T x (and the LU factors of the points that took the LU
    solve); with e = alpha^H y, A (r x) = r x + p c and A^H (conj(l) y) = conj(l) y + conj(q) e."""

    @staticmethod
    def forward(ctx, p, q, rhs, left, right, scale, determinant):
        x, c, inv_d, w, sigma, fallback, lu, pivots, det = _rank_one_factor(p, q, left, right, scale,
                                                                            rhs, determinant)
        ctx.mark_non_differentiable(*det)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(p, q, left, right, x)
        ctx.factors = c, inv_d, w, sigma, fallback, lu, pivots
        ctx.rhs_shape = rhs.shape
        return (x, *det)

    @staticmethod
    def backward(ctx, grad_x, *_grad_determinant):
        _first_order_only()
        if grad_x is None:
            return (None,) * 7
        p, q, left, right, x = ctx.saved_tensors
        c, inv_d, w, sigma, fallback, lu, pivots = ctx.factors
        need_p, need_q, need_rhs, need_left, need_right = ctx.needs_input_grad[:5]
        beta = q if right is None else right * q
        # y = P^-H g = conj(Delta)^-1 (g + conj(beta) e), e = alpha^H y = w^H g / conj(sigma)
        e = torch.linalg.vecdot(w.unsqueeze(-1), grad_x, dim=-2).unsqueeze(-2) / sigma.conj()[..., None, None]
        y = torch.addcmul(grad_x, beta.conj().unsqueeze(-1), e).mul_(inv_d.conj().unsqueeze(-1))
        y, e = y.expand(x.shape).contiguous(), e.expand(c.shape).contiguous()
        if lu is not None:
            g_lu = grad_x.expand(x.shape)[fallback].unsqueeze(-3)
            y_lu = torch.linalg.lu_solve(lu, pivots, g_lu, adjoint=True).squeeze(-3)
            y[fallback] = y_lu
            alpha = p if left is None else left * p
            e[fallback] = (alpha.conj().expand(*x.shape[:-1])[fallback].unsqueeze(-1) * y_lu).sum(-2, keepdim=True)
        grad_p = grad_q = grad_rhs = grad_left = grad_right = None
        if need_rhs:
            grad_rhs = y.sum_to_size(ctx.rhs_shape)
        rx = x if right is None else right.unsqueeze(-1) * x  # diag(r) x
        ly = y if left is None else left.conj().unsqueeze(-1) * y  # diag(conj l) y
        if need_left:  # sum_k y * conj(A (r x)) (vecdot conjugates its first argument)
            grad_left = torch.linalg.vecdot(torch.addcmul(rx, p.unsqueeze(-1), c), y)
            grad_left = grad_left.sum_to_size(left.shape)
        if need_right:  # sum_k conj(x) * A^H (conj(l) y)
            grad_right = torch.linalg.vecdot(x, torch.addcmul(ly, q.conj().unsqueeze(-1), e))
            grad_right = grad_right.sum_to_size(right.shape)
        if need_p:  # grad A conj(q) with grad A = sum (conj(l) y) (r x)^H
            grad_p = torch.einsum("...mnk,...mok->...on", ly, c.conj()).sum_to_size(p.shape)
        if need_q:  # grad A^T conj(p)
            grad_q = torch.einsum("...mnk,...mok->...on", rx.conj(), e).sum_to_size(q.shape)
        return grad_p, grad_q, grad_rhs, grad_left, grad_right, None, None
