"""Frequency responses as values that know whether they are diagonal.

Systems compose the responses of their parts frequency by frequency. Most parts of a
reverberator are diagonal (a delay per line, a filter per line), so a diagonal response is
kept as its (..., M, N) diagonal and only made dense (..., M, N, N) where a dense part meets
it. Frequency-independent parts (gains, matrices) carry M = 1 and broadcast.

This module is internal plumbing shared by ``flamo.modules`` and ``flamo.system``; users
see dense tensors from ``response(points)``. The LU kernel of structured loops is
:func:`flamo.functional.diagonal_loop_solve`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .functional.loop_solve import diagonal_loop_solve

__all__ = ["Response", "matmul", "add", "solve_loop"]


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

    Returns
    -------
    Response
        Diagonal when F and B are both diagonal (the solve is then a division).

    Notes
    -----
    When one factor is diagonal and the other is a frequency-independent matrix (the loop
    of a feedback delay network: delays and filters per line, one mixing matrix), the loop
    matrix is I - diag(d) A or I - A diag(d), and
    :func:`flamo.functional.diagonal_loop_solve` solves it with
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
