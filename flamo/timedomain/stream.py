"""Block-by-block processing with state: the real-time form of :func:`flamo.render`."""

from __future__ import annotations

import numpy as np
import torch

from .render import NUMPY_DTYPES, numpy_params, realize_system, render_input
from .processors import build

__all__ = ["Stream"]


class Stream:
    """A stateful processor of consecutive blocks, equal to one render of their concatenation.

    ``Stream(system)(x1)``, ``(x2)``, ... returns, block by block, exactly what
    ``flamo.render(system, torch.cat([x1, x2, ...]))`` returns, bitwise (in float64 and in
    float32), for blocks of any sizes down to one sample: every recursion carries its
    state exactly and no product is summed in an order that depends on the block size
    (see :mod:`flamo.timedomain.processors`).

    Parameters
    ----------
    system : flamo.DSPModule
        Any module or system with a time-domain realization. Its parameters are read once,
        here: build a new Stream after changing them.
    fs : float, optional
        Sample rate in Hz, for modules designed in Hz or seconds.
    dtype : torch.dtype, optional
        float32 or float64; default the dtype of the first block.

    Notes
    -----
    A loop computes each block of its shortest delay (L samples) when the block starts,
    so with blocks much shorter than L the cost comes in bursts every L samples.
    Computation runs on the CPU; blocks on another device come back on it.

    Examples
    --------
    >>> import torch, flamo
    >>> echo = flamo.Recursion(flamo.Delay([3.0]), flamo.Gain([[0.5]]))
    >>> stream = flamo.Stream(echo)
    >>> x = torch.zeros(8, 1, dtype=torch.float64); x[0] = 1
    >>> torch.equal(torch.cat([stream(x[:5]), stream(x[5:])]), flamo.render(echo, x))
    True
    """

    def __init__(self, system, fs=None, dtype=None):
        if dtype is not None and dtype not in NUMPY_DTYPES:
            raise TypeError(f"Stream: dtype must be torch.float32 or torch.float64, got {dtype}")
        self.system, self.fs, self.dtype = system, fs, dtype
        with torch.no_grad():
            self._root = realize_system(system, fs)
        self._proc = None
        self._batch = None

    @property
    def shape(self):
        """(out, in) channel counts."""
        return self.system.shape

    def reset(self):
        """Clear the state: the next block starts a new signal at time 0."""
        self._proc = None
        self._batch = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Process the next block x (c, in), (..., c, in) or (c,) -> (c, out) (same layout
        as :func:`flamo.render`); the batch dims must stay the same until :meth:`reset`."""
        x, squeeze = render_input(self.system, x, "Stream")
        if self.dtype is None:
            self.dtype = x.dtype
        if x.dtype != self.dtype:
            raise TypeError(f"Stream: blocks must be {self.dtype} (as the first block), got {x.dtype}")
        dtype = NUMPY_DTYPES[self.dtype]
        batch, c = x.shape[:-2], x.shape[-2]
        if self._proc is None:
            self._proc = build(self._root, numpy_params(self._root, dtype), dtype, exposed=True)
            self._batch = batch
            self._proc.reset(int(np.prod(batch, dtype=np.int64)))
        elif batch != self._batch:
            raise ValueError(f"Stream: blocks must keep the batch shape {tuple(self._batch)} of the "
                             f"first block until reset(), got {tuple(batch)}")
        if c == 0:
            return x.new_zeros(*batch, 0, self.shape[0]).squeeze(-1) if squeeze else x.new_zeros(*batch, 0, self.shape[0])
        xn = x.detach().to("cpu").numpy().astype(dtype, copy=False).reshape(-1, c, x.shape[-1])
        y = self._proc.process(np.ascontiguousarray(xn.transpose(0, 2, 1)))
        out = torch.from_numpy(np.ascontiguousarray(y.transpose(0, 2, 1)))
        out = out.reshape(*batch, c, y.shape[1]).to(x.device)
        return out.squeeze(-1) if squeeze else out
