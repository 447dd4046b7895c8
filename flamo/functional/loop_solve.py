"""The structured loop solve of feedback delay networks: (I - diag(d) A) x = rhs.

A loop whose forward path is diagonal (delays and filters per line) and whose feedback path
is one frequency-independent matrix has the loop matrix I - diag(d(z)) A at every point z.
:func:`diagonal_loop_solve` factors it once per point and reuses the factors in the backward
pass; :func:`flamo.response.solve_loop` uses it for every FDN-shaped :class:`flamo.Recursion`.
The point axis is a batch axis here: any number of points, in any order.
"""

from __future__ import annotations

import torch

__all__ = ["diagonal_loop_solve"]


def diagonal_loop_solve(d: torch.Tensor, a: torch.Tensor, rhs: torch.Tensor,
                        right: bool = False) -> torch.Tensor:
    """Solve (I - diag(d) A) x = rhs, or (I - A diag(d)) x = rhs with ``right=True``.

    The loop matrix at every point is LU-factored once; the backward pass solves the
    adjoint system with the same factors (``lu_solve(..., adjoint=True)``) and forms the
    gradients of ``d`` and ``A`` without any (M, N, N) temporary: with y = L^-H g the
    solved adjoint and x the solution, the left form gives

        grad d = sum_k y * conj(A x),    grad A = sum_{m, k} (conj(d) y) x^H,

    the latter as one (N x MK)(MK x N) product (Giles, "An extended collection of matrix
    derivative results for forward and reverse mode AD", 2008, for grad L = -y x^H).

    Parameters
    ----------
    d : torch.Tensor
        (..., M, N) complex diagonal at M points (delays and filters per line).
    a : torch.Tensor
        (..., 1, N, N) complex matrix, the same at every point.
    rhs : torch.Tensor
        (..., M or 1, N, K) complex right-hand sides.
    right : bool, default False
        Use I - A diag(d) instead of I - diag(d) A.

    Returns
    -------
    torch.Tensor
        (..., M, N, K) solution, batch dims broadcast. A point where the loop matrix
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
