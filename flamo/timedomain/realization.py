"""Time-domain realizations: what a module is as a difference equation.

A module that has an exact time-domain form returns it from ``module.realize(fs)`` as a
tree of the nodes below, built from its own parameters (the tensors keep their autograd
graph, so gradients reach the module's parameters). The leaves are the primitives every
time-domain consumer understands (:func:`flamo.render`, :class:`flamo.Stream`,
``response(grid, method="time")``, :func:`flamo.export.to_faust`):

- :class:`Gains` (a diagonal of static gains) and :class:`MatrixGain` (a full static
  matrix),
- :class:`Delays` (integer delay lines, diagonal) and :class:`DelayGains` (a gain and an
  integer delay per matrix entry),
- :class:`FIRBank` (FIR filters: one per channel, or one per matrix entry),
- :class:`SOSBank` (a cascade of second-order sections per channel) and
  :class:`RationalBank` (a direct-form rational filter per channel),

and three composites, :class:`Chain` (series), :class:`Sum` (parallel) and :class:`Loop`
(feedback, y = F(x + B y)). Nothing else: a module composes these, so a new module needs
no change to any consumer.

Each node knows its shape (out, in) and its *horizon*: how many output samples it can
give from its state alone, before it sees the input that produced them (the shortest
integer delay through it; 0 for filters and gains). A loop is realizable only when its
forward or feedback path has a horizon of at least one sample.
"""

from __future__ import annotations

import contextvars
import warnings

import torch

__all__ = ["Realization", "Gains", "MatrixGain", "Delays", "DelayGains", "FIRBank", "SOSBank",
           "RationalBank", "Chain", "Sum", "Loop", "integer_delays", "loop_name", "require_fs"]

#: id(module) -> its name in the system being realized (set by the consumers).
LOOP_NAMES = contextvars.ContextVar("flamo_loop_names", default={})


def loop_name(module) -> str:
    """How errors name a Recursion: its place in the system being realized."""
    name = LOOP_NAMES.get().get(id(module))
    return f"Recursion {name!r}" if name else "Recursion (the system itself)" if name == "" else "Recursion"


class Realization:
    """Base of every time-domain node.

    Attributes
    ----------
    shape : (int, int)
        (out, in) channel counts.
    params : tuple of torch.Tensor
        The coefficient tensors of a primitive (empty for composites), in a fixed order.
    """

    params: tuple = ()
    parts: tuple = ()

    @property
    def shape(self) -> tuple[int, int]:
        raise NotImplementedError

    @property
    def horizon(self) -> int:
        """Output samples computable from the state alone (the shortest delay through)."""
        return 0

    def leaves(self):
        """The primitive nodes of the tree, depth first in signal order."""
        if not self.parts:
            yield self
        for p in self.parts:
            yield from p.leaves()


def require_fs(fs, owner: str) -> float:
    """The sample rate of a realization in Hz, or ValueError naming ``owner``."""
    if fs is None:
        raise ValueError(f"{owner}: its parameters are in Hz or seconds, so its time-domain "
                         f"realization needs a sample rate: pass fs=... (a Grid gives its own)")
    if not (isinstance(fs, (int, float)) and not isinstance(fs, bool) and fs > 0):
        raise ValueError(f"{owner}: fs must be a number > 0 Hz, got {fs!r}")
    return float(fs)


def _check_unbatched(owner, name, t, ndim):
    if t.ndim != ndim:
        raise ValueError(f"{owner}: the time domain takes unbatched parameters; {name} must have "
                         f"{ndim} dimensions, got shape {tuple(t.shape)}")


def integer_delays(delays: torch.Tensor, owner: str, name: str = "delays") -> torch.Tensor:
    """Integer delay lengths as int64, with a clear error for fractional ones.

    A warning is issued when the lengths would carry a gradient: integer delays have none
    in the time domain (use :class:`flamo.FractionalDelay` for learnable lengths).
    """
    if delays.requires_grad and torch.is_grad_enabled():
        warnings.warn(f"{owner}: {name} are learnable but integer delay lengths get no gradient "
                      f"in the time domain; use flamo.FractionalDelay for learnable lengths",
                      stacklevel=3)
    values = delays.detach()
    rounded = torch.round(values)
    if not torch.equal(values, rounded):
        bad = values[values != rounded].flatten()[0].item()
        raise ValueError(f"{owner}: {name} must be integers to be realized in the time domain "
                         f"(z^-m for fractional m has no exact difference equation), got {bad:g}; "
                         f"use flamo.FractionalDelay for fractional lengths")
    return rounded.to(torch.int64).cpu()


class Gains(Realization):
    """Static gains on a diagonal: y_i[n] = g_i x_i[n]; ``gains`` (N,)."""

    def __init__(self, gains: torch.Tensor):
        _check_unbatched("Gains", "gains", gains, 1)
        self.params = (gains,)

    @property
    def shape(self):
        n = self.params[0].shape[0]
        return (n, n)


class MatrixGain(Realization):
    """A static matrix: y[n] = A x[n]; ``matrix`` (out, in)."""

    def __init__(self, matrix: torch.Tensor):
        _check_unbatched("MatrixGain", "matrix", matrix, 2)
        self.params = (matrix,)

    @property
    def shape(self):
        return tuple(self.params[0].shape)


class Delays(Realization):
    """Integer delay lines on a diagonal: y_i[n] = x_i[n - m_i]; ``delays`` (N,) int."""

    def __init__(self, delays: torch.Tensor):
        if delays.dtype != torch.int64 or delays.ndim != 1 or (delays < 0).any():
            raise ValueError(f"Delays: delays must be a 1-D int64 tensor of lengths >= 0, got "
                             f"{delays!r}")
        self.delays = delays

    @property
    def shape(self):
        n = self.delays.shape[0]
        return (n, n)

    @property
    def horizon(self):
        return int(self.delays.min())


class DelayGains(Realization):
    """y_i[n] = sum_j G_ij x_j[n - m_ij]: ``delays`` (out, in) int, ``gains`` (out, in)."""

    def __init__(self, delays: torch.Tensor, gains: torch.Tensor):
        _check_unbatched("DelayGains", "gains", gains, 2)
        if delays.dtype != torch.int64 or delays.shape != gains.shape or (delays < 0).any():
            raise ValueError(f"DelayGains: delays must be int64 lengths >= 0 shaped like gains "
                             f"{tuple(gains.shape)}, got {delays!r}")
        self.delays = delays
        self.params = (gains,)

    @property
    def shape(self):
        return tuple(self.params[0].shape)

    @property
    def horizon(self):
        return int(self.delays.min())


class FIRBank(Realization):
    """FIR filters: ``taps`` (N, L) one per channel (``diagonal=True``) or (out, in, L) one
    per matrix entry."""

    def __init__(self, taps: torch.Tensor, diagonal: bool):
        _check_unbatched("FIRBank", "taps", taps, 2 if diagonal else 3)
        self.diagonal = diagonal
        self.params = (taps,)

    @property
    def shape(self):
        t = self.params[0]
        return (t.shape[0], t.shape[0]) if self.diagonal else tuple(t.shape[:2])


class SOSBank(Realization):
    """A cascade of second-order sections per channel, ``sections`` (N, K, 6) in scipy's
    layout; normalized here to a0 = 1 (differentiably)."""

    def __init__(self, sections: torch.Tensor):
        _check_unbatched("SOSBank", "sections", sections, 3)
        if sections.shape[-1] != 6:
            raise ValueError(f"SOSBank: sections must be (N, K, 6), got {tuple(sections.shape)}")
        self.params = (sections / sections[..., 3:4],)

    @property
    def shape(self):
        n = self.params[0].shape[0]
        return (n, n)


class RationalBank(Realization):
    """A rational filter B_i(z) / A_i(z) per channel: ``b``, ``a`` (N, p + 1) in powers of
    z^-1, a[:, 0] != 0 (normalized here)."""

    def __init__(self, b: torch.Tensor, a: torch.Tensor):
        _check_unbatched("RationalBank", "b", b, 2)
        if a.shape != b.shape:
            raise ValueError(f"RationalBank: a must be shaped like b {tuple(b.shape)}, got "
                             f"{tuple(a.shape)}")
        a0 = a[:, :1]
        self.params = (b / a0, a / a0)

    @property
    def shape(self):
        n = self.params[0].shape[0]
        return (n, n)


class Chain(Realization):
    """Nodes in series, ``parts[0]`` first. Its horizon is that of its best part: the
    output is read from that part's state and passed through the parts after it."""

    def __init__(self, parts):
        self.parts = tuple(parts)

    @property
    def shape(self):
        return (self.parts[-1].shape[0], self.parts[0].shape[1])

    @property
    def horizon(self):
        return max(p.horizon for p in self.parts)


class Sum(Realization):
    """Nodes in parallel, outputs summed in order."""

    def __init__(self, parts):
        self.parts = tuple(parts)

    @property
    def shape(self):
        return self.parts[0].shape

    @property
    def horizon(self):
        return min(p.horizon for p in self.parts)


class Loop(Realization):
    """Feedback y = F(x + B y): ``forward`` F (n, m), ``feedback`` B (m, n).

    ``name`` names the loop in errors. The loop runs in blocks of its forward horizon
    (when >= 1: each block's output is read from F's state) or of its feedback horizon
    (each block's feedback is read from B's state); ValueError when both are 0.
    """

    def __init__(self, forward, feedback, name: str = "Recursion"):
        self.parts = (forward, feedback)
        self.name = name
        if self.block_length() < 1:
            raise ValueError(
                f"{name}: a loop needs at least one sample of delay around it to run in the "
                f"time domain, but neither its forward path (horizon {forward.horizon}) nor "
                f"its feedback path (horizon {feedback.horizon}) holds an integer delay >= 1 "
                f"samples in every channel (a delay inside a nested loop's forward path does "
                f"not count)")

    @property
    def forward(self):
        return self.parts[0]

    @property
    def feedback(self):
        return self.parts[1]

    def scheme(self) -> str:
        """"forward" (blocks read from F) or "feedback" (blocks read from B)."""
        return "forward" if self.forward.horizon >= self.feedback.horizon else "feedback"

    def block_length(self) -> int:
        return max(self.forward.horizon, self.feedback.horizon)

    @property
    def shape(self):
        return self.forward.shape

    @property
    def horizon(self):
        # Inside another loop the chunks are fixed by that loop, so a loop read from its
        # forward path can give its output from state for up to one block.
        return self.forward.horizon if self.scheme() == "forward" else 0
