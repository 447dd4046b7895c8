r"""Block state-space recursions shared by the recursive filters (:mod:`baselines.iir`) and
the block FDN (:mod:`baselines.fdn`): a private module of the package, its names public.

A single-input single-output system of order p, y[n] = H z[n] + J u[n], z[n+1] = F z[n] + G u[n],
is run in blocks of L samples: the particular responses of all blocks are one batched matmul
with the Toeplitz matrix of the first L impulse-response samples, and only the p-dimensional
state recursion between blocks is a Python loop (:func:`ss_block`, :func:`ss_run`). A cascade
of K biquads is one system of order 2K (:func:`cascade_ss`).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

__all__ = ["normalize_pad", "companion", "powers", "ss_block", "ss_block_matrices", "cascade_ss",
           "ss_run", "check_stable"]

# ----------------------------------------------------------------------------
# block state-space recursion (pure torch, autograd-friendly)
# ----------------------------------------------------------------------------
def normalize_pad(b: torch.Tensor, a: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """Divide by ``a[..., 0]`` and zero-pad ``b`` and ``a`` to length ``p + 1``.

    Returns ``(b_n, a_n, p)`` with ``p = max(nb, na) - 1`` the filter order.
    """
    a0 = a[..., :1]
    b, a = b / a0, a / a0
    p = max(b.shape[-1], a.shape[-1]) - 1
    b = torch.nn.functional.pad(b, (0, p + 1 - b.shape[-1]))
    a = torch.nn.functional.pad(a, (0, p + 1 - a.shape[-1]))
    return b, a, p


def companion(a: torch.Tensor) -> torch.Tensor:
    """Transition matrix ``F`` (..., p, p) of the transposed direct form II.

    ``F[:, 0] = -a[1:]`` and ``F[i, i + 1] = 1``; its eigenvalues are the
    poles, i.e. the roots of ``z^p + a_1 z^(p-1) + ... + a_p``.
    """
    p = a.shape[-1] - 1
    shift = torch.eye(p, p - 1, dtype=a.dtype, device=a.device)
    shift = shift.expand(*a.shape[:-1], p, p - 1)
    return torch.cat([-a[..., 1:].unsqueeze(-1), shift], dim=-1)


def powers(F: torch.Tensor, n: int) -> torch.Tensor:
    """Matrix powers ``F^0 .. F^(n-1)``, shape (Bc, n, p, p), by repeated doubling.

    ``ceil(log2 n)`` batched matmuls instead of ``n`` sequential ones: the block
    ``F^j, j < 2^i`` times ``F^(2^i)`` gives the next ``2^i`` powers.
    """
    p = F.shape[-1]
    P = torch.eye(p, dtype=F.dtype, device=F.device).expand(F.shape[0], 1, p, p)
    P = torch.cat([P, F.unsqueeze(1)], dim=1)
    while P.shape[1] < n:
        step = P[:, -1:] @ F.unsqueeze(1)  # F^len(P), (Bc, 1, p, p)
        P = torch.cat([P, step @ P], dim=1)
    return P[:, :n]


def ss_block(F: torch.Tensor, G: torch.Tensor, H: torch.Tensor, J: torch.Tensor,
              L: int) -> dict:
    r"""Block matrices of a single-input single-output state-space recursion.

    The system of order ``p``

    .. math::
        y[n] = H z[n] + J u[n], \qquad z[n+1] = F z[n] + G u[n]

    unrolled over ``L`` steps from the state ``z`` at the start of a block gives

    .. math::
        y_{blk} = T_L u_{blk} + O z, \qquad z_{next} = F^L z + C u_{blk},

    where ``T_L`` (L x L) is the lower-triangular Toeplitz matrix of the
    impulse response ``h[0] = J, h[n] = H F^{n-1} G``, ``O[n] = H F^n``
    (L x p) and ``C[:, j] = F^{L-1-j} G`` (p x L).

    Parameters
    ----------
    F : torch.Tensor
        (Bc, p, p) transition matrices, ``p >= 1``.
    G, H : torch.Tensor
        (Bc, p) input and output vectors.
    J : torch.Tensor
        (Bc,) feed-through.
    L : int
        Block length in samples.

    Returns
    -------
    dict
        ``T`` (Bc, L, L), ``O`` (Bc, L, p), ``C`` (Bc, p, L),
        ``P`` (Bc, L + 1, p, p) powers ``F^0 .. F^L``, ``L``, ``p``.
        All are differentiable functions of ``F, G, H, J``.
    """
    p = F.shape[-1]
    P = powers(F, L + 1)  # (Bc, L+1, p, p), O(L p^3) flops in log2(L) steps
    O = (H[:, None, None, :] @ P[:, :L]).squeeze(-2)  # (Bc, L, p): H F^n
    FnG = (P[:, :L] @ G[:, None, :, None]).squeeze(-1)  # (Bc, L, p): F^n G
    h = torch.cat([J[:, None], (O[:, : L - 1] @ G[:, :, None]).squeeze(-1)], dim=1)
    n = torch.arange(L, device=F.device)
    lag = n[:, None] - n[None, :]
    T = h[:, lag.clamp(min=0)] * (lag >= 0).to(h.dtype)
    C = FnG.flip(1).transpose(1, 2)  # C[:, :, j] = F^(L-1-j) G
    return {"T": T, "O": O, "C": C, "P": P, "L": L, "p": p}


def ss_block_matrices(b: torch.Tensor, a: torch.Tensor, L: int) -> dict:
    r"""Block matrices of the transposed direct form II of ``B(z)/A(z)``.

    The transposed direct form II (the form used by scipy, whose ``zi`` has
    the same meaning as the state here) with ``a_0 = 1`` and order ``p`` is
    the state-space system of :func:`ss_block` with ``F`` from
    :func:`companion`, ``G_i = b_{i+1} - a_{i+1} b_0``, ``H = e_0^T`` and
    ``J = b_0``.

    Parameters
    ----------
    b, a : torch.Tensor
        Normalized, padded coefficients, shape (Bc, p + 1), ``p >= 1``.
    L : int
        Block length in samples.

    Returns
    -------
    dict
        As :func:`ss_block`.
    """
    p = a.shape[-1] - 1
    F = companion(a)
    G = b[:, 1:] - a[:, 1:] * b[:, :1]
    H = torch.zeros_like(G)
    H[:, 0] = 1.0
    return ss_block(F, G, H, b[:, 0], L)


def cascade_ss(b: torch.Tensor, a: torch.Tensor):
    r"""One state-space system of order ``2K`` for a cascade of ``K`` biquads.

    Section ``k`` in transposed direct form II has state ``z_k`` (2,),
    ``y_k = b_{0k} y_{k-1} + e_0^T z_k`` and
    ``z_k' = F_k z_k + G_k y_{k-1}`` with ``y_0 = u``.  Writing every
    intermediate output as ``y_k = r_k^T z + s_k u`` over the stacked state
    ``z = (z_1, ..., z_K)`` (``r_0 = 0, s_0 = 1``,
    ``r_k = b_{0k} r_{k-1} + e_{2k}``, ``s_k = b_{0k} s_{k-1}``) gives the
    block lower-triangular transition matrix with rows
    ``F_k`` on the diagonal block plus ``G_k r_{k-1}^T``, the input vector
    ``G_k s_{k-1}``, the output row ``r_K`` and the feed-through ``s_K``.
    Running the whole cascade as one system lets the block recursion of
    :func:`ss_run` make one pass instead of one pass per section.

    Parameters
    ----------
    b, a : torch.Tensor
        Normalized sections (``a_0 = 1``), shape (Bc, K, 3) each.

    Returns
    -------
    F (Bc, 2K, 2K), G (Bc, 2K), H (Bc, 2K), J (Bc,)
        Differentiable functions of ``b`` and ``a``.
    """
    Bc, K = b.shape[0], b.shape[1]
    p = 2 * K
    pad = torch.nn.functional.pad
    r = b.new_zeros(Bc, p)
    s = b.new_ones(Bc)
    rows, Gs = [], []
    for k in range(K):
        bk, ak = b[:, k], a[:, k]
        Fk = companion(ak)  # (Bc, 2, 2)
        Gk = bk[:, 1:] - ak[:, 1:] * bk[:, :1]  # (Bc, 2)
        rows.append(pad(Fk, (2 * k, p - 2 * k - 2)) + Gk[:, :, None] * r[:, None, :])
        Gs.append(Gk * s[:, None])
        e = torch.zeros(p, dtype=b.dtype, device=b.device)
        e[2 * k] = 1.0
        r = bk[:, :1] * r + e
        s = bk[:, 0] * s
    return torch.cat(rows, dim=1), torch.cat(Gs, dim=1), r, s


def ss_run(u: torch.Tensor, mats: dict, z0: Optional[torch.Tensor] = None
            ) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Filter ``u`` with the block state-space recursion, carrying the state.

    Algorithm: the input is cut into ``T // L`` full blocks plus a remainder.
    The particular (zero-state) responses of all blocks are one batched matmul
    with ``T_L``, and the contributions ``C u_blk`` of each block to the next
    state are another.  Only the ``p``-dimensional state recursion
    ``z_{k+1} = F^L z_k + C u_k`` runs in a Python loop (``T / L``
    iterations of a p x p mat-vec); the homogeneous responses ``O z_k`` are
    then one more batched matmul.  Cost ``O(T (L + 2p))`` multiply-adds per
    channel, versus ``O(T p)`` for a sample-by-sample recursion that would
    need ``T`` Python iterations.

    Parameters
    ----------
    u : torch.Tensor
        Input, shape (B, T); ``B`` broadcasts with the coefficient batch Bc.
    mats : dict
        Output of :func:`ss_block_matrices`.
    z0 : torch.Tensor, optional
        Initial state (B, p) (scipy ``zi`` convention); zeros if None.

    Returns
    -------
    y : torch.Tensor
        Output, shape (max(B, Bc), T).
    z : torch.Tensor
        Final state, shape (max(B, Bc), p).
    """
    L, p = mats["L"], mats["p"]
    Tm, O, C, P = mats["T"], mats["O"], mats["C"], mats["P"]
    B = max(u.shape[0], Tm.shape[0])
    T = u.shape[-1]
    if z0 is None:
        z = u.new_zeros(B, p)
    else:
        z = z0.expand(B, p)
    nblk, rem = divmod(T, L)
    parts = []
    if nblk > 0:
        U = u[:, : nblk * L].reshape(u.shape[0], nblk, L)
        Yp = U @ Tm.transpose(1, 2)  # (B, nblk, L) particular solutions
        W = U @ C.transpose(1, 2)  # (B, nblk, p) input -> next state
        FL = P[:, L].transpose(1, 2)  # (Bc, p, p), acts on row vectors
        W = W.expand(B, nblk, p)
        starts = []
        for k in range(nblk):
            starts.append(z)
            z = (z.unsqueeze(1) @ FL).squeeze(1) + W[:, k]
        Z = torch.stack(starts, dim=1)  # (B, nblk, p)
        Y = Yp + Z @ O.transpose(1, 2)
        parts.append(Y.reshape(B, nblk * L))
    if rem > 0:
        ur = u[:, nblk * L:]
        yr = (ur.unsqueeze(1) @ Tm[:, :rem, :rem].transpose(1, 2)).squeeze(1)
        yr = yr + (z.unsqueeze(1) @ O[:, :rem].transpose(1, 2)).squeeze(1)
        z = ((z.unsqueeze(1) @ P[:, rem].transpose(1, 2)).squeeze(1)
             + (ur.unsqueeze(1) @ C[:, :, L - rem:].transpose(1, 2)).squeeze(1))
        parts.append(yr.expand(B, rem))
    if not parts:
        return u.new_zeros(B, 0), z
    return torch.cat(parts, dim=-1), z


def check_stable(a: torch.Tensor, name: str = "a") -> None:
    """Raise ValueError if any denominator ``a`` (..., na) has a pole |p| >= 1."""
    if a.shape[-1] < 2:
        return
    an = a.detach().to("cpu", torch.float64)
    an = an / an[..., :1]
    poles = torch.linalg.eigvals(companion(an.reshape(-1, an.shape[-1])))
    radius = poles.abs().amax(-1)  # (prod(batch),)
    bad = torch.nonzero(radius >= 1.0).flatten()
    if bad.numel() > 0:
        idx = tuple(int(i) for i in np.unravel_index(int(bad[0]), an.shape[:-1]))
        raise ValueError(
            f"{name}: expected stable denominators (all poles |p| < 1), but the filter at "
            f"batch index {idx} has max pole radius {float(radius[bad[0]]):.6g} "
            f"({bad.numel()} unstable filter(s) in total)")
