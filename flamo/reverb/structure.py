r"""Read the parameters of a library-built FDN, keeping their autograd graph.

One reader serves every consumer that needs an FDN as plain tensors: the time-domain
baselines (``baselines.render``) and the modal decomposition
(:func:`flamo.reverb.modal_decomposition` through :func:`flamo.reverb.fdn_arrays`).

Recognized structure (the feedback delay network of Jot & Chaigne 1991)::

    Series(Gain b (N, 1),
           Recursion(forward=Series(Delay m, [Gain g diagonal], [SOS (N, K, 6)]) | Delay m,
                     feedback=Matrix | Gain (N, N)),
           Gain c (1, N))

optionally wrapped as ``Parallel(that_series, Gain d (1, 1))`` (either branch order) for
the direct path; :func:`flamo.reverb.build_fdn` builds it. Inside the forward path the
diagonal parts may come in any order and repeat (they commute): gains multiply, SOS
cascades are concatenated. The transfer function is
``H(z) = d + c^T (I - F(z) A)^{-1} F(z) b`` with ``F(z) = diag(g_i z^{-m_i} prod_k S_{ik}(z))``.
Delays must be integer-valued; they carry no gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..modules import SOS, Delay, DSPModule, Gain, Matrix
from ..system import Parallel, Recursion, Series

__all__ = ["FDNParameters", "fdn_parameters"]

_FDN_STRUCTURE = (
    "Series(Gain b (N, 1), Recursion(forward=Series(Delay, [Gain g (N,) diagonal], "
    "[SOS (N, K, 6)]) or Delay, feedback=Matrix or Gain (N, N)), Gain c (1, N)), optionally "
    "as Parallel(that_series, Gain d (1, 1))")


@dataclass
class FDNParameters:
    """Parameters of an FDN: H(z) = d + c^T (I - D(z) A)^-1 D(z) b, D = diag(g z^-m S(z)).

    Attributes
    ----------
    m : torch.Tensor
        (N,) int64 delay lengths in samples (no gradient).
    A : torch.Tensor
        (N, N) feedback matrix.
    b, c : torch.Tensor
        (N,) input and output gains.
    d : torch.Tensor
        () direct gain (zero when the system has no direct path).
    g : torch.Tensor or None
        (N,) per-line gains, None when the loop has none.
    sos : torch.Tensor or None
        (N, K, 6) per-line attenuation filters (scipy layout), None when the loop has none.

    All floating tensors are views/functions of the module parameters, so gradients of
    anything computed from them reach the library's parameters.
    """

    m: torch.Tensor
    A: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor
    d: torch.Tensor
    g: Optional[torch.Tensor] = None
    sos: Optional[torch.Tensor] = None

    def as_kwargs(self) -> dict:
        """Keyword arguments ``m`` .. ``sos`` (those of ``baselines.fdn_block``)."""
        return dict(m=self.m, A=self.A, b=self.b, c=self.c, d=self.d, g=self.g, sos=self.sos)


def _unsupported(system, why: str) -> ValueError:
    return ValueError(f"fdn_parameters: unsupported structure ({why}); got "
                      f"{type(system).__name__} of shape {getattr(system, 'shape', '?')}. "
                      f"Supported: {_FDN_STRUCTURE}")


def _gain_matrix(module, what: str, shape: tuple) -> torch.Tensor:
    """(out, in) matrix of a Gain or Matrix module, differentiable; checks ``shape``."""
    if isinstance(module, Matrix):
        value = module.matrix
    elif isinstance(module, Gain):
        value = module.gains
        if module.diagonal:
            value = torch.diag_embed(value)
    else:
        raise _unsupported(module, f"{what} must be a Gain or Matrix, "
                                   f"got {type(module).__name__}")
    if tuple(value.shape) != shape:
        raise _unsupported(module, f"{what} must have shape {shape} without batch dims, "
                                   f"got {tuple(value.shape)}")
    return value


def _integer_delays(module: "Delay") -> torch.Tensor:
    samples = module.samples.detach()
    if samples.ndim != 1:
        raise ValueError(f"fdn_parameters: Delay samples must have shape (N,) without batch "
                         f"dims, got {tuple(samples.shape)}")
    if not bool(torch.all(samples == torch.round(samples))):
        raise ValueError(f"fdn_parameters: Delay samples must be integer-valued for a "
                         f"time-domain rendering, got {samples.tolist()}")
    if bool((samples < 1).any()):
        raise ValueError(f"fdn_parameters: Delay samples must be >= 1 inside a feedback loop, "
                         f"got {samples.tolist()}")
    return samples.to(torch.int64)


def _forward_path(forward, N: int):
    """(m, g, sos) of the loop's forward path: a Delay, or a Series of diagonal parts."""
    parts = list(forward) if isinstance(forward, Series) else [forward]
    delays = [p for p in parts if isinstance(p, Delay)]
    if len(delays) != 1:
        raise _unsupported(forward, f"the loop's forward path needs exactly one Delay, "
                                    f"found {len(delays)}")
    g, sos = None, []
    for p in parts:
        if isinstance(p, Delay):
            continue
        if isinstance(p, Gain) and p.diagonal:
            gp = p.gains
            if tuple(gp.shape) != (N,):
                raise _unsupported(p, f"loop gain must have shape ({N},), got {tuple(gp.shape)}")
            g = gp if g is None else g * gp
        elif isinstance(p, SOS) and p.diagonal:
            sp = p.sos
            if sp.ndim != 3 or sp.shape[0] != N:
                raise _unsupported(p, f"loop SOS must have shape ({N}, K, 6), got "
                                      f"{tuple(sp.shape)}")
            sos.append(sp)
        else:
            raise _unsupported(p, f"the loop's forward path may hold only a Delay, diagonal "
                                  f"Gains and diagonal SOS modules, got {type(p).__name__} "
                                  f"(diagonal={p.diagonal})")
    return _integer_delays(delays[0]), g, (torch.cat(sos, dim=1) if sos else None)


def fdn_parameters(system) -> FDNParameters:
    """Read the parameters of a library-built FDN, keeping their autograd graph.

    Parameters
    ----------
    system : Series or Parallel
        An FDN in the structure described in this module's docstring,
        without leading batch dimensions on its parameters.

    Returns
    -------
    FDNParameters
        ``m, A, b, c, d, g, sos`` in the convention of ``baselines.fdn_block``.

    Raises
    ------
    TypeError
        ``system`` is not a flamo module.
    ValueError
        An unsupported structure (the message names the supported one) or non-integer
        delays.
    """
    if not isinstance(system, DSPModule):
        raise TypeError(f"fdn_parameters: system must be a flamo module, got "
                        f"{type(system).__name__}")
    d = None
    core = system
    if isinstance(system, Parallel):
        if len(system) != 2:
            raise _unsupported(system, f"a Parallel needs 2 branches (FDN, direct gain), got "
                                       f"{len(system)}")
        first, second = list(system)
        core, direct = (first, second) if isinstance(first, Series) else (second, first)
        d = _gain_matrix(direct, "the direct path", (1, 1))[0, 0]
    if not isinstance(core, Series) or len(core) != 3:
        raise _unsupported(core, "expected a Series of 3 parts (input gains, Recursion, "
                                 "output gains)")
    gain_in, loop, gain_out = list(core)
    if not isinstance(loop, Recursion):
        raise _unsupported(loop, f"the middle part must be a Recursion, got "
                                 f"{type(loop).__name__}")
    N = loop.shape[0]
    b = _gain_matrix(gain_in, "the input gains", (N, 1))[:, 0]
    c = _gain_matrix(gain_out, "the output gains", (1, N))[0]
    A = _gain_matrix(loop.feedback_path, "the feedback path", (N, N))
    m, g, sos = _forward_path(loop.forward_path, N)
    if d is None:
        d = A.new_zeros(())
    return FDNParameters(m=m, A=A, b=b, c=c, d=d, g=g, sos=sos)
