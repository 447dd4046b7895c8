"""Frequency responses as values that know whether they are diagonal.

Systems compose the responses of their parts frequency by frequency. Most parts of a
reverberator are diagonal (a delay per line, a filter per line), so a diagonal response is
kept as its (..., M, N) diagonal and only made dense (..., M, N, N) where a dense part meets
it. Frequency-independent parts (gains, matrices) carry M = 1 and broadcast.

This module is internal plumbing shared by ``flamo.modules`` and ``flamo.system``; users
see dense tensors from ``response(points)``. The LU kernel of structured loops is
:func:`flamo.functional.diagonal_loop_solve`; every loop solve also returns the determinant of
its loop matrix from its own factors (:func:`flamo.functional.lu_determinant`). A series of
per-line filters and one frequency-independent matrix is kept in the scaled form that
kernel takes; a matrix known to be the identity plus a rank-one matrix (a Householder
reflection) carries its factors along, for the kernel's Sherman-Morrison path.
"""

from __future__ import annotations

import torch

from .functional.loop_solve import (IdentityPlusRankOne, LoopDeterminant, diagonal_loop_determinant,
                                    diagonal_loop_solve, lu_determinant)

__all__ = ["Response", "matmul", "add", "solve_loop", "loop_determinant"]


class Response:
    """A sampled transfer matrix in one of three forms.

    - diagonal: ``data`` (..., M, N) is the diagonal of an N x N matrix at each point;
    - dense: ``data`` (..., M, out, in);
    - scaled: diag(``left``) ``matrix`` diag(``right``), a frequency-independent matrix
      (..., 1, out, in) between the diagonals ``left`` (..., M, out) and ``right``
      (..., M, in) of frequency-dependent diagonal parts (either may be None: identity).
      It is what a series of per-line filters and one mixing matrix gives; a feedback
      loop of this form is solved by :func:`flamo.functional.diagonal_loop_solve`
      without ever forming the (..., M, out, in) product.

    M may be 1 for frequency-independent parts. ``data`` of a scaled response is its
    dense form, computed on each access: code that only needs values stays correct, the
    loop solve reads the factors.

    Parameters
    ----------
    data : torch.Tensor
        The diagonal or the dense matrix; for :meth:`scaled` the middle matrix.
    diagonal : bool
    rank_one : flamo.functional.IdentityPlusRankOne, optional
        For a frequency-independent square matrix (M = 1) that is I + p q^T (a
        Householder reflection), its factors, set by the module that knows them (never
        inferred from values). :func:`matmul` keeps them wherever it keeps ``matrix``
        itself (the scaled form) and drops them otherwise; :func:`solve_loop` then solves
        by Sherman-Morrison.
    """

    __slots__ = ("_data", "diagonal", "left", "right", "rank_one")

    def __init__(self, data: torch.Tensor, diagonal: bool, rank_one: IdentityPlusRankOne | None = None):
        self._data = data
        self.diagonal = diagonal
        self.left = self.right = None
        self.rank_one = rank_one

    @classmethod
    def scaled(cls, left, matrix: torch.Tensor, right,
               rank_one: IdentityPlusRankOne | None = None) -> "Response":
        """diag(left) matrix diag(right) with ``matrix`` (..., 1, out, in) frequency
        independent (and, optionally, its rank-one factors); a plain dense Response when
        both diagonals are None."""
        out = cls(matrix, False, rank_one)
        out.left, out.right = left, right
        return out

    @property
    def is_scaled(self) -> bool:
        """True for the scaled form diag(left) matrix diag(right)."""
        return self.left is not None or self.right is not None

    @property
    def matrix(self) -> torch.Tensor:
        """The frequency-independent middle matrix of a scaled response, else ``data``."""
        return self._data

    @property
    def data(self) -> torch.Tensor:
        """(..., M, N) when ``diagonal``, else the (..., M, out, in) dense matrix."""
        return self.dense() if self.is_scaled else self._data

    @property
    def shape(self):
        """(out, in) channel counts."""
        if self.diagonal:
            n = self._data.shape[-1]
            return (n, n)
        return tuple(self._data.shape[-2:])

    def dense(self) -> torch.Tensor:
        """(..., M, out, in) tensor; diagonal and scaled responses are expanded."""
        if self.diagonal:
            return torch.diag_embed(self._data)
        out = self._data
        if self.left is not None:
            out = self.left.unsqueeze(-1) * out
        if self.right is not None:
            out = out * self.right.unsqueeze(-2)
        return out


def _frequency_independent(r: Response) -> bool:
    return not r.is_scaled and r.matrix.shape[-3] == 1


def _times(x, y):
    """Product of two optional diagonals (None is the identity)."""
    return y if x is None else x if y is None else x * y


def matmul(a: Response, b: Response) -> Response:
    """Series connection: the response of ``a @ b`` (b acts first).

    A frequency-dependent diagonal next to a frequency-independent or scaled matrix gives
    the scaled form (no (M, out, in) product), and so does any diagonal next to a matrix
    with rank-one factors (which the scaled form keeps); every other pair is multiplied
    out."""
    if a.diagonal and b.diagonal:
        return Response(a.data * b.data, True)
    if a.diagonal and (b.is_scaled or (_frequency_independent(b)
                                       and (a.data.shape[-2] > 1 or b.rank_one is not None))):
        return Response.scaled(_times(a.data, b.left), b.matrix, b.right, b.rank_one)
    if b.diagonal and (a.is_scaled or (_frequency_independent(a)
                                       and (b.data.shape[-2] > 1 or a.rank_one is not None))):
        return Response.scaled(a.left, a.matrix, _times(a.right, b.data), a.rank_one)
    if a.right is None and b.left is None and not a.diagonal and not b.diagonal \
            and (a.is_scaled or b.is_scaled) and a.matrix.shape[-3] == b.matrix.shape[-3] == 1:
        return Response.scaled(a.left, a.matrix @ b.matrix, b.right)  # still one matrix
    a_data, b_data = a.data, b.data
    if a.diagonal:  # diag(a) @ B scales the rows of B
        return Response(a_data.unsqueeze(-1) * b_data, False)
    if b.diagonal:  # A @ diag(b) scales the columns of A
        return Response(a_data * b_data.unsqueeze(-2), False)
    return Response(a_data @ b_data, False)


def add(a: Response, b: Response) -> Response:
    """Parallel connection: the response of ``a + b``."""
    if a.diagonal and b.diagonal:
        return Response(a.data + b.data, True)
    if a.diagonal:
        return Response(b.data + torch.diag_embed(a.data), False)
    if b.diagonal:
        return Response(a.data + torch.diag_embed(b.data), False)
    return Response(a.data + b.data, False)


def solve_loop(forward: Response, feedback: Response, rhs: Response | None = None,
               structured: bool = True, determinant: bool = True
               ) -> tuple[Response, LoopDeterminant | None]:
    """(I - F B)^-1 (F @ rhs) by one batched linear solve per evaluation point.

    Parameters
    ----------
    forward, feedback : Response
        F (n x m) and B (m x n) of the loop.
    rhs : Response, optional
        What the loop is applied to; None for the bare loop (rhs = identity). Passing the
        input gains of an FDN here solves for one column instead of n.
    structured : bool, default True
        Use :func:`flamo.functional.diagonal_loop_solve` for FDN-shaped loops (see Notes).
        It supports first-order gradients only; False uses the generic solve, whose
        autograd also gives higher-order gradients (double backward, Hessian-vector
        products).
    determinant : bool, default True
        Also read det(I - F B) off the factors of the solve.

    Returns
    -------
    result : Response
        Diagonal when F and B are both diagonal (the solve is then a division).
    determinant : flamo.functional.LoopDeterminant or None
        det(I - F B) at the points (M may be 1 for a frequency-independent loop), from
        the factors of this solve; None with ``determinant=False``.

    Notes
    -----
    When the loop's matrix F B multiplies out to diag(l) A diag(r), one frequency-independent
    matrix A between per-line frequency-dependent diagonals (the loop of a feedback delay
    network: delays and filters per line in either path, before or after one mixing
    matrix; see :meth:`Response.scaled`), :func:`flamo.functional.diagonal_loop_solve`
    solves it with one LU factorization per point that the backward pass reuses, or by
    Sherman-Morrison in O(N) per point when A carries rank-one factors (a Householder
    :class:`flamo.Matrix`), with the LU at the points where that is not accurate. Other
    loops (a frequency-dependent dense matrix, two matrices with filters between them) use
    torch's generic solve on the dense loop matrix and autograd's generic backward.
    """
    f_rhs = forward if rhs is None else matmul(forward, rhs)
    if forward.diagonal and feedback.diagonal:  # the solve is a division per line
        fb = forward.data * feedback.data
        loop = 1 - fb
        det = lu_determinant(loop, None, 1 + fb.detach().abs().amax(-1)) if determinant else None
        return matmul(Response(1 / loop, True), f_rhs), det
    fb = matmul(forward, feedback)
    if structured and fb.is_scaled:
        a = fb.matrix if fb.rank_one is None else fb.rank_one  # Sherman-Morrison for I + p q^T
        out = diagonal_loop_solve(a, f_rhs.dense(), left=fb.left, right=fb.right,
                                  determinant=determinant)
        return (Response(out[0], False), out[1]) if determinant else (Response(out, False), None)
    loop, scale = _dense_loop(fb)
    # torch.linalg.solve broadcasts the batch (and frequency) dims of both arguments. The
    # private op behind torch.linalg.solve_ex is called because it also returns the LU
    # factors (the determinant for free); lu_factor_ex + lu_solve would give them too, but
    # autograd would then differentiate through the factorization, a much costlier backward
    # than that of solve. It does not raise on an exactly singular matrix: the caller checks
    # the determinant and the result.
    x, lu, pivots, _ = torch._linalg_solve_ex(loop, f_rhs.dense())
    return Response(x, False), lu_determinant(lu, pivots, scale) if determinant else None


def loop_determinant(forward: Response, feedback: Response, structured: bool = True) -> LoopDeterminant:
    """det(I - F B) at the points, factored as :func:`solve_loop` factors it, without a solve.

    The loop matrix is built and LU-factored the same way (structured or generic); the
    result has no autograd history.
    """
    if forward.diagonal and feedback.diagonal:
        with torch.no_grad():
            fb = forward.data * feedback.data
            return lu_determinant(1 - fb, None, 1 + fb.abs().amax(-1))
    fb = matmul(forward, feedback)
    if structured and fb.is_scaled:
        return diagonal_loop_determinant(fb.matrix if fb.rank_one is None else fb.rank_one,
                                         left=fb.left, right=fb.right)
    with torch.no_grad():
        loop, scale = _dense_loop(fb)
        lu, pivots, _ = torch.linalg.lu_factor_ex(loop)
    return lu_determinant(lu, pivots, scale)


def _dense_loop(fb: Response):
    """I - F B as a dense (..., M, n, n) tensor and the bound 1 + max |F B| on its entries."""
    fb = fb.dense()
    n = fb.shape[-1]
    loop = torch.eye(n, dtype=fb.dtype, device=fb.device) - fb
    return loop, 1 + fb.detach().abs().amax((-2, -1))
