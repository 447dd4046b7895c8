r"""Stability diagnostics for feedback loops (FDNs) and a trainer callback.

A loop H = (I - F B)^-1 F is stable when det(I - F(z) B(z)) has no zeros for |z| >= 1. By
the small-gain theorem it suffices that the loop gain, the spectral norm
||F(z) B(z)||_2 (largest singular value), is below 1 on the whole unit circle (with F and B
themselves stable). Here the norm is sampled at the grid frequencies only, so the
certificate is exact for those frequencies and a sufficient condition there; between grid
points it relies on the loop gain varying slowly compared with the grid spacing (use a fine
grid for long delays or sharp attenuation filters). It is also conservative: a loop gain
>= 1 at some frequency does not prove instability. With an orthogonal feedback matrix and
per-line gains or attenuation filters of magnitude below 1, the loop gain is the largest
attenuation magnitude, so the parametrizations of :func:`flamo.reverb.build_fdn` with
``learnable_attenuation=True`` (gains through Interval(0, 1), or T60 through LogInterval onto a
finite range) are stable by construction.

The gain before instability (GBI) of a loop whose open-loop matrix F(z) B(z) is stable (FIR
rooms, delays, stable filters) follows from the eigenvalues instead of the norm, by the
generalized Nyquist criterion (MacFarlane & Postlethwaite 1977): the loop with a broadband
gain g in it, det(I - g F B), is stable while the characteristic loci g lambda_i(e^jw) do not
reach 1; they cannot while g max_w rho(F B(e^jw)) < 1, rho the spectral radius. So
GBI = 1 / max_w rho(F(e^jw) B(e^jw)) is the largest broadband gain that keeps every such loop
stable, as used for active acoustics (De Bortoli, Dal Santo, Prawda, Lokki, Valimaki,
Schlecht, "Differentiable active acoustics: optimizing stability via gradient descent",
DAFx 2024). It is exact (instability just above it) when the largest eigenvalue has zero
phase at its peak frequency: for loops with long delays the phase turns through 2 pi many
times across the band, so the onset lies within the grid resolution of it. rho <= ||F B||_2,
so the GBI is at least 1 / :func:`flamo.reverb.loop_gain`, and larger for non-normal loop matrices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from ..grid import Grid
from ..response import matmul
from ..system import Recursion

__all__ = ["find_recursions", "loop_gain", "loop_eigenvalues", "gain_before_instability",
           "certify_stable", "StabilityCertificate", "StabilityCallback"]


def find_recursions(system) -> list:
    """Every :class:`flamo.Recursion` in ``system`` (itself included), outermost first."""
    return [m for m in system.modules() if isinstance(m, Recursion)]


def _unit_circle(grid):
    return grid if grid.alias_decay_db == 0 else grid.replace(alias_decay_db=0.0)


def _loop_gain_per_frequency(recursion, grid) -> torch.Tensor:
    """(..., M) largest singular value of F(z_k) B(z_k)."""
    fb = matmul(recursion.forward_path.structured_response(grid),
                recursion.feedback_path.structured_response(grid))
    if fb.diagonal:  # the singular values of a diagonal matrix are its magnitudes
        gain = fb.data.abs().amax(dim=-1)
    else:
        gain = torch.linalg.matrix_norm(fb.data, ord=2)
    return gain.expand(*gain.shape[:-1], grid.M)  # M = 1 for frequency-independent loops


def loop_gain(system_or_recursion, grid, per_frequency=False):
    """Loop gain max_k ||F(z_k) B(z_k)||_2 on the unit circle.

    Parameters
    ----------
    system_or_recursion : DSPModule
        A :class:`flamo.Recursion`, or any system containing one or more (then the largest
        loop gain over them is returned).
    grid : flamo.Grid
        Frequencies to check. The loop is evaluated on the unit circle, |z| = 1: a grid
        with alias_decay_db > 0 is replaced by the same grid with alias_decay_db = 0.
    per_frequency : bool, default False
        Return the (M,) loop gain at every grid frequency instead of its maximum (maximum
        over the recursions and any batch dims).

    Returns
    -------
    torch.Tensor
        Scalar (or (M,)) real tensor, no autograd history.

    Raises
    ------
    ValueError
        If the system contains no Recursion.
    """
    loops = find_recursions(system_or_recursion)
    if not loops:
        raise ValueError(f"loop_gain: {type(system_or_recursion).__name__} contains no "
                         f"Recursion (feedback loop)")
    circle = _unit_circle(grid)
    with torch.no_grad():
        gains = torch.stack([_loop_gain_per_frequency(r, circle).reshape(-1, circle.M).amax(0)
                             for r in loops]).amax(0)
    return gains if per_frequency else gains.max()


def _points_on_circle(points):
    return _unit_circle(points) if isinstance(points, Grid) else points


def loop_eigenvalues(recursion, points) -> torch.Tensor:
    """Eigenvalues of the open-loop matrix F(z) B(z) of a loop at every evaluation point.

    F B is ``I - recursion.characteristic(points)`` (the evaluation path of
    :meth:`flamo.Recursion.response`). Differentiable with respect to the loop's parameters
    (through :func:`torch.linalg.eigvals`; its gradient is ill-conditioned where two
    eigenvalues coincide), so a loss on them can shape the loop, as in active acoustics.

    Parameters
    ----------
    recursion : flamo.Recursion
    points : flamo.Grid or flamo.Points
        A grid is evaluated on the unit circle (alias_decay_db replaced by 0); explicit
        points are used as given.

    Returns
    -------
    torch.Tensor
        (..., M, n) complex: the n eigenvalues (unordered) at each of the M points, n the
        number of outputs of the forward path F; leading batch dims when parameters are
        batched.

    Raises
    ------
    TypeError
        If ``recursion`` is not a :class:`flamo.Recursion`.
    """
    if not isinstance(recursion, Recursion):
        raise TypeError(f"loop_eigenvalues: recursion must be a flamo.Recursion, got "
                        f"{type(recursion).__name__}")
    p = recursion.characteristic(_points_on_circle(points))
    eye = torch.eye(p.shape[-1], dtype=p.dtype, device=p.device)
    return torch.linalg.eigvals(eye - p)


def gain_before_instability(recursion, points, per_frequency=False):
    """Gain before instability GBI = 1 / max_k rho(F(z_k) B(z_k)), rho the spectral radius.

    The largest broadband gain factor g for which the loop with g F B stays stable, for a
    stable open loop F B (see the module notes for why, and when it is exact). The maximum
    is taken over the sampled frequencies only: use a grid fine enough to resolve the loop's
    peaks (e.g. nfft at least the length of the room's impulse response).

    Parameters
    ----------
    recursion : flamo.Recursion
    points : flamo.Grid or flamo.Points
        Frequencies (a grid is evaluated on the unit circle).
    per_frequency : bool, default False
        Return the (M,) spectral radius rho(F B) at every point instead (its reciprocal
        minimum is the GBI; maximum over batch dims).

    Returns
    -------
    float or torch.Tensor
        The GBI (linear; 20 log10 of it in dB), or the (M,) real spectral radii, no autograd
        history. The GBI is ``inf`` for a loop that is zero at every point.
    """
    with torch.no_grad():
        radius = loop_eigenvalues(recursion, points).abs().amax(-1)
        radius = radius.reshape(-1, radius.shape[-1]).amax(0)
    if per_frequency:
        return radius
    peak = float(radius.max())
    return math.inf if peak == 0 else 1.0 / peak


@dataclass
class StabilityCertificate:
    """Result of :func:`certify_stable`.

    Attributes
    ----------
    max_loop_gain : float
        Largest spectral norm of F B over the grid frequencies.
    frequency_hz : float
        Grid frequency where it occurs, in Hz.
    margin : float
        The margin asked for.
    stable : bool
        max_loop_gain < 1 - margin: sufficient for stability at the grid frequencies.
    """

    max_loop_gain: float
    frequency_hz: float
    margin: float
    stable: bool

    def __bool__(self):
        return self.stable


def certify_stable(system, grid, margin=0.0) -> StabilityCertificate:
    """Check the small-gain condition ||F B||_2 < 1 - margin at every grid frequency.

    A True result is a sufficient condition for stability at the sampled frequencies only
    (see the module notes: between grid points the loop gain is not checked, and a False
    result does not prove instability).

    Parameters
    ----------
    system : DSPModule
        A Recursion or a system containing Recursions.
    grid : flamo.Grid
        Evaluated on the unit circle (alias_decay_db forced to 0).
    margin : float, default 0
        Required distance below 1, in [0, 1).
    """
    if not 0 <= margin < 1:
        raise ValueError(f"certify_stable: margin must lie in [0, 1), got {margin!r}")
    gains = loop_gain(system, grid, per_frequency=True)
    k = int(torch.argmax(gains))
    peak = float(gains[k])
    return StabilityCertificate(max_loop_gain=peak, frequency_hz=k * grid.fs / grid.nfft,
                                margin=float(margin), stable=peak < 1 - margin)


class StabilityCallback:
    """Trainer callback that stops an optimization whose loop gain approaches 1.

    Protocol: :class:`flamo.optim.Trainer` calls ``callback(state)`` after each step with a
    :class:`flamo.optim.trainer.TrainState`. Every ``every`` steps the callback certifies
    the system; when the maximum loop gain reaches ``1 - margin`` it calls
    ``state.request_stop(message)`` (the message names the gain and its frequency), and the
    trainer stops after that step. It returns the :class:`StabilityCertificate` when it checked, None
    otherwise, and keeps every check in ``history`` as (step, max loop gain).

    Parameters
    ----------
    system : DSPModule
        The system being optimized (containing the Recursion to watch).
    grid : flamo.Grid
        Frequencies to check (on the unit circle).
    every : int, default 1
        Check every this many steps.
    margin : float, default 1e-3
        Stop when the loop gain is >= 1 - margin.
    """

    def __init__(self, system, grid, every=1, margin=1e-3):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"StabilityCallback: every must be an int >= 1, got {every!r}")
        if not 0 <= margin < 1:
            raise ValueError(f"StabilityCallback: margin must lie in [0, 1), got {margin!r}")
        if not find_recursions(system):
            raise ValueError(f"StabilityCallback: {type(system).__name__} contains no Recursion")
        self.system, self.grid, self.every, self.margin = system, grid, every, margin
        self.history = []

    def __call__(self, state) -> Optional[StabilityCertificate]:
        step = int(getattr(state, "step", 0))
        if step % self.every:
            return None
        cert = certify_stable(self.system, self.grid, margin=self.margin)
        self.history.append((step, cert.max_loop_gain))
        if not cert.stable:
            state.request_stop(f"StabilityCallback: loop gain {cert.max_loop_gain:.6f} >= "
                                 f"1 - margin ({1 - self.margin:g}) at {cert.frequency_hz:.1f} Hz, "
                                 f"step {step}")
        return cert
