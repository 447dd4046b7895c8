r"""Differentiable recursive (IIR) filtering on plain tensors.

Two public functions:

* :func:`lfilter` -- direct-form rational filter ``B(z)/A(z)`` with zero
  initial conditions, batched and broadcast over leading dimensions.
* :func:`sosfilt` -- cascade of second-order sections (scipy layout).

Signals are time first, ``(T,)`` or ``(..., T, C)``, as everywhere in flamo
(:mod:`flamo.signal`); the coefficients' batch dims broadcast against the
signal's ``(..., C)``.  The private helpers below work on time-last rows.

Both are differentiable w.r.t. the coefficients and the input.  ``lfilter``
(and ``sosfilt`` with the scipy backend, one ``lfilter`` per section) uses a
custom :class:`torch.autograd.Function` whose backward pass is itself an IIR
filter run backward in time (the adjoint of the LTI operator), so that the
cost of the backward pass equals one extra filtering pass instead of storing
a graph of ``T`` recursion steps.

Two numerical backends compute the recursion:

``"scipy"``
    :func:`scipy.signal.lfilter` on detached numpy arrays (CPU only, the CPU
    default).
``"torch"``
    a block state-space algorithm in pure torch (any device), see
    :func:`baselines._statespace.ss_block` and :func:`~baselines._statespace.ss_run`: blocks of ``L`` samples are
    batched matmuls and only the state recursion between blocks is a Python
    loop (``T / L`` iterations).  For ``sosfilt`` the whole cascade of ``K``
    sections is one state-space system of order ``2K``
    (:func:`~baselines._statespace.cascade_ss`), so one pass filters all sections; it is
    differentiated by plain autograd through the block algorithm.  The
    helpers support a carried state, which is what :mod:`baselines.fdn` uses
    for the filters inside the feedback loop.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import scipy.signal
import torch

from flamo.signal import time_first, time_last

from ._statespace import cascade_ss, check_stable, normalize_pad, ss_block, ss_block_matrices, ss_run

__all__ = ["lfilter", "sosfilt"]

_BACKENDS = ("scipy", "torch")
#: default block length of the torch backend (samples)
DEFAULT_BLOCK = 128
#: default block length of the torch backend of sosfilt (samples); the cascade
#: has a larger state (2K), so longer blocks amortize the state recursion better
CASCADE_BLOCK = 256


def _torch_lfilter(b: torch.Tensor, a: torch.Tensor, x: torch.Tensor,
                   block: int = DEFAULT_BLOCK) -> torch.Tensor:
    """Pure-torch ``lfilter`` for (Bb, nb), (Ba, na), (Bx, T) -> (B, T)."""
    b, a, p = normalize_pad(b, a)
    if p == 0:
        return b[:, :1] * x
    Bc = max(b.shape[0], a.shape[0])
    b, a = b.expand(Bc, -1), a.expand(Bc, -1)
    L = max(1, min(block, x.shape[-1]))
    y, _ = ss_run(x, ss_block_matrices(b, a, L))
    return y


def _scipy_lfilter(b: torch.Tensor, a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``scipy.signal.lfilter`` on detached CPU arrays, row by row if needed."""
    bn = b.detach().cpu().numpy()
    an = a.detach().cpu().numpy()
    xn = x.detach().cpu().numpy()
    if bn.shape[0] == 1 and an.shape[0] == 1:
        yn = scipy.signal.lfilter(bn[0], an[0], xn, axis=-1)
    else:
        B = max(bn.shape[0], an.shape[0], xn.shape[0])
        yn = np.empty((B, xn.shape[-1]), dtype=np.result_type(bn, an, xn))
        for i in range(B):
            yn[i] = scipy.signal.lfilter(bn[min(i, bn.shape[0] - 1)],
                                         an[min(i, an.shape[0] - 1)],
                                         xn[min(i, xn.shape[0] - 1)])
    return torch.from_numpy(np.ascontiguousarray(yn)).to(device=x.device, dtype=x.dtype)


def _filter(b, a, x, backend):
    if backend == "scipy":
        return _scipy_lfilter(b, a, x)
    return _torch_lfilter(b, a, x)


# ----------------------------------------------------------------------------
# autograd function
# ----------------------------------------------------------------------------
def _reduce_rows(g: torch.Tensor, rows: int) -> torch.Tensor:
    """Sum a (B, n) gradient to (1, n) when the input was broadcast."""
    return g.sum(0, keepdim=True) if rows == 1 and g.shape[0] != 1 else g


class _LFilter(torch.autograd.Function):
    r"""``y = lfilter(b, a, x)`` with an adjoint-filter backward.

    Shapes: b (Bb, nb), a (Ba, na), x (Bx, T), each leading dim 1 or B.

    Derivation.  With zero initial conditions the filter is the linear map
    ``y = A^{-1} B x`` where ``A`` and ``B`` are the T x T lower-triangular
    Toeplitz matrices whose first columns are ``a`` and ``b`` (zero-padded),
    i.e. the difference equation ``sum_k a_k y[n-k] = sum_k b_k x[n-k]``.
    No normalization by ``a_0`` is needed in this form.  Let ``g = dL/dy`` and
    ``S_k`` the delay by ``k`` samples (so ``A = sum_k a_k S_k``).

    * Adjoint state: ``u = A^{-T} g``.  The transpose of a lower-triangular
      Toeplitz matrix is the same filter run backward in time, hence
      ``u = flip(lfilter(1, a, flip(g)))`` -- an IIR filter on the
      time-reversed gradient, truncated to ``T`` samples.
    * Input: ``dL/dx = B^T A^{-T} g = B^T u``, i.e.
      ``dL/dx[n] = sum_k b_k u[n + k]`` (equivalently
      ``flip(lfilter(b, a, flip(g)))``).
    * Numerator: ``dy/db_k = A^{-1} S_k x`` so
      ``dL/db_k = u^T S_k x = sum_n u[n] x[n - k]``.
    * Denominator: differentiating ``A y = B x`` gives
      ``S_k y + A dy/da_k = 0``, so ``dL/da_k = -u^T S_k y
      = -sum_n u[n] y[n - k]``, valid for every ``k`` including ``k = 0``
      (the ``a_0`` scaling is carried by ``u``, which already contains the
      factor ``1 / a_0``).

    The backward calls this Function again (for ``u``), so it is itself
    differentiable and higher-order gradients work.
    """

    @staticmethod
    def forward(ctx, b, a, x, backend):
        y = _filter(b, a, x, backend)
        ctx.backend = backend
        ctx.save_for_backward(b, a, x, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        b, a, x, y = ctx.saved_tensors
        T = x.shape[-1]
        one = torch.ones(1, 1, dtype=a.dtype, device=a.device)
        u = _LFilter.apply(one, a, gy.flip(-1), ctx.backend).flip(-1)  # A^{-T} g
        gb = ga = gx = None
        if ctx.needs_input_grad[2]:
            nb = b.shape[-1]
            up = torch.nn.functional.pad(u, (0, nb - 1))
            gx = sum(b[:, k:k + 1] * up[:, k:k + T] for k in range(nb))
            gx = _reduce_rows(gx, x.shape[0])
        if ctx.needs_input_grad[0]:
            gb = torch.stack([_lagged_dot(u, x, k, T) for k in range(b.shape[-1])], -1)
            gb = _reduce_rows(gb, b.shape[0])
        if ctx.needs_input_grad[1]:
            ga = -torch.stack([_lagged_dot(u, y, k, T) for k in range(a.shape[-1])], -1)
            ga = _reduce_rows(ga, a.shape[0])
        return gb, ga, gx, None


def _lagged_dot(u: torch.Tensor, v: torch.Tensor, k: int, T: int) -> torch.Tensor:
    """``sum_n u[n] v[n - k]`` over the last axis, broadcast over rows."""
    if k >= T:
        return torch.zeros(torch.broadcast_shapes(u.shape[:-1], v.shape[:-1]),
                           dtype=u.dtype, device=u.device)
    return (u[:, k:] * v[:, : T - k]).sum(-1)


# ----------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------
def _check_tensor(name: str, t, min_dim: int = 1) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if not (t.is_floating_point()):
        raise TypeError(f"{name}: expected a real floating-point tensor, got dtype {t.dtype}")
    if t.ndim < min_dim:
        raise ValueError(f"{name}: expected at least {min_dim} dimension(s), got shape {tuple(t.shape)}")
    if t.shape[-1] < 1:
        raise ValueError(f"{name}: last dimension must be >= 1, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: expected finite values, got NaN or Inf")
    return t


def _resolve_backend(backend: Optional[str], device: torch.device) -> str:
    if backend is None:
        return "scipy" if device.type == "cpu" else "torch"
    if backend not in _BACKENDS:
        raise ValueError(f"backend: expected one of {_BACKENDS} or None, got {backend!r}")
    if backend == "scipy" and device.type != "cpu":
        raise ValueError(f"backend: 'scipy' needs CPU tensors, got device {device}")
    return backend


# ----------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------
def lfilter(b: torch.Tensor, a: torch.Tensor, x: torch.Tensor,
            backend: Optional[str] = None, check_stability: bool = True) -> torch.Tensor:
    r"""Differentiable IIR filter ``Y(z) = B(z) / A(z) X(z)``, zero initial state.

    Computes ``sum_k a_k y[n-k] = sum_k b_k x[n-k]`` (same semantics as
    :func:`scipy.signal.lfilter`, including normalization by ``a[..., 0]``),
    along the time axis of ``x``.  The batch dims of ``b`` and ``a`` broadcast
    against the dims of ``x`` other than time, ``(..., C)``: ``b`` of shape
    ``(C, nb)`` filters each of C channels with its own filter.
    Gradients w.r.t. ``b``, ``a`` and ``x`` are computed by the adjoint
    filter (see :class:`_LFilter` for the derivation): one extra IIR pass on
    the time-reversed output gradient plus lagged inner products.

    Parameters
    ----------
    b : torch.Tensor
        Numerator coefficients, shape (..., nb), in powers of ``z^-1``.
    a : torch.Tensor
        Denominator coefficients, shape (..., na), ``a[..., 0] != 0``.
    x : torch.Tensor
        Input signal, time first: shape (T,) or (..., T, C), samples.
    backend : {"scipy", "torch"}, optional
        ``"scipy"`` (CPU only) or the block state-space ``"torch"``
        algorithm (any device).  Default: ``"scipy"`` for CPU tensors,
        ``"torch"`` otherwise.
    check_stability : bool
        If True (default), raise ValueError when a denominator has a pole with
        modulus >= 1.

    Returns
    -------
    torch.Tensor
        Output, time first: (T, *broadcast) for a (T,) input with batched coefficients,
        else (broadcast(...), T, C), dtype promoted from the inputs.

    Raises
    ------
    TypeError
        Non-tensor or non-floating inputs.
    ValueError
        Empty coefficient vectors, ``a[..., 0] == 0``, non-finite values,
        incompatible batch shapes, different devices, unknown backend or an
        unstable denominator.
    """
    b = _check_tensor("b", b)
    a = _check_tensor("a", a)
    x = _check_tensor("x", time_last(x, "lfilter", "x"))
    if not (b.device == a.device == x.device):
        raise ValueError(f"b, a, x: expected tensors on one device, got {b.device}, {a.device}, {x.device}")
    if bool((a[..., 0] == 0).any()):
        raise ValueError("a: expected a[..., 0] != 0, got a zero leading denominator coefficient")
    backend = _resolve_backend(backend, x.device)
    if check_stability:
        check_stable(a, "a")
    dtype = torch.promote_types(torch.promote_types(b.dtype, a.dtype), x.dtype)
    b, a, x = b.to(dtype), a.to(dtype), x.to(dtype)
    try:
        batch = torch.broadcast_shapes(b.shape[:-1], a.shape[:-1], x.shape[:-1])
    except RuntimeError as err:
        raise ValueError(
            f"b, a, x: leading (batch) dimensions must broadcast, got shapes "
            f"{tuple(b.shape)}, {tuple(a.shape)}, {tuple(x.shape)}") from err
    B = math.prod(batch)

    def rows(t):  # (..., n) -> (1, n) if not batched else (B, n)
        if math.prod(t.shape[:-1]) == 1:
            return t.reshape(1, t.shape[-1])
        return t.expand(*batch, t.shape[-1]).reshape(B, t.shape[-1])

    y = _LFilter.apply(rows(b), rows(a), rows(x), backend)
    return time_first(y.expand(B, y.shape[-1]).reshape(*batch, x.shape[-1]))


def sosfilt(sos: torch.Tensor, x: torch.Tensor, backend: Optional[str] = None,
            check_stability: bool = True) -> torch.Tensor:
    """Differentiable cascade of second-order sections.

    Section ``k`` is ``B_k(z) / A_k(z)`` with coefficients
    ``sos[..., k, :3]``, ``sos[..., k, 3:]`` (layout ``[b0 b1 b2 a0 a1 a2]``
    as in :func:`scipy.signal.sosfilt`, but any nonzero ``a0`` is allowed).
    With the scipy backend each section is one :func:`lfilter` call, so
    gradients flow through each section by its adjoint filter; with the torch
    backend the cascade runs as one state-space system of order ``2K``
    (:func:`_sosfilt_cascade`), one block recursion for all sections.

    Parameters
    ----------
    sos : torch.Tensor
        Sections, shape (..., K, 6).  A (K, 6) array applies one cascade to
        every channel of ``x``; (N, K, 6) with ``x`` (T, N) applies one
        cascade per channel (batch dims broadcast as in :func:`lfilter`).
    x : torch.Tensor
        Input, time first: shape (T,) or (..., T, C).
    backend, check_stability
        As in :func:`lfilter`.

    Returns
    -------
    torch.Tensor
        Output, time first, shaped as in :func:`lfilter`.
    """
    if not isinstance(sos, torch.Tensor):
        raise TypeError(f"sos: expected a torch.Tensor, got {type(sos).__name__}")
    if sos.ndim < 2 or sos.shape[-1] != 6 or sos.shape[-2] < 1:
        raise ValueError(f"sos: expected shape (..., K, 6) with K >= 1, got {tuple(sos.shape)}")
    x = time_last(x, "sosfilt", "x")
    if backend == "torch" or (backend is None and sos.device.type != "cpu"):
        return time_first(_sosfilt_cascade(sos, x, check_stability))
    y = x
    for k in range(sos.shape[-2]):
        try:
            # lfilter takes time first: one section at a time on the time-last rows
            y = time_last(lfilter(sos[..., k, :3], sos[..., k, 3:], time_first(y),
                                  backend=backend, check_stability=check_stability),
                          check_channels=False)
        except ValueError as err:
            raise ValueError(f"sos: section {k}: {err}") from err
    return time_first(y)


def _sosfilt_cascade(sos: torch.Tensor, x: torch.Tensor, check_stability: bool,
                     block: int = CASCADE_BLOCK) -> torch.Tensor:
    """Torch backend of :func:`sosfilt`: the cascade as one state-space system.

    The K sections become one system of order 2K (:func:`cascade_ss`) run
    by one block recursion (:func:`ss_run`), so the Python loop makes
    ``T / block`` iterations for the whole cascade instead of per section.
    Differentiable by plain autograd through the block algorithm (its graph
    has ``O(T / block)`` nodes, and the backward recursion over the block
    states runs backward in time, like the adjoint filter of :class:`_LFilter`).
    """
    sos = _check_tensor("sos", sos)
    x = _check_tensor("x", x)
    if sos.device != x.device:
        raise ValueError(f"sos, x: expected tensors on one device, got {sos.device}, {x.device}")
    for k in range(sos.shape[-2]):
        if bool((sos[..., k, 3] == 0).any()):
            raise ValueError(f"sos: section {k}: a: expected a[..., 0] != 0, got a zero "
                             f"leading denominator coefficient")
        if check_stability:
            try:
                check_stable(sos[..., k, 3:], "a")
            except ValueError as err:
                raise ValueError(f"sos: section {k}: {err}") from err
    dtype = torch.promote_types(sos.dtype, x.dtype)
    sos, x = sos.to(dtype), x.to(dtype)
    try:
        batch = torch.broadcast_shapes(sos.shape[:-2], x.shape[:-1])
    except RuntimeError as err:
        raise ValueError(f"sos, x: leading (batch) dimensions must broadcast, got shapes "
                         f"{tuple(sos.shape)}, {tuple(x.shape)}") from err
    B, K, T = math.prod(batch), sos.shape[-2], x.shape[-1]
    sos = (sos.reshape(1, K, 6) if math.prod(sos.shape[:-2]) == 1
           else sos.expand(*batch, K, 6).reshape(B, K, 6))
    x = x.reshape(1, T) if math.prod(x.shape[:-1]) == 1 else x.expand(*batch, T).reshape(B, T)
    a0 = sos[..., 3:4]
    L = max(1, min(block, T))
    y, _ = ss_run(x, ss_block(*cascade_ss(sos[..., :3] / a0, sos[..., 3:] / a0), L))
    return y.expand(B, T).reshape(*batch, T)
