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

from .exceptions import LoopResolutionWarning, UnstableLoopWarning, warn
from .functional.loop_solve import (MAX_PHASE_STEP, LoopDeterminant, singular_pivot_threshold,
                                    winding_number)
from .grid import Grid, Points, as_points
from .modules import config_fields as cf
from .modules.base import DSPModule
from .response import add, loop_determinant, matmul, solve_loop
from .timedomain import realization as td

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

    def realize(self, fs=None):
        """The parts' realizations in series."""
        return td.Chain([m.realize(fs) for m in self])


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

    def realize(self, fs=None):
        """The parts' realizations in parallel (outputs summed in order)."""
        return td.Sum([m.realize(fs) for m in self])


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
        Check every evaluation with the determinant of the loop matrix P = I - F B, which
        the LU factors of the solve give at no extra solve (see Notes): raise ValueError
        where P is singular to working precision or the solution is not finite; on a
        :class:`flamo.Grid`, count the loop's poles outside the circle of evaluation and
        act on ``on_unstable``, or warn (:class:`flamo.exceptions.LoopResolutionWarning`)
        when the grid is too coarse to count them. The checks cost a few passes over
        (M, N) values and, on a GPU, one synchronization.
    structured_solve : bool, default True
        Solve FDN-shaped loops, whose F B is per-line (diagonal) frequency-dependent parts
        and one frequency-independent matrix in any order and on either path (filters in
        the forward path, or before or after the matrix in the feedback path), with one LU
        factorization per frequency that the backward pass reuses
        (:func:`flamo.functional.diagonal_loop_solve`), first-order gradients only. The
        asv benchmark ``FDNOverFloor`` measures its time and memory against a plain
        ``torch.linalg.solve`` of the same loop. Set False for double backward /
        Hessian-vector products through the loop.
    on_unstable : {"raise", "warn"}, default "raise"
        What a grid evaluation does when the loop has poles outside the circle of radius
        1 / gamma: raise ValueError, or warn (:class:`flamo.exceptions.UnstableLoopWarning`)
        and return the result, which is then the response of the anti-causal, time-wrapped
        twin of the system, not of the system.

    Raises
    ------
    ValueError
        At construction for mismatched shapes. At evaluation (``check=True``) for a
        singular or near-singular loop, naming the first offending point (on a grid: its bin
        and frequency in Hz); a lossless loop (poles on the unit circle) needs
        alias_decay_db > 0 or some loss to stay off its poles. On a grid, for a loop with
        poles outside the circle of evaluation (``on_unstable="raise"``).

    Notes
    -----
    **Singular loops.** A relative pivot min_i |u_ii| / (1 + max |F B|) below
    :func:`flamo.functional.singular_pivot_threshold` (16 N eps) means P is singular within
    its rounding: the solve would return noise, typically a huge finite value.

    **Poles outside the circle.** Frequency sampling on the circle |z| = 1 / gamma returns,
    for a loop with poles outside it, the response of the anti-causal system with the same
    transfer function, wrapped in time: finite and wrong. By the argument principle the
    winding number of det P around the circle is minus the number of such poles
    (:func:`flamo.functional.winding_number`, which states exactly what it counts and when the
    grid resolves it). Poles between the unit circle and 1 / gamma are not flagged: the grid
    then returns the causal, growing response over its nfft samples, which is the right
    answer for that window. Use :meth:`loop_determinant` to see det P on any grid, and
    :func:`flamo.reverb.certify_stable` for a sufficient condition of stability on the unit
    circle.

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

    #: The values ``on_unstable`` accepts.
    ON_UNSTABLE = ("raise", "warn")

    def __init__(self, forward, feedback, check=True, structured_solve=True, on_unstable="raise"):
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
        for name, value in (("check", check), ("structured_solve", structured_solve)):
            if not isinstance(value, bool):
                raise TypeError(f"Recursion: {name} must be True or False, got {value!r}")
        if on_unstable not in self.ON_UNSTABLE:
            raise ValueError(f"Recursion: on_unstable must be one of {self.ON_UNSTABLE}, "
                             f"got {on_unstable!r}")
        self.forward_path = forward
        self.feedback_path = feedback
        self.check = check
        self.structured_solve = structured_solve
        self.on_unstable = on_unstable

    @property
    def shape(self):
        return self.forward_path.shape

    @property
    def diagonal(self):
        return self.forward_path.diagonal and self.feedback_path.diagonal

    def structured_response(self, points):
        return self.apply_to(None, points)

    config_fields = {"forward": cf.Module(), "feedback": cf.Module(), "check": cf.Bool(),
                     "structured_solve": cf.Bool(), "on_unstable": cf.Choice(ON_UNSTABLE)}

    def config(self):
        """{"forward": config, "feedback": config, "check": bool, "structured_solve": bool,
        "on_unstable": "raise" | "warn"}."""
        return {"type": "Recursion", "forward": self.forward_path.config(),
                "feedback": self.feedback_path.config(), "check": self.check,
                "structured_solve": self.structured_solve, "on_unstable": self.on_unstable}

    def realize(self, fs=None):
        """A feedback loop of the two paths' realizations (ValueError, naming the loop,
        when neither path holds a delay of at least one sample)."""
        return td.Loop(self.forward_path.realize(fs), self.feedback_path.realize(fs),
                       td.loop_name(self))

    def apply_to(self, rhs, points):
        forward = self.forward_path.structured_response(points)
        feedback = self.feedback_path.structured_response(points)
        result, det = solve_loop(forward, feedback, rhs, structured=self.structured_solve,
                                 determinant=self.check)
        if self.check:
            self._check(result, det, points)
        return result

    def characteristic(self, z, fs=None, dtype=None) -> torch.Tensor:
        """The loop matrix P(z) = I - F(z) B(z) at explicit points, whose singular points are
        the poles of the loop.

        Evaluated on the same path as :meth:`response` (F and B through their structured
        responses at the points), and differentiable with respect to the parameters. The
        poles of the loop are the zeros of det P(z): a state-space realization's eigenvalues
        make P singular there.

        Parameters
        ----------
        z : array_like, flamo.Points or flamo.Grid
            (M,) nonzero complex points (as for :meth:`probe`), or a point set.
        fs : float, optional
            Sample rate in Hz, for modules whose parameters are in Hz (ignored for a point set).
        dtype : torch.dtype, optional
            Real dtype of the evaluation (ignored for a point set).

        Returns
        -------
        torch.Tensor
            (M, n, n) complex, n the number of outputs of F (leading batch dims first when
            parameters are batched).
        """
        points = z if isinstance(z, Points) else Points(z, fs=fs, dtype=dtype)
        fb = matmul(self.forward_path.structured_response(points),
                    self.feedback_path.structured_response(points)).dense()
        n = fb.shape[-1]
        p = torch.eye(n, dtype=fb.dtype, device=fb.device) - fb
        return p.expand(*p.shape[:-3], points.M, n, n)

    def loop_determinant(self, points) -> LoopDeterminant:
        """det P(z) = det(I - F(z) B(z)) at the evaluation points, without solving the loop.

        The loop matrix is built and LU-factored exactly as the solve of :meth:`response`
        factors it (structured or generic), and the determinant is read off the factors
        (:func:`flamo.functional.lu_determinant`).

        Parameters
        ----------
        points : flamo.Grid or flamo.Points

        Returns
        -------
        flamo.functional.LoopDeterminant
            ``log_abs`` (natural log of |det P|) and ``phase`` (radians), (..., M), and the
            relative pivots; no autograd history. On a grid,
            ``flamo.functional.winding_number(det.phase, grid.nfft)`` counts the loop's poles
            outside the circle of evaluation.
        """
        points = as_points(points)
        det = loop_determinant(self.forward_path.structured_response(points),
                               self.feedback_path.structured_response(points),
                               structured=self.structured_solve)
        m = det.log_abs.shape[-1]
        if m != points.M:  # a frequency-independent loop: the same value at every point
            det = LoopDeterminant(*(t.expand(*t.shape[:-1], points.M)
                                    for t in (det.log_abs, det.phase, det.relative_pivot)), det.size)
        return det

    def _check(self, result, det, points):
        """Raise or warn for a non-finite result, a singular loop matrix or, on a grid, poles
        outside the circle of evaluation (see the class Notes). One host synchronization."""
        with torch.no_grad():
            data = result.data
            freq_dim = data.ndim - (2 if result.diagonal else 3)
            other = [d for d in range(data.ndim) if d != freq_dim]
            bad_points = (~torch.isfinite(data)).any(dim=other)  # (M or 1,)
            singular = det.singular.reshape(-1, det.singular.shape[-1]).any(0)  # (M or 1,)
            report = [bad_points.any(), bad_points.int().argmax(), singular.any(),
                      singular.int().argmax(), det.relative_pivot.amin()]
            on_grid = isinstance(points, Grid) and det.phase.shape[-1] == points.M > 1
            if on_grid:
                winding, largest, step_bin = (t.reshape(-1) for t in winding_number(det.phase, points.nfft))
                resolved = largest <= MAX_PHASE_STEP
                unstable = resolved & (winding != 0)
                first = unstable.int().argmax()
                worst = largest.argmax()
                report += [unstable.any(), first, winding[first], (~resolved).any(), largest[worst],
                           step_bin[worst]]
            values = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=data.device)
                                  for v in report]).tolist()
        nonfinite, bad_bin, is_singular, singular_bin, min_pivot = values[:5]
        lossless = (f"alias_decay_db > 0 (currently {points.alias_decay_db:g})"
                    if isinstance(points, Grid) else "points off the unit circle")
        if is_singular:
            threshold = singular_pivot_threshold(det.size, det.relative_pivot.dtype)
            raise ValueError(
                f"Recursion: the loop matrix I - F B is singular to working precision at "
                f"{points.point_label(int(singular_bin))} (smallest relative pivot {min_pivot:.3g} <= "
                f"{threshold:.3g} = 16 N eps for N = {det.size}, {det.relative_pivot.dtype}); "
                f"the solve would return noise. The loop has a pole at or next to that point: a "
                f"lossless loop needs {lossless} or loss in the loop")
        if nonfinite:
            raise ValueError(
                f"Recursion: the loop solve is not finite, first at "
                f"{points.point_label(int(bad_bin))}; a lossless loop needs {lossless} or loss in "
                f"the loop")
        if not on_grid:
            return
        any_unstable, first, count, any_unresolved, largest, step_bin = values[5:]
        if any_unstable:
            count = int(count)
            batch = (f", batch element {int(first)} of {det.phase[..., 0].numel()}"
                     if det.phase.ndim > 1 else "")
            circle = f"the circle of evaluation |z| = 1/gamma = {1 / points.gamma:.6g}"
            what = (f"the loop has {-count} pole(s) outside {circle}" if count < 0 else
                    f"a part of the loop (F or B) has {count} more pole(s) than det(I - F B) has "
                    f"zeros outside {circle}")
            message = (
                f"Recursion: {what} (winding number of det(I - F B) on the grid: {count}{batch}), "
                f"so frequency sampling returns the response of an anti-causal, time-wrapped "
                f"twin, not of the system. The system is unstable: keep the loop gain below 1 "
                f"(a unitary Matrix kind, gains through Interval(0, 1), attenuation filters) and "
                f"its filters stable, or raise alias_decay_db until 1/gamma exceeds the largest "
                f"pole radius to see the growing causal response; Recursion(..., "
                f"on_unstable='warn') makes this a warning")
            if self.on_unstable == "raise":
                raise ValueError(message)
            warn(message, UnstableLoopWarning)
        if any_unresolved:
            k = int(step_bin)
            # The message holds nothing that changes from one training step to the next (not
            # the phase step itself), so Python's default filter shows it once per call site
            # instead of once per step.
            warn(
                f"Recursion: the grid does not resolve the loop's poles: the phase of "
                f"det(I - F B) moves by more than pi/2 between "
                f"{points.point_label(k)} and the next bin, so a pole lies within about "
                f"pi/nfft of the circle of evaluation. Its response wraps around with little "
                f"attenuation (about 27 dB or less per nfft samples), and poles outside the "
                f"circle cannot be counted (stability unchecked). Raise alias_decay_db "
                f"(see flamo.recommend_alias_decay_db) or nfft, or add loss to the loop",
                LoopResolutionWarning)

