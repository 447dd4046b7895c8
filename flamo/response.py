"""Frequency responses as values that know whether they are diagonal.

Systems compose the responses of their parts frequency by frequency. Most parts of a
reverberator are diagonal (a delay per line, a filter per line), so a diagonal response is
kept as its (..., M, N) diagonal and only made dense (..., M, N, N) where a dense part meets
it. Frequency-independent parts (gains, matrices) carry M = 1 and broadcast.

This module is internal plumbing shared by ``flamo.modules`` and ``flamo.system``; users
see dense tensors from ``response(grid)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Response", "matmul", "add", "solve_loop", "diagonal_loop_solve"]


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
               structured: bool = True) -> Response:
    """(I - F B)^-1 (F @ rhs) by one batched linear solve per frequency.

    Parameters
    ----------
    forward, feedback : Response
        F (n x m) and B (m x n) of the loop.
    rhs : Response, optional
        What the loop is applied to; None for the bare loop (rhs = identity). Passing the
        input gains of an FDN here solves for one column instead of n.
    structured : bool, default True
        Use :func:`diagonal_loop_solve` for FDN-shaped loops (see Notes). It supports
        first-order gradients only; False uses the generic solve, whose autograd also
        gives higher-order gradients (double backward, Hessian-vector products).

    Returns
    -------
    Response
        Diagonal when F and B are both diagonal (the solve is then a division).

    Notes
    -----
    When one factor is diagonal and the other is a frequency-independent matrix (the loop
    of a feedback delay network: delays and filters per line, one mixing matrix), the loop
    matrix is I - diag(d) A or I - A diag(d), and :func:`diagonal_loop_solve` solves it with
    one LU factorization per frequency that the backward pass reuses. Other loops use
    ``torch.linalg.solve_ex`` and autograd's generic backward.
    """
    f_rhs = forward if rhs is None else matmul(forward, rhs)
    if forward.diagonal and feedback.diagonal:  # the solve is a division per line
        return matmul(Response(1 / (1 - forward.data * feedback.data), True), f_rhs)
    if structured and forward.diagonal and feedback.data.shape[-3] == 1:
        return Response(diagonal_loop_solve(forward.data, feedback.data, f_rhs.dense()), False)
    if structured and feedback.diagonal and forward.data.shape[-3] == 1:
        return Response(diagonal_loop_solve(feedback.data, forward.data, f_rhs.dense(),
                                            right=True), False)
    fb = matmul(forward, feedback)
    n = fb.data.shape[-1]
    loop = torch.eye(n, dtype=fb.data.dtype, device=fb.data.device) - fb.data
    # torch.linalg.solve broadcasts the batch (and frequency) dims of both arguments.
    # solve_ex does not raise on an exactly singular matrix: callers check for inf/NaN.
    return Response(torch.linalg.solve_ex(loop, f_rhs.dense())[0], False)


def diagonal_loop_solve(d: torch.Tensor, a: torch.Tensor, rhs: torch.Tensor,
                        right: bool = False) -> torch.Tensor:
    """Solve (I - diag(d) A) x = rhs, or (I - A diag(d)) x = rhs with ``right=True``.

    The loop matrix of every frequency is LU-factored once; the backward pass solves the
    adjoint system with the same factors (``lu_solve(..., adjoint=True)``) and forms the
    gradients of ``d`` and ``A`` without any (M, N, N) temporary: with y = L^-H g the
    solved adjoint and x the solution, the left form gives

        grad d = sum_k y * conj(A x),    grad A = sum_{m, k} (conj(d) y) x^H,

    the latter as one (N x MK)(MK x N) product (Giles, "An extended collection of matrix
    derivative results for forward and reverse mode AD", 2008, for grad L = -y x^H).

    Parameters
    ----------
    d : torch.Tensor
        (..., M, N) complex diagonal (frequency-dependent: delays and filters per line).
    a : torch.Tensor
        (..., 1, N, N) complex matrix, frequency-independent (M = 1).
    rhs : torch.Tensor
        (..., M or 1, N, K) complex right-hand sides.
    right : bool, default False
        Use I - A diag(d) instead of I - diag(d) A.

    Returns
    -------
    torch.Tensor
        (..., M, N, K) solution, batch dims broadcast. A frequency where the loop matrix
        is exactly singular gives non-finite entries (the factorization does not raise);
        :class:`flamo.Recursion` checks for them.
    """
    return _DiagonalLoopSolve.apply(d, a, rhs, right)[0]


class _DiagonalLoopSolve(torch.autograd.Function):
    """Autograd of :func:`diagonal_loop_solve` with the LU factors kept for backward."""

    generate_vmap_rule = True

    @staticmethod
    def forward(d, a, rhs, right):
        # I - diag(d) A scales the rows of A, I - A diag(d) its columns. Its transpose is
        # written into a fresh row-major buffer, so the loop matrix itself is column-major,
        # LAPACK's layout: lu_factor_ex overwrites it in place and lu_solve reads it, both
        # without copies (a row-major matrix costs one in each). No diag_embed.
        n = a.shape[-1]
        batch = torch.broadcast_shapes(a.shape[:-2], d.shape[:-1])
        loop_t = torch.empty(*batch, n, n, dtype=torch.result_type(d, a), device=d.device)
        if right:  # (A diag(d))^T = diag(d) A^T
            torch.mul(d.unsqueeze(-1), a.mT, out=loop_t)
        else:  # (diag(d) A)^T = A^T diag(d)
            torch.mul(a.mT, d.unsqueeze(-2), out=loop_t)
        loop = loop_t.mT.neg_()
        loop.diagonal(dim1=-2, dim2=-1).add_(1)
        batch = torch.broadcast_shapes(batch, rhs.shape[:-2])
        pivots = torch.empty(loop.shape[:-1], dtype=torch.int32, device=loop.device)
        info = torch.empty(loop.shape[:-2], dtype=torch.int32, device=loop.device)
        lu, pivots, _ = torch.linalg.lu_factor_ex(loop, out=(loop, pivots, info))
        x = torch.linalg.lu_solve(lu, pivots, rhs.expand(*batch, n, rhs.shape[-1]))
        return x, lu, pivots

    @staticmethod
    def setup_context(ctx, inputs, output):
        d, a, _, right = inputs
        x, lu, pivots = output
        ctx.mark_non_differentiable(lu, pivots)
        ctx.set_materialize_grads(False)  # no zero (M, N, N) gradient for the factors
        ctx.right = right
        ctx.rhs_shape = inputs[2].shape
        ctx.save_for_backward(d, a, x, lu, pivots)

    @staticmethod
    def backward(ctx, grad_x, _grad_lu, _grad_pivots):
        if torch.is_grad_enabled():
            # create_graph=True: the factors are constants here, so a graph of this backward
            # would give silently wrong second derivatives. Refuse instead.
            raise RuntimeError(
                "diagonal_loop_solve supports first-order gradients only (backward was called "
                "with create_graph=True); build the Recursion with structured_solve=False for "
                "double backward or Hessian-vector products")
        d, a, x, lu, pivots = ctx.saved_tensors
        if grad_x is None:
            return None, None, None, None
        need_d, need_a, need_rhs, _ = ctx.needs_input_grad
        grad_d = grad_a = grad_rhs = None
        y = torch.linalg.lu_solve(lu, pivots, grad_x, adjoint=True)  # L^-H grad_x
        if need_rhs:
            grad_rhs = y.sum_to_size(ctx.rhs_shape)
        if need_d:
            if ctx.right:  # dL_ij / dd_j = -A_ij: grad d_j = sum_k conj(x_jk) (A^H y)_jk
                grad_d = (x.conj() * (a.mH @ y)).sum(-1)
            else:  # dL_ij / dd_i = -A_ij: grad d_i = sum_k y_ik conj((A x)_ik)
                grad_d = (y * (a @ x).conj()).sum(-1)
            grad_d = grad_d.sum_to_size(d.shape)
        if need_a:
            if ctx.right:  # grad A = sum_{m,k} y (d x)^H
                left, right_ = y, d.unsqueeze(-1) * x
            else:  # grad A = sum_{m,k} (conj(d) y) x^H
                left, right_ = d.conj().unsqueeze(-1) * y, x
            grad_a = torch.einsum("...mik,...mjk->...ij", left, right_.conj())
            grad_a = grad_a.unsqueeze(-3).sum_to_size(a.shape)
        return grad_d, grad_a, grad_rhs, None
