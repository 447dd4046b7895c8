r"""Time-domain feedback delay network (FDN), differentiable with autograd.

The FDN [Jot & Chaigne 1991, "Digital delay networks for designing artificial
reverberators", AES 90th Conv.; Stautner & Puckette 1982, "Designing
multi-channel reverberators", CMJ 6(1)] has ``N`` delay lines of integer
lengths ``m_i >= 1``.  With ``s_i[n]`` the input of delay line ``i`` and
``o_i[n]`` its (attenuated) output, the equations implemented here are::

    o_i[n] = g_i * filt_i( s_i[n - m_i] )       (filt_i = 1 without filters)
    y[n]   = d x[n] + sum_i c_i o_i[n]
    s[n]   = A o[n] + b x[n]

and the transfer function is

.. math::
    H(z) = d + c^T \left(I - D(z) A\right)^{-1} D(z)\, b,
    \qquad D(z) = \mathrm{diag}\left(g_i\, z^{-m_i}\, F_i(z)\right),

where ``F_i(z)`` is the cascade of second-order sections ``sos[i]``.  This is
exactly the system a frequency-sampling implementation evaluates on the unit
circle, so both must agree up to time aliasing.

Shapes: ``A`` (N, N), ``b``, ``c``, ``g`` (N,), ``d`` scalar, ``sos``
(N, K, 6) in scipy layout ``[b0 b1 b2 a0 a1 a2]``, ``x`` (T,).

:func:`fdn_naive` is a sample-by-sample reference used only to test
:func:`fdn_block` (never by benchmarks or experiments); :func:`fdn_block` is the
baseline.  :func:`baselines.render` runs it on the parameters of a library-built FDN.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from ._statespace import cascade_ss, check_stable, normalize_pad, ss_block, ss_run

__all__ = ["fdn_naive", "fdn_block", "fdn_impulse_response"]

#: sub-block length of the in-loop IIR filters (samples), see fdn_block
FILTER_BLOCK = 64

TensorLike = Union[torch.Tensor, np.ndarray, Sequence[float], float]


# ----------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------
def _delays(m) -> List[int]:
    """Validate delay lengths: 1-D, integer-valued, >= 1; return python ints."""
    if isinstance(m, torch.Tensor):
        arr = m.detach().cpu().numpy()
    else:
        try:
            arr = np.asarray(m)
        except Exception as err:  # pragma: no cover - exotic inputs
            raise TypeError(f"m: expected a 1-D sequence of integers, got {type(m).__name__}") from err
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer)
                                   or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"m: expected integer delay lengths, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.size < 1:
        raise ValueError(f"m: expected shape (N,) with N >= 1, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
        raise ValueError(f"m: expected integer-valued delays, got {arr.tolist()}")
    if np.any(arr < 1):
        raise ValueError(f"m: expected delays >= 1 sample, got {arr.tolist()}")
    return [int(v) for v in arr]


def _param(name: str, v, shape: tuple, dtype, device) -> torch.Tensor:
    """Convert ``v`` to a tensor of ``dtype``/``device`` (differentiably) and check it."""
    if isinstance(v, torch.Tensor):
        if not (v.is_floating_point() or v.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"{name}: expected a real tensor, got dtype {v.dtype}")
        t = v.to(dtype=dtype, device=device)
    else:
        try:
            t = torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=dtype, device=device)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name}: expected a real array or tensor, got {type(v).__name__}") from err
    if tuple(t.shape) != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: expected finite values, got NaN or Inf")
    return t


def _validate(x, m, A, b, c, d, g, sos):
    """Common argument checks; returns converted tensors and delays."""
    if not isinstance(A, torch.Tensor):
        raise TypeError(f"A: expected a torch.Tensor, got {type(A).__name__}")
    if not A.is_floating_point():
        raise TypeError(f"A: expected a real floating-point tensor, got dtype {A.dtype}")
    dtype, device = A.dtype, A.device
    delays = _delays(m)
    N = len(delays)
    A = _param("A", A, (N, N), dtype, device)
    b = _param("b", b, (N,), dtype, device)
    c = _param("c", c, (N,), dtype, device)
    d = _param("d", d, (), dtype, device)
    g = None if g is None else _param("g", g, (N,), dtype, device)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 1:
        raise ValueError(f"x: expected shape (T,), got {tuple(x.shape)}")
    x = _param("x", x, tuple(x.shape), dtype, device)
    if sos is not None:
        if not isinstance(sos, torch.Tensor):
            sos = torch.as_tensor(np.asarray(sos, dtype=np.float64))
        if sos.ndim != 3 or sos.shape[0] != N or sos.shape[2] != 6 or sos.shape[1] < 1:
            raise ValueError(f"sos: expected shape (N={N}, K, 6) with K >= 1, got {tuple(sos.shape)}")
        sos = _param("sos", sos, tuple(sos.shape), dtype, device)
        if bool((sos[..., 3] == 0).any()):
            raise ValueError("sos: expected a0 = sos[..., 3] != 0, got a zero leading denominator")
        check_stable(sos[..., 3:], "sos")
    return x, delays, A, b, c, d, g, sos


def _fdn_args_doc(func):
    func.__doc__ = func.__doc__.replace("{params}", _PARAMS)
    return func


_PARAMS = """x : torch.Tensor
        Input signal, shape (T,), samples.
    m : sequence of int or torch.Tensor
        Delay lengths, shape (N,), integer-valued, >= 1 (samples).
    A : torch.Tensor
        Feedback matrix, shape (N, N); defines dtype and device.
    b : array-like or torch.Tensor
        Input gains, shape (N,).
    c : array-like or torch.Tensor
        Output gains, shape (N,).
    d : float or torch.Tensor
        Direct gain, scalar.
    g : array-like or torch.Tensor, optional
        Per-line gains at the delay outputs, shape (N,); ones if None.
    sos : torch.Tensor, optional
        Per-line attenuation filters inside the loop, shape (N, K, 6), scipy
        layout ``[b0 b1 b2 a0 a1 a2]``; must be stable."""


# ----------------------------------------------------------------------------
# reference implementation
# ----------------------------------------------------------------------------
@_fdn_args_doc
def fdn_naive(x: torch.Tensor, m, A: torch.Tensor, b: TensorLike, c: TensorLike,
              d: TensorLike, g: Optional[TensorLike] = None,
              sos: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Sample-by-sample FDN -- correctness reference only.

    A literal transcription of the module equations with a Python loop over
    the ``T`` samples (the filters are transposed direct form II biquads
    stepped once per sample on the delayed stream).  It is far too slow for
    real use and is never called by the benchmarks or by :func:`fdn_block`;
    it exists only to test :func:`fdn_block`.

    Parameters
    ----------
    {params}

    Returns
    -------
    torch.Tensor
        Output ``y``, shape (T,).
    """
    x, delays, A, b, c, d, g, sos = _validate(x, m, A, b, c, d, g, sos)
    N, T = len(delays), x.shape[0]
    zero = x.new_zeros(())
    if sos is not None:
        nb, na, _ = normalize_pad(sos[..., :3], sos[..., 3:])  # (N, K, 3)
        state = [[x.new_zeros(N), x.new_zeros(N)] for _ in range(sos.shape[1])]
    s_hist: List[torch.Tensor] = []
    out = []
    for n in range(T):
        u = torch.stack([s_hist[n - mi][i] if n - mi >= 0 else zero
                         for i, mi in enumerate(delays)])
        if sos is not None:
            for k, (z0, z1) in enumerate(state):
                bk, ak = nb[:, k], na[:, k]
                v = bk[:, 0] * u + z0
                state[k] = [bk[:, 1] * u + z1 - ak[:, 1] * v, bk[:, 2] * u - ak[:, 2] * v]
                u = v
        o = u if g is None else g * u
        out.append(d * x[n] + c @ o)
        s_hist.append(A @ o + b * x[n])
    return torch.stack(out) if out else x.new_zeros(0)


# ----------------------------------------------------------------------------
# block implementation
# ----------------------------------------------------------------------------
@_fdn_args_doc
def fdn_block(x: torch.Tensor, m, A: torch.Tensor, b: TensorLike, c: TensorLike,
              d: TensorLike, g: Optional[TensorLike] = None,
              sos: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""Block-wise time-domain FDN (the baseline).

    Algorithm.  Every feedback path contains a delay of at least
    ``L = min(m)`` samples, so the delay-line outputs ``o[n0 : n0 + L]`` only
    read delay-line inputs written at times ``<= n0 - 1``.  A block of ``L``
    samples of all lines is therefore computed at once with tensor ops:

    1. gather ``O`` (N, L) from a history buffer of the last ``max(m)``
       samples of the (filtered) delay-line inputs,
    2. ``y_blk = d x_blk + c^T O`` and ``S = A O + b x_blk^T`` -- one
       (N x N)(N x L) matmul,
    3. append ``r = g * F(S)`` to the history.

    Since ``F_i`` and the delay commute (both LTI, one line each),
    ``o_i[n] = r_i[n - m_i]`` with ``r_i = g_i F_i(s_i)`` realizes exactly
    ``D(z) = diag(g_i z^{-m_i} F_i(z))``.  ``F`` is run on each new block of
    ``S`` with its state carried across blocks by the block state-space
    recursion of :func:`baselines._statespace.ss_run` (the K sections of a line as
    one system of order 2K, :func:`baselines._statespace.cascade_ss`; sub-blocks of
    ``min(L, FILTER_BLOCK)`` samples, vectorized across lines), so the
    recursion of the filters stays exact.  Everything is differentiable by
    autograd w.r.t. ``A, b, c, d, g, sos`` and ``x``; no in-place writes
    (blocks are collected in lists and concatenated).

    Cost: ``O(T N^2)`` flops for the feedback matmuls, plus
    ``O(T N (L_f + 4 K + 4 K^2 / L_f))`` for ``K`` sections per line with sub-block
    ``L_f``; ``ceil(T / min(m))`` Python iterations (each with
    ``ceil(min(m) / L_f)`` filter-state steps).  Works
    on any device (no numpy inside the loop); the device and dtype follow
    ``A``.

    Parameters
    ----------
    {params}

    Returns
    -------
    torch.Tensor
        Output ``y``, shape (T,).
    """
    x, delays, A, b, c, d, g, sos = _validate(x, m, A, b, c, d, g, sos)
    N, T = len(delays), x.shape[0]
    L, M = min(delays), max(delays)
    device = A.device
    mats, state = None, None
    if sos is not None:
        nb, na, _ = normalize_pad(sos[..., :3], sos[..., 3:])  # (N, K, 3)
        mats = ss_block(*cascade_ss(nb, na), min(L, FILTER_BLOCK))
    # history of r (N, M): column j holds r[n0 - M + j]
    hist = x.new_zeros(N, M)
    base = torch.tensor([M - mi for mi in delays], device=device)[:, None]
    ar = torch.arange(L, device=device)[None, :]
    ys = []
    for n0 in range(0, T, L):
        Lb = min(L, T - n0)
        O = hist.gather(1, base + ar[:, :Lb])  # (N, Lb) delay-line outputs
        xb = x[n0:n0 + Lb]
        ys.append(d * xb + c @ O)
        r = A @ O + b[:, None] * xb[None, :]  # delay-line inputs s
        if mats is not None:
            r, state = ss_run(r, mats, state)
        if g is not None:
            r = g[:, None] * r
        hist = torch.cat([hist[:, Lb:], r], dim=1)
    return torch.cat(ys) if ys else x.new_zeros(0)


def fdn_impulse_response(length: int, m, A: torch.Tensor, b: TensorLike, c: TensorLike,
                         d: TensorLike, g: Optional[TensorLike] = None,
                         sos: Optional[torch.Tensor] = None,
                         method: str = "block") -> torch.Tensor:
    """Impulse response of the FDN, shape (length,).

    Parameters
    ----------
    length : int
        Number of samples, >= 1.
    m, A, b, c, d, g, sos
        As in :func:`fdn_block`.
    method : {"block", "naive"}
        :func:`fdn_block` (default) or the reference :func:`fdn_naive`.

    Returns
    -------
    torch.Tensor
        ``h[n]`` for ``n = 0 .. length - 1``, dtype/device of ``A``.
    """
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"length: expected an integer >= 1, got {length!r}")
    if method not in ("block", "naive"):
        raise ValueError(f"method: expected 'block' or 'naive', got {method!r}")
    if not isinstance(A, torch.Tensor):
        raise TypeError(f"A: expected a torch.Tensor, got {type(A).__name__}")
    x = torch.zeros(int(length), dtype=A.dtype, device=A.device)
    x[0] = 1.0
    fn = fdn_block if method == "block" else fdn_naive
    return fn(x, m, A, b, c, d, g=g, sos=sos)
