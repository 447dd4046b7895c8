"""Render a system in the time domain: exact, differentiable, any module with a realization.

The forward pass runs the system's realization (:mod:`flamo.timedomain.realization`)
with the processors of :mod:`flamo.timedomain.processors`, without autograd. The backward
pass is the adjoint of the whole system, which for a linear time-invariant system is its
*transpose run backward in time* (series reversed, every matrix transposed, every filter
and loop kept): one more run of the same processors on the time-reversed output gradient
gives the gradient of the input and, at every node, the adjoint signal at its output.
Each node's parameter gradient is then an inner product of that adjoint with the node's
recorded input (a matrix: sum_n lambda[n] u[n]^T; an FIR tap k: sum_n lambda[n] u[n - k];
a rational filter: the adjoint-filter formulas of its numerator and denominator), so the
backward costs about one forward run, whatever the length, with no graph of the recursion.
A node's input is recorded in one preallocated (B, C, T) array as the forward run passes;
for gains and matrices the inner products are summed chunk by chunk during the adjoint
run, so their adjoint signals are never stored.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.signal
import torch

from ..signal import module_input
from . import realization as r
from .processors import blas_matmul, build

__all__ = ["render", "realize_system"]

NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def realize_system(system, fs=None):
    """``system.realize(fs)`` with loops named by their place in the system."""
    names = {id(m): name for name, m in system.named_modules()}
    token = r.LOOP_NAMES.set(names)
    try:
        return system.realize(fs)
    finally:
        r.LOOP_NAMES.reset(token)


def render_input(system, x, owner: str = "render"):
    """x laid out for ``system`` (see :func:`flamo.signal.module_input`), float32 or float64."""
    if not isinstance(x, torch.Tensor) or x.dtype not in NUMPY_DTYPES:
        what = f"dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"{owner}: x must be a float32 or float64 tensor, got {what}")
    return module_input(system, x, owner)


def render(system, x: torch.Tensor, fs=None) -> torch.Tensor:
    """Filter a signal through a system exactly in the time domain.

    Parameters
    ----------
    system : flamo.DSPModule
        Any module or system whose parts all have a time-domain realization
        (``module.realize``; NotImplementedError names a part without one).
    x : torch.Tensor
        Input, time first: (T, in) or (..., T, in) (batch dims leading), or (T,) for a
        single-input system; float32 or float64, the dtype of the computation.
    fs : float, optional
        Sample rate in Hz, needed by modules designed in Hz or seconds (filters, EQs,
        attenuation from T60): their sections are designed at ``fs``.

    Returns
    -------
    torch.Tensor
        (..., T, out) (or (T,) for a (T,) input to a single-output system), the exact
        output of the difference equations from a zero state, on the device and in the
        dtype of ``x``. Differentiable with respect to ``x`` and every parameter with a
        realization (integer delay lengths have no gradient: a warning says so).

    Notes
    -----
    The recursions run on the CPU in numpy/scipy (a CUDA input is copied there and back).
    Loops run in blocks of their shortest delay; a loop without a delay of at least one
    sample raises ValueError naming it. The backward pass is the transposed system run
    backward in time (see the module docstring); it supports first-order gradients.
    """
    x, squeeze = render_input(system, x)
    root = realize_system(system, fs)
    if x.shape[-2] == 0:
        y = x.new_zeros(*x.shape[:-1], system.shape[0])
        return y.squeeze(-1) if squeeze else y
    leaves = list(root.leaves())
    params = [p for leaf in leaves for p in leaf.params]
    y = _Render.apply(root, x, *params)
    return y.squeeze(-1) if squeeze else y


def run(root, x, dtype, exposed=True, transpose=False, records=None, arrays=None):
    """Run a realization on a numpy signal (B, in, T) -> (B, out, T) from a zero state."""
    proc = build(root, arrays, dtype, exposed=exposed, transpose=transpose, records=records)
    proc.reset(x.shape[0])
    return proc.process(x)


def numpy_params(root, dtype):
    """id(param) -> its detached value as a numpy array of ``dtype``."""
    return {id(p): p.detach().to("cpu", torch.float64).numpy().astype(dtype)
            for leaf in root.leaves() for p in leaf.params}


class _Render(torch.autograd.Function):
    @staticmethod
    def forward(ctx, root, x, *params):
        dtype = NUMPY_DTYPES[x.dtype]
        arrays = numpy_params(root, dtype)
        batch = x.shape[:-2]
        T = x.shape[-2]
        xn = x.detach().to("cpu").numpy().astype(dtype, copy=False).reshape(-1, T, x.shape[-1])
        xn = np.ascontiguousarray(xn.transpose(0, 2, 1))
        leaves = list(root.leaves())
        wanted = [leaf for leaf in leaves if any(ctx.needs_input_grad[2 + i] for i in
                                                 _param_slots(leaves, leaf))]
        records = {id(leaf): Recorder(xn.shape[0], leaf.shape[1], T, dtype) for leaf in wanted}
        y = run(root, xn, dtype, records=records, arrays=arrays)
        ctx.root, ctx.arrays, ctx.records, ctx.wanted = root, arrays, records, wanted
        ctx.meta = (dtype, batch, T, x.device, x.dtype)
        out = torch.from_numpy(np.ascontiguousarray(y.transpose(0, 2, 1)))
        return out.reshape(*batch, T, y.shape[1]).to(x.device)

    @staticmethod
    def backward(ctx, gy):
        dtype, batch, T, device, tdtype = ctx.meta
        root, arrays, leaves = ctx.root, ctx.arrays, list(ctx.root.leaves())
        g = gy.detach().to("cpu").numpy().astype(dtype, copy=False).reshape(-1, T, gy.shape[-1])
        g = np.ascontiguousarray(g.transpose(0, 2, 1)[..., ::-1])
        adjoints = {id(leaf): StaticGradient(leaf, ctx.records[id(leaf)].data)
                    if isinstance(leaf, (r.Gains, r.MatrixGain)) else
                    Recorder(g.shape[0], leaf.shape[0], T, dtype, reverse=True)
                    for leaf in ctx.wanted}
        gx = run(root, g, dtype, exposed=False, transpose=True, records=adjoints, arrays=arrays)
        grads = [None] * sum(len(leaf.params) for leaf in leaves)
        for leaf in ctx.wanted:
            adjoint = adjoints[id(leaf)]
            if isinstance(adjoint, StaticGradient):
                leaf_grads = [adjoint.grad]
            else:
                values = [arrays[id(p)] for p in leaf.params]
                leaf_grads = parameter_gradients(leaf, values, ctx.records[id(leaf)].data, adjoint.data)
            for slot, grad in zip(_param_slots(leaves, leaf), leaf_grads):
                grads[slot] = torch.from_numpy(np.ascontiguousarray(grad)).to(device, tdtype)
        grad_x = None
        if ctx.needs_input_grad[1]:
            gx = gx[..., ::-1].transpose(0, 2, 1).copy()  # C order (ascontiguousarray would keep
            # the negative stride of a one-sample signal, which torch cannot view)
            grad_x = torch.from_numpy(gx).reshape(*batch, T, gx.shape[-1]).to(device, tdtype)
        return (None, grad_x, *grads)


def _param_slots(leaves, leaf):
    start = 0
    for other in leaves:
        if other is leaf:
            return range(start, start + len(leaf.params))
        start += len(other.params)
    raise KeyError(leaf)


class Recorder:
    """A node's input chunks, copied into one (B, C, T) signal as they come: later
    samples cut, missing ones zero (a loop's last, unfinished block is never written:
    nothing within T depends on it). ``reverse``: the chunks come in reversed time (the
    adjoint run) and ``data`` holds them in forward time."""

    def __init__(self, batch, channels, T, dtype, reverse=False):
        self.data = np.zeros((batch, channels, T), dtype)
        self.reverse, self.t = reverse, 0

    def append(self, chunk):
        T = self.data.shape[-1]
        k = min(chunk.shape[-1], T - self.t)
        if k > 0:
            if self.reverse:
                self.data[..., T - self.t - k:T - self.t] = chunk[..., :k][..., ::-1]
            else:
                self.data[..., self.t:self.t + k] = chunk[..., :k]
            self.t += k


class StaticGradient:
    """The gradient of a static gain node (Gains, MatrixGain), summed chunk by chunk while
    the adjoint run passes it (reversed time), so that its adjoint signal is never kept:
    the inner products of ``parameter_gradients`` of each chunk with the matching
    samples of the node's recorded input u (B, in, T)."""

    def __init__(self, leaf, u):
        self.leaf, self.u, self.t = leaf, u, 0
        self.grad = np.zeros(leaf.params[0].shape, u.dtype)

    def append(self, chunk):
        T = self.u.shape[-1]
        k = min(chunk.shape[-1], T - self.t)
        if k > 0:
            lam = chunk[..., :k][..., ::-1]  # forward times T - t - k .. T - t - 1
            self.grad += parameter_gradients(self.leaf, None, self.u[..., T - self.t - k:T - self.t], lam)[0]
            self.t += k


def _lagged(lam, u, lags):
    """sum over batch and n of lam[..., n] u[..., n - k] for k = 0 .. lags - 1: (lags,) per
    broadcast row pair; lam (B, ..., T), u (B, ..., T)."""
    T = lam.shape[-1]
    if lags <= 16:
        return np.stack([(lam[..., k:] * u[..., :T - k]).sum(axis=(0, -1)) if k < T else
                         np.zeros(np.broadcast_shapes(lam.shape, u.shape)[1:-1], lam.dtype)
                         for k in range(lags)], axis=-1)
    n = scipy.fft.next_fast_len(T + lags)
    corr = np.fft.irfft((np.fft.rfft(lam, n) * np.conj(np.fft.rfft(u, n))).sum(0), n)
    return corr[..., :lags].astype(lam.dtype)


def _rational_gradients(b, a, u, lam):
    """Gradients of b (nb,), a (na,) of y = lfilter(b, a, u) and the adjoint at its input,
    for u and lam (B, T) (the derivation of the adjoint filter, run backward in time)."""
    y = scipy.signal.lfilter(b, a, u, axis=-1)
    w = scipy.signal.lfilter([1.0], a, lam[..., ::-1], axis=-1)[..., ::-1]  # A^-T lam
    gb = _lagged(w, u, len(b))
    ga = -_lagged(w, y, len(a))
    T = u.shape[-1]
    wp = np.concatenate([w, np.zeros(w.shape[:-1] + (len(b),), w.dtype)], -1)
    lam_in = sum(b[j] * wp[..., j:j + T] for j in range(len(b)))
    return gb, ga, y, lam_in


def parameter_gradients(leaf, values, u, lam):
    """Gradients of a primitive's parameters from its input u (B, in, T) and the adjoint
    lam (B, out, T) at its output, both in forward time."""
    if isinstance(leaf, r.Gains):
        return [(lam * u).sum(axis=(0, 2))]
    if isinstance(leaf, r.MatrixGain):
        if lam.shape[0] == 1:
            return [blas_matmul(lam[0], u[0].T)]
        return [blas_matmul(lam.transpose(1, 0, 2).reshape(lam.shape[1], -1),
                            u.transpose(1, 0, 2).reshape(u.shape[1], -1).T)]
    if isinstance(leaf, r.DelayGains):
        m = leaf.delays.numpy()
        T = u.shape[-1]
        g = np.zeros(m.shape, u.dtype)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                k = m[i, j]
                if k < T:
                    g[i, j] = (lam[:, i, k:] * u[:, j, :T - k]).sum()
        return [g]
    if isinstance(leaf, r.FIRBank):
        taps = values[0]
        if leaf.diagonal:
            return [np.stack([_lagged(lam[:, i], u[:, i], taps.shape[-1]) for i in range(taps.shape[0])])]
        return [np.stack([np.stack([_lagged(lam[:, i], u[:, j], taps.shape[-1])
                                    for j in range(taps.shape[1])]) for i in range(taps.shape[0])])]
    if isinstance(leaf, r.RationalBank):
        b, a = values
        gb, ga = np.zeros_like(b), np.zeros_like(a)
        for i in range(b.shape[0]):
            gb[i], ga[i], _, _ = _rational_gradients(b[i], a[i], u[:, i], lam[:, i])
        return [gb, ga]
    if isinstance(leaf, r.SOSBank):
        sos = values[0]
        grad = np.zeros_like(sos)
        for i in range(sos.shape[0]):
            ins = [u[:, i]]
            for k in range(sos.shape[1]):  # the sections' inputs, from a zero state
                ins.append(scipy.signal.lfilter(sos[i, k, :3], sos[i, k, 3:], ins[-1], axis=-1))
            adj = lam[:, i]
            for k in range(sos.shape[1] - 1, -1, -1):
                gb, ga, _, adj = _rational_gradients(sos[i, k, :3], sos[i, k, 3:], ins[k], adj)
                grad[i, k, :3], grad[i, k, 3:] = gb, ga
        return [grad]
    raise TypeError(f"parameter_gradients: no gradient for {type(leaf).__name__}")
