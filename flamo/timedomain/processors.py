"""Stateful numpy processors that run a realization sample-exactly, in chunks of any size.

Signals inside are (B, C, c) arrays: batch, channels, time (contiguous). A processor has

- ``process(x)``: the output for the next chunk of input, any length;
- ``read(c)`` then ``write(x)``, for ``c <= horizon``: the output for the next c samples
  from the state alone, then the c input samples that follow it (how a loop runs).

**Partition invariance.** The arithmetic of each output sample does not depend on how the
signal is cut into chunks, so a :class:`flamo.Stream` fed blocks of any size returns what
one :func:`flamo.render` returns, bitwise. Three rules make it so:

1. recursions (IIR filters, FIR convolution) run sample by sample in scipy's compiled
   direct form II transposed with their state carried exactly (``zi``);
2. a processor that sees the caller's chunks (*exposed*: outside every loop) combines
   channels by explicit elementwise multiply-adds in a fixed order, never a BLAS product,
   whose summation order depends on the number of rows;
3. a loop runs in blocks of its fixed length aligned to time 0, each computed whole at its
   start (and its input path written whole at its end), so what runs inside a loop is
   called with the same chunks whatever the caller's partition, and may use BLAS.
"""

from __future__ import annotations

import numpy as np
import scipy.signal
import torch

__all__ = ["build", "Processor"]


class Processor:
    """Base: ``n_in``, ``n_out``, ``horizon``; an optional ``record`` (an object with
    ``append(chunk)`` that copies what it keeps) collects the inputs (for gradients)."""

    horizon = 0
    record = None

    def reset(self, batch: int):
        pass

    def process(self, x):
        raise NotImplementedError

    def read(self, c):
        raise NotImplementedError

    def write(self, x):
        raise NotImplementedError

    def _keep(self, x):
        if self.record is not None:
            self.record.append(x)


def blas_matmul(a, x):
    """a @ x by torch on the arrays' memory: torch's BLAS runs on torch's threads
    (torch.set_num_threads), where numpy's OpenBLAS would start its own pool, whose
    threads spin against each other on a busy machine (measured 20-30x slower on 2 loaded
    cores for a 64 x 64 matrix). Strided operands are passed as they are (BLAS takes
    transposed layouts); only negative strides, which torch cannot view, are copied. A
    batch of one runs as a plain 2-D product."""
    a, x = _torch_view(a), _torch_view(x)
    if x.ndim == 3 and x.shape[0] == 1 and a.ndim == 2:
        return torch.matmul(a, x[0]).numpy()[None]
    return torch.matmul(a, x).numpy()


def _torch_view(a):
    if a.strides and min(a.strides) < 0:
        a = a.copy()  # not ascontiguousarray: it keeps a negative stride on a length-1 axis
    return torch.from_numpy(a)


def fixed_order_matmul(a, x):
    """a (out, in) @ x (B, in, c) by multiply-adds over the inputs in order (rule 2)."""
    acc = a[:, 0, None] * x[:, 0:1, :]
    for j in range(1, a.shape[1]):
        acc = acc + a[:, j, None] * x[:, j:j + 1, :]
    return acc


class GainsProc(Processor):
    def __init__(self, g):
        self.g = g[:, None]

    def process(self, x):
        self._keep(x)
        return x * self.g


class MatrixProc(Processor):
    def __init__(self, a, exposed):
        self.a = np.ascontiguousarray(a)
        self.exposed = exposed

    def process(self, x):
        self._keep(x)
        if self.exposed:
            return fixed_order_matmul(self.a, x)
        return blas_matmul(self.a, x)


class _History(Processor):
    """The past inputs per input channel in a linear buffer: time t at index t - base.

    Chunks are stored by slice assignment and delayed reads are windows of the buffer
    (no index arithmetic per sample); when a chunk does not fit, the last ``longest``
    samples move to the front (amortized: at most one copy of each sample)."""

    def __init__(self, longest, n_in, dtype):
        self.longest, self.n_in, self.dtype = int(longest), n_in, dtype

    def reset(self, batch):
        self.buf = np.zeros((batch, self.n_in, 2 * self.longest + 1), self.dtype)
        self.base = -self.longest  # time of index 0: the zero state before time 0
        self.pos = 0  # time of the next input sample

    def _store(self, x):
        c = x.shape[-1]
        end = self.pos - self.base + c
        if end > self.buf.shape[-1]:
            keep, start = self.longest, self.pos - self.base - self.longest
            if keep + c > self.buf.shape[-1]:
                new = np.empty(self.buf.shape[:-1] + (2 * (keep + c),), self.dtype)
                new[..., :keep] = self.buf[..., start:start + keep]
                self.buf = new
            else:
                self.buf[..., :keep] = self.buf[..., start:start + keep]  # numpy copes with overlap
            self.base = self.pos - keep
        i = self.pos - self.base
        self.buf[..., i:i + c] = x
        self.pos += c

    def _windows(self, c):
        """(B, n_in, size - c + 1, c) view: [..., j, k] is the sample at index j + k."""
        b = self.buf
        return np.lib.stride_tricks.as_strided(
            b, shape=b.shape[:-1] + (b.shape[-1] - c + 1, c), strides=b.strides + b.strides[-1:],
            writeable=False)

    def _offsets(self, delays, start):
        """Buffer index of time start - m for delays m (...,)."""
        return start - self.base - delays


class DelaysProc(_History):
    def __init__(self, m, dtype):
        super().__init__(max(int(m.max()), 0), len(m), dtype)
        self.m = m.astype(np.int64)
        self.horizon = int(m.min())
        self.rows = np.arange(len(m))

    def _gather(self, start, c):
        return self._windows(c)[:, self.rows, self._offsets(self.m, start)]

    def read(self, c):
        return self._gather(self.pos, c)

    def write(self, x):
        self._store(x)

    def process(self, x):
        start = self.pos
        self._store(x)
        return self._gather(start, x.shape[-1])


class DelayGainsProc(_History):
    def __init__(self, m, g, dtype):
        super().__init__(int(m.max()), m.shape[1], dtype)
        self.m, self.g = m.astype(np.int64), g
        self.horizon = int(m.min())

    def _combine(self, start, c):
        acc = None
        windows = self._windows(c)
        for j in range(self.m.shape[1]):  # fixed order over the inputs (rule 2)
            term = self.g[:, j, None] * windows[:, j, self._offsets(self.m[:, j], start)]  # (B, out, c)
            acc = term if acc is None else acc + term
        return acc

    def read(self, c):
        return self._combine(self.pos, c)

    def write(self, x):
        self._keep(x)
        self._store(x)

    def process(self, x):
        self._keep(x)
        start = self.pos
        self._store(x)
        return self._combine(start, x.shape[-1])


class _PerChannelFilter(Processor):
    """Filters run by scipy with carried state: one (b, a) pair per (out, in) entry."""

    def __init__(self, pairs, shape, diagonal, dtype):
        self.pairs, self.shape, self.diagonal, self.dtype = pairs, shape, diagonal, dtype

    def reset(self, batch):
        self.zi = {key: np.zeros((batch, max(len(b), len(a)) - 1), self.dtype)
                   for key, (b, a) in self.pairs.items()}

    def _run(self, key, x):
        b, a = self.pairs[key]
        y, self.zi[key] = scipy.signal.lfilter(b, a, x, axis=-1, zi=self.zi[key])
        return y

    def process(self, x):
        self._keep(x)
        out, inp = self.shape
        y = np.empty((x.shape[0], out, x.shape[-1]), self.dtype)
        for i in range(out):
            if self.diagonal:
                y[:, i] = self._run((i, i), x[:, i])
            else:
                acc = self._run((i, 0), x[:, 0])
                for j in range(1, inp):  # fixed order over the inputs (rule 2)
                    acc = acc + self._run((i, j), x[:, j])
                y[:, i] = acc
        return y


def _fir_pair(taps, dtype):
    # a = [1, 0] keeps scipy on its direct-form recursion (a length-1 denominator would take
    # a convolution path whose rounding depends on the chunk), so state carries exactly
    b = np.concatenate([taps, np.zeros(max(0, 2 - len(taps)), dtype)]).astype(dtype)
    return b, np.array([1.0, 0.0], dtype)


def fir_processor(taps, diagonal, dtype):
    if diagonal:
        pairs = {(i, i): _fir_pair(taps[i], dtype) for i in range(taps.shape[0])}
        shape = (taps.shape[0], taps.shape[0])
    else:
        pairs = {(i, j): _fir_pair(taps[i, j], dtype) for i in range(taps.shape[0])
                 for j in range(taps.shape[1])}
        shape = taps.shape[:2]
    return _PerChannelFilter(pairs, shape, diagonal, dtype)


def rational_processor(b, a, dtype):
    n = b.shape[0]
    pairs = {(i, i): (np.ascontiguousarray(b[i]), np.ascontiguousarray(a[i])) for i in range(n)}
    return _PerChannelFilter(pairs, (n, n), True, dtype)


class SOSProc(Processor):
    """A cascade per channel, one scipy lfilter call per section (its per-call overhead is
    a fraction of sosfilt's); sections are normalized to a0 = 1."""

    def __init__(self, sos, dtype):
        self.sos, self.dtype = sos, dtype
        self.coeffs = [[(np.ascontiguousarray(sec[:3]), np.ascontiguousarray(sec[3:]))
                        for sec in line] for line in sos]

    def reset(self, batch):
        n, k = self.sos.shape[:2]
        self.zi = np.zeros((n, k, batch, 2), self.dtype)

    def process(self, x):
        self._keep(x)
        y = np.empty_like(x)
        for i, line in enumerate(self.coeffs):
            v = x[:, i]
            for k, (b, a) in enumerate(line):
                v, self.zi[i, k] = scipy.signal.lfilter(b, a, v, axis=-1, zi=self.zi[i, k])
            y[:, i] = v
        return y


class ChainProc(Processor):
    def __init__(self, parts):
        self.parts = parts
        self.horizon = max(p.horizon for p in parts)
        self.key = [p.horizon for p in parts].index(self.horizon)

    def reset(self, batch):
        for p in self.parts:
            p.reset(batch)

    def process(self, x):
        for p in self.parts:
            x = p.process(x)
        return x

    def read(self, c):
        y = self.parts[self.key].read(c)
        for p in self.parts[self.key + 1:]:
            y = p.process(y)
        return y

    def write(self, x):
        for p in self.parts[:self.key]:
            x = p.process(x)
        self.parts[self.key].write(x)


class SumProc(Processor):
    def __init__(self, parts):
        self.parts = parts
        self.horizon = min(p.horizon for p in parts)

    def reset(self, batch):
        for p in self.parts:
            p.reset(batch)

    def process(self, x):
        y = self.parts[0].process(x)
        for p in self.parts[1:]:
            y = y + p.process(x)
        return y

    def read(self, c):
        y = self.parts[0].read(c)
        for p in self.parts[1:]:
            y = y + p.read(c)
        return y

    def write(self, x):
        for p in self.parts:
            p.write(x)


class LoopProc(Processor):
    """y = F(x + B y) in blocks of L samples.

    Scheme "forward" (F has the delay): a block's output is F.read(L), its feedback
    B(F.read(L)); the block's input x + feedback is written into F when the block ends.
    Scheme "feedback": the block's feedback is B.read(L); y = F(x + feedback) as inputs
    come; y is written into B when the block ends.

    Exposed (rule 3), blocks are aligned to time 0 and computed whole at their start;
    inside another loop (chunks fixed by the caller) each chunk runs in sub-blocks of at
    most L from its own start, and ``read``/``write`` serve an outer loop.
    """

    def __init__(self, forward, feedback, scheme, length, exposed, written, dtype):
        self.f, self.b, self.scheme, self.L = forward, feedback, scheme, length
        self.exposed, self.written, self.dtype = exposed, written, dtype
        self.horizon = 0 if exposed or scheme != "forward" else forward.horizon

    def reset(self, batch):
        self.f.reset(batch)
        self.b.reset(batch)
        self.batch = batch
        self.pos = 0  # position inside the current aligned block (exposed)
        self.block = None
        self.pending = None

    # -- exposed: aligned blocks ---------------------------------------------------------
    def _start_block(self):
        if self.scheme == "forward":
            y = self.f.read(self.L)
            self.block = (y, self.b.process(y))
        else:
            self.block = (self.b.read(self.L),)
        self.inputs = np.empty((self.batch, self.written, self.L), self.dtype)

    def process(self, x):
        if not self.exposed:
            return self._process_inside(x)
        outs, t, c = [], 0, x.shape[-1]
        while t < c:
            if self.block is None:
                self._start_block()
            k = min(self.L - self.pos, c - t)
            seg = slice(self.pos, self.pos + k)
            if self.scheme == "forward":
                y, fb = self.block
                self.inputs[..., seg] = x[..., t:t + k] + fb[..., seg]
                outs.append(y[..., seg])
            else:
                y = self.f.process(x[..., t:t + k] + self.block[0][..., seg])
                self.inputs[..., seg] = y
                outs.append(y)
            self.pos += k
            t += k
            if self.pos == self.L:
                (self.f if self.scheme == "forward" else self.b).write(self.inputs)
                self.block, self.pos = None, 0
        return np.concatenate(outs, axis=-1) if len(outs) != 1 else outs[0]

    # -- inside another loop: chunks fixed by the caller ---------------------------------
    def _process_inside(self, x):
        outs, c = [], x.shape[-1]
        for t in range(0, c, self.L):
            xs = x[..., t:t + self.L]
            if self.scheme == "forward":
                y = self.f.read(xs.shape[-1])
                self.f.write(xs + self.b.process(y))
            else:
                y = self.f.process(xs + self.b.read(xs.shape[-1]))
                self.b.write(y)
            outs.append(y)
        return np.concatenate(outs, axis=-1) if len(outs) != 1 else outs[0]

    def read(self, c):
        y = self.f.read(c)
        self.pending = y
        return y

    def write(self, x):
        self.f.write(x + self.b.process(self.pending))
        self.pending = None


def build(node, arrays, dtype, exposed=True, transpose=False, records=None):
    """Compile a realization into a processor.

    Parameters
    ----------
    node : flamo.timedomain.Realization
    arrays : dict
        id(param tensor) -> numpy array of the node's parameters (already in ``dtype``).
    exposed : bool
        Whether the caller's chunks reach this node (rule 2 and 3 of the module docstring).
    transpose : bool
        Build the transposed system (the adjoint, run on time-reversed signals).
    records : dict, optional
        id(node) -> a collector of the node's input chunks (``append(chunk)``, copying
        what it keeps: chunks may be views of buffers that change), for nodes that need
        gradients.
    """
    from . import realization as r

    def arr(t):
        return arrays[id(t)]

    def rec(proc):
        if records is not None and id(node) in records:
            proc.record = records[id(node)]
        return proc

    if isinstance(node, r.Gains):
        return rec(GainsProc(arr(node.params[0])))
    if isinstance(node, r.MatrixGain):
        a = arr(node.params[0])
        return rec(MatrixProc(a.T if transpose else a, exposed))
    if isinstance(node, r.Delays):
        return DelaysProc(node.delays.numpy(), dtype)
    if isinstance(node, r.DelayGains):
        m, g = node.delays.numpy(), arr(node.params[0])
        if transpose:
            m, g = m.T, g.T
        return rec(DelayGainsProc(np.ascontiguousarray(m), np.ascontiguousarray(g), dtype))
    if isinstance(node, r.FIRBank):
        taps = arr(node.params[0])
        if transpose and not node.diagonal:
            taps = taps.transpose(1, 0, 2)
        return rec(fir_processor(np.ascontiguousarray(taps), node.diagonal, dtype))
    if isinstance(node, r.SOSBank):
        return rec(SOSProc(arr(node.params[0]), dtype))
    if isinstance(node, r.RationalBank):
        return rec(rational_processor(arr(node.params[0]), arr(node.params[1]), dtype))
    kw = dict(arrays=arrays, dtype=dtype, transpose=transpose, records=records)
    if isinstance(node, r.Chain):
        parts = node.parts[::-1] if transpose else node.parts
        return ChainProc([build(p, exposed=exposed, **kw) for p in parts])
    if isinstance(node, r.Sum):
        return SumProc([build(p, exposed=exposed, **kw) for p in node.parts])
    if isinstance(node, r.Loop):
        scheme = node.scheme()
        f = build(node.forward, exposed=exposed and scheme == "feedback", **kw)
        b = build(node.feedback, exposed=False, **kw)
        f_out, f_in = node.forward.shape[::-1] if transpose else node.forward.shape
        written = f_in if scheme == "forward" else f_out  # what a block writes at its end
        return LoopProc(f, b, scheme, node.block_length(), exposed, written, dtype)
    raise TypeError(f"build: unknown realization node {type(node).__name__}")
