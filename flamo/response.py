"""Frequency responses as values that know whether they are diagonal.

Systems compose the responses of their parts frequency by frequency. Most parts of a
reverberator are diagonal (a delay per line, a filter per line), so a diagonal response is
kept as its (..., M, N) diagonal and only made dense (..., M, N, N) where a dense part meets
it. Frequency-independent parts (gains, matrices) carry M = 1 and broadcast.

This module is internal plumbing shared by ``flamo.modules`` and ``flamo.system``; users
see dense tensors from ``response(points)``. The LU kernel of structured loops is
:func:`flamo.functional.diagonal_loop_solve`; every loop solve also returns the determinant of
its loop matrix from its own factors (:func:`flamo.functional.lu_determinant`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .functional.loop_solve import (LoopDeterminant, diagonal_loop_determinant, diagonal_loop_solve,
                                    lu_determinant)

__all__ = ["Response", "matmul", "add", "solve_loop", "loop_determinant"]


@dataclass(frozen=True)
class Response:
    """A sampled transfer matrix.

    Attributes
    ----------
    data : torch.Tensor
        Complex tensor, (..., M, N) when ``diagonal`` (the diagonal of an N x N matrix at
        each frequency) else (..., M, out, in). M may be 1 for frequency-independent parts.
    diagonal : bool
    """

    data: torch.Tensor
    diagonal: bool

    @property
    def shape(self):
        """(out, in) channel counts."""
        if self.diagonal:
            n = self.data.shape[-1]
            return (n, n)
        return tuple(self.data.shape[-2:])

    def dense(self) -> torch.Tensor:
        """(..., M, out, in) tensor; diagonal responses are embedded."""
        return torch.diag_embed(self.data) if self.diagonal else self.data


def matmul(a: Response, b: Response) -> Response:
    """Series connection: the response of ``a @ b`` (b acts first)."""
    if a.diagonal and b.diagonal:
        return Response(a.data * b.data, True)
    if a.diagonal:  # diag(a) @ B scales the rows of B
        return Response(a.data.unsqueeze(-1) * b.data, False)
    if b.diagonal:  # A @ diag(b) scales the columns of A
        return Response(a.data * b.data.unsqueeze(-2), False)
    return Response(a.data @ b.data, False)


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
    When one factor is diagonal and the other is a frequency-independent matrix (the loop
    of a feedback delay network: delays and filters per line, one mixing matrix), the loop
    matrix is I - diag(d) A or I - A diag(d), and
    :func:`flamo.functional.diagonal_loop_solve` solves it with
    one LU factorization per frequency that the backward pass reuses. Other loops use
    torch's generic solve and autograd's generic backward.
    """
    f_rhs = forward if rhs is None else matmul(forward, rhs)
    if forward.diagonal and feedback.diagonal:  # the solve is a division per line
        fb = forward.data * feedback.data
        loop = 1 - fb
        det = lu_determinant(loop, None, 1 + fb.detach().abs().amax(-1)) if determinant else None
        return matmul(Response(1 / loop, True), f_rhs), det
    kind = _structured_kind(forward, feedback) if structured else None
    if kind is not None:
        d, a, right = _structured_parts(forward, feedback, kind)
        out = diagonal_loop_solve(d, a, f_rhs.dense(), right=right, determinant=determinant)
        return (Response(out[0], False), out[1]) if determinant else (Response(out, False), None)
    loop, scale = _dense_loop(forward, feedback)
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
    kind = _structured_kind(forward, feedback) if structured else None
    if kind is not None:
        d, a, right = _structured_parts(forward, feedback, kind)
        return diagonal_loop_determinant(d, a, right=right)
    with torch.no_grad():
        loop, scale = _dense_loop(forward, feedback)
        lu, pivots, _ = torch.linalg.lu_factor_ex(loop)
    return lu_determinant(lu, pivots, scale)


def _structured_kind(forward: Response, feedback: Response):
    """"left" for diag(d) A (diagonal forward, constant feedback), "right" for A diag(d),
    None when the loop is not FDN-shaped."""
    if forward.diagonal and feedback.data.shape[-3] == 1:
        return "left"
    if feedback.diagonal and forward.data.shape[-3] == 1:
        return "right"
    return None


def _structured_parts(forward, feedback, kind):
    if kind == "left":
        return forward.data, feedback.data, False
    return feedback.data, forward.data, True


def _dense_loop(forward, feedback):
    """I - F B as a dense (..., M, n, n) tensor and the bound 1 + max |F B| on its entries."""
    fb = matmul(forward, feedback).dense()
    n = fb.shape[-1]
    loop = torch.eye(n, dtype=fb.dtype, device=fb.device) - fb
    return loop, 1 + fb.detach().abs().amax((-2, -1))
