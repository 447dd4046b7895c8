"""Composition of modules: series, parallel and feedback loops.

Composition is the only place where shapes meet, so every shape is checked here, at
construction, with messages that name the parts (FLAMO paper, Fig. 1):

- Series(m_1, ..., m_K):  H = H_K ... H_2 H_1       (m_1 sees the input first)
- Parallel(m_1, ..., m_K): H = H_1 + ... + H_K
- Recursion(F, B):         H = (I - F B)^-1 F       (F forward path, B feedback path)
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from .grid import Grid
from .modules import config_fields as cf
from .modules.base import DSPModule
from .response import add, solve_loop

__all__ = ["Series", "Parallel", "Recursion"]


def _describe(name, module):
    out, inp = module.shape
    return f"{name!r} ({type(module).__name__}, {out} x {inp})"


def _named_modules(owner, modules):
    """Accept ``(m1, m2, ...)`` or a single dict/OrderedDict ``{name: module}``."""
    if len(modules) == 1 and isinstance(modules[0], dict):
        items = list(modules[0].items())
    else:
        items = [(str(i), m) for i, m in enumerate(modules)]
    if not items:
        raise ValueError(f"{owner}: needs at least one module")
    for name, m in items:
        if not isinstance(name, str) or not name or "." in name or hasattr(_Composite, name):
            raise ValueError(f"{owner}: part names must be non-empty strings without '.' that are "
                             f"not attributes of a system, got {name!r}")
        if not isinstance(m, DSPModule):
            raise TypeError(f"{owner}: part {name!r} must be a flamo module or system, "
                            f"got {type(m).__name__}")
    return OrderedDict(items)


class _Composite(DSPModule):
    """Shared container behaviour: named parts, indexing, iteration."""

    def __init__(self, owner, modules):
        super().__init__()
        for name, m in _named_modules(owner, modules).items():
            self.add_module(name, m)  # like nn.Sequential: state_dict keys are "name.param"

    def __getitem__(self, key):
        if isinstance(key, int):
            return list(self._modules.values())[key]
        return self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def named_parts(self):
        """(name, module) pairs in signal order."""
        return list(self._modules.items())

    @property
    def diagonal(self):
        return all(m.diagonal for m in self)

    config_fields = {"parts": cf.Parts()}

    def config(self):
        """{"parts": [[name, part config], ...]} in signal order."""
        return {"type": type(self).__name__, "parts": [[n, m.config()] for n, m in self.named_parts()]}

    @classmethod
    def from_fields(cls, parts):
        return cls(parts)  # the constructors take the {name: module} dict as one argument


class Series(_Composite):
    """Modules in series: the input goes through ``modules[0]`` first.

    Parameters
    ----------
    *modules : DSPModule, or one dict {name: DSPModule}
        Parts in signal order. The outputs of each part must match the inputs of the next.

    Examples
    --------
    >>> import flamo
    >>> chain = flamo.Series({"delays": flamo.Delay([3, 5]), "mix": flamo.Gain([[1.0, 1.0]])})
    >>> chain["mix"].shape
    (1, 2)
    """

    def __init__(self, *modules):
        super().__init__("Series", modules)
        parts = self.named_parts()
        for (name_a, a), (name_b, b) in zip(parts, parts[1:]):
            if a.shape[0] != b.shape[1]:
                raise ValueError(
                    f"Series: {_describe(name_a, a)} has {a.shape[0]} outputs but the next part "
                    f"{_describe(name_b, b)} expects {b.shape[1]} inputs")

    @property
    def shape(self):
        return (self[-1].shape[0], self[0].shape[1])

    def structured_response(self, points):
        parts = list(self)
        acc = parts[0].structured_response(points)
        for m in parts[1:]:
            acc = m.apply_to(acc, points)
        return acc

    def apply_to(self, rhs, points):
        for m in self:
            rhs = m.apply_to(rhs, points)
        return rhs


class Parallel(_Composite):
    """Modules in parallel, outputs summed: every part must have the same (out, in)."""

    def __init__(self, *modules):
        super().__init__("Parallel", modules)
        parts = self.named_parts()
        name0, first = parts[0]
        for name, m in parts[1:]:
            if m.shape != first.shape:
                raise ValueError(f"Parallel: all branches need the same (out, in) shape; "
                                 f"{_describe(name0, first)} vs {_describe(name, m)}")

    @property
    def shape(self):
        return self[0].shape

    def structured_response(self, points):
        parts = list(self)
        acc = parts[0].structured_response(points)
        for m in parts[1:]:
            acc = add(acc, m.structured_response(points))
        return acc


class Recursion(DSPModule):
    """Feedback loop H = (I - F B)^-1 F.

    The loop is solved by one batched linear solve per frequency (never an explicit
    inverse), F and B each evaluated once. Inside a Series, the solve is applied to the
    incoming columns only (e.g. the N x 1 input gains of an FDN), which costs one
    right-hand side instead of N.

    Parameters
    ----------
    forward : DSPModule
        F, (n, m): the path from the loop input to its output (e.g. the delay lines).
    feedback : DSPModule
        B, (m, n): the path from the loop output back to its input (e.g. the feedback
        matrix).
    check : bool, default True
        After each solve, raise ValueError if the result is not finite (the loop matrix is
        singular at an evaluation point). The check costs one pass over the result and, on a
        GPU, one synchronization.
    structured_solve : bool, default True
        Solve FDN-shaped loops (a diagonal path and a frequency-independent matrix) with
        one LU factorization per frequency that the backward pass reuses
        (:func:`flamo.functional.diagonal_loop_solve`): less time and memory than the
        generic solve (the asv benchmarks measure both), but first-order gradients only.
        Set False for double backward / Hessian-vector products through the loop.

    Raises
    ------
    ValueError
        At construction for mismatched shapes; at evaluation for a singular loop, naming
        the first offending frequency. A lossless loop (poles on the unit circle) needs
        alias_decay_db > 0 or some loss to stay off the poles.

    Examples
    --------
    A one-pole loop, F = z^-1 and B = 0.5: H(z) = z^-1 / (1 - 0.5 z^-1), whose impulse
    response is 0, 1, 0.5, 0.25, ... (time-aliased by 0.5^16 on this grid):

    >>> import torch, flamo
    >>> loop = flamo.Recursion(flamo.Delay([1]), flamo.Gain([[0.5]]))
    >>> h = loop.impulse_response(flamo.Grid(nfft=16, dtype=torch.float64))[:, 0, 0]
    >>> expected = torch.cat([torch.zeros(1), 0.5 ** torch.arange(15.0)]).double()
    >>> torch.allclose(h, expected, atol=1e-4)
    True
    """

    def __init__(self, forward, feedback, check=True, structured_solve=True):
        super().__init__()
        for name, m in (("forward", forward), ("feedback", feedback)):
            if not isinstance(m, DSPModule):
                raise TypeError(f"Recursion: {name} must be a flamo module or system, "
                                f"got {type(m).__name__}")
        (f_out, f_in), (b_out, b_in) = forward.shape, feedback.shape
        if b_out != f_in or b_in != f_out:
            raise ValueError(
                f"Recursion: feedback {_describe('feedback', feedback)} must map the "
                f"{f_out} outputs of {_describe('forward', forward)} back to its {f_in} inputs, "
                f"i.e. have shape ({f_in}, {f_out})")
        self.forward_path = forward
        self.feedback_path = feedback
        self.check = check
        self.structured_solve = structured_solve

    @property
    def shape(self):
        return self.forward_path.shape

    @property
    def diagonal(self):
        return self.forward_path.diagonal and self.feedback_path.diagonal

    def structured_response(self, points):
        return self.apply_to(None, points)

    config_fields = {"forward": cf.Module(), "feedback": cf.Module(), "check": cf.Bool(),
                     "structured_solve": cf.Bool()}

    def config(self):
        """{"forward": config, "feedback": config, "check": bool, "structured_solve": bool}."""
        return {"type": "Recursion", "forward": self.forward_path.config(),
                "feedback": self.feedback_path.config(), "check": self.check,
                "structured_solve": self.structured_solve}

    def apply_to(self, rhs, points):
        forward = self.forward_path.structured_response(points)
        feedback = self.feedback_path.structured_response(points)
        result = solve_loop(forward, feedback, rhs, structured=self.structured_solve)
        if self.check:
            self._check_finite(result, points)
        return result

    def _check_finite(self, result, points):
        bad = ~torch.isfinite(result.data)
        if not bad.any():
            return
        freq_dim = bad.ndim - (2 if result.diagonal else 3)
        other = [d for d in range(bad.ndim) if d != freq_dim]
        bins = bad.any(dim=other).nonzero().flatten().tolist()
        hint = (f"alias_decay_db > 0 (currently {points.alias_decay_db:g})"
                if isinstance(points, Grid) else "points off the unit circle")
        raise ValueError(
            f"Recursion: the loop matrix I - F B is singular at {len(bins)} evaluation points, "
            f"first at {points.point_label(bins[0])}; a lossless loop needs {hint} or loss in "
            f"the loop")
