r"""Read a feedback delay network back from its modules: the one FDN reader.

:func:`fdn_structure` returns the parts of an FDN built by :func:`flamo.reverb.build_fdn`
(or composed in the same layout, e.g. rebuilt from a preset) as an :class:`FDNStructure`:
the modules, for access and training, and, on request, the plain tensors m, A, b, c, d and
the per-line attenuation as gains and second-order sections, for the consumers that work
on arrays (the time-domain renderer ``baselines.render``, the modal decomposition
:func:`flamo.reverb.modal_decomposition`). The layout (Jot & Chaigne, AES 1991)::

    Series(input   Gain (N, in),
           loop    Recursion(forward=Series(Delay (N,), attenuation (N x N, diagonal)),
                             feedback=Matrix or Gain (N, N)),
           output  Gain (out, N),
           [tone   (out x out)])                            # optional 4th part

optionally in a ``Parallel`` with a direct ``Gain`` (out, in) (either branch order). Part
names are not read, only the layout. The transfer function is

.. math::
    H(z) = d + T(z)\, c^T \left(I - D(z) A\right)^{-1} D(z)\, b, \qquad
    D(z) = \mathrm{diag}\left(z^{-m_i}\, g_i \prod_k S_{ik}(z)\right),

with T the tone filter. The attenuation has the gains g and sections S when it is a
diagonal :class:`flamo.Gain`, :class:`flamo.HomogeneousAttenuation`, a module with
second-order sections (:class:`flamo.SOS`, :class:`flamo.Biquad`, :class:`flamo.SVF`,
:class:`flamo.PEQ`, :class:`flamo.GEQ`, :class:`flamo.OnePoleAttenuation`,
:class:`flamo.ShelfAttenuation`, :class:`flamo.GEQAttenuation`) or a :class:`flamo.Series`
of those; the tone module likewise. Any other N x N module is still a valid loop for
frequency sampling, but has no such tensors, and asking for them raises ValueError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from ..modules import Delay, DSPModule, Gain, Matrix
from ..system import Parallel, Recursion, Series

__all__ = ["FDNStructure", "fdn_structure"]

LAYOUT = ("Series(input Gain (N, in), Recursion(forward=Series(Delay, attenuation N x N), "
          "feedback=Matrix or Gain (N, N)), output Gain (out, N)[, tone (out, out)]), "
          "optionally in a Parallel with a direct Gain (out, in)")

ATTENUATION_KINDS = ("a diagonal Gain, HomogeneousAttenuation, or a diagonal module with "
                     "second-order sections (SOS, Biquad, SVF, PEQ, GEQ, OnePoleAttenuation, "
                     "ShelfAttenuation, GEQAttenuation, ProportionalAttenuation), or a Series of those")


def _unsupported(module, why: str) -> ValueError:
    return ValueError(f"fdn_structure: {why}; got {type(module).__name__} of shape "
                      f"{getattr(module, 'shape', '?')}. Supported layout: {LAYOUT}")


def _constant_matrix(module, what: str, shape: tuple) -> torch.Tensor:
    """(out, in) matrix of a Gain or Matrix module, differentiable; checks ``shape``."""
    if isinstance(module, Matrix):
        value = module.matrix
    elif isinstance(module, Gain):
        value = torch.diag_embed(module.gains) if module.diagonal else module.gains
    else:
        raise ValueError(f"FDNStructure: {what} must be a flamo.Gain or flamo.Matrix for its "
                         f"constant matrix, got {type(module).__name__}")
    if tuple(value.shape) != shape:
        raise ValueError(f"FDNStructure: {what} must have shape {shape} without batch dims, "
                         f"got {tuple(value.shape)}")
    return value


def _gains_and_sections(module, n: int, what: str, fs: Optional[float]
                       ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Per-channel gains (n,) and second-order sections (n, K, 6) of a diagonal module.

    A 1 x 1 module counts as a diagonal of one channel. A Series multiplies the gains of its
    parts and concatenates their sections (diagonal parts commute). Either result is None
    when the module has none. Both keep the autograd graph to the module's parameters.
    Modules with parameters in Hz or seconds are designed at the sample rate ``fs``.

    Raises
    ------
    ValueError
        For a module that is neither (see :data:`ATTENUATION_KINDS`), naming ``what``.
    """
    if isinstance(module, Series):
        gains, sections = None, []
        for part in module:
            g, s = _gains_and_sections(part, n, what, fs)
            if g is not None:
                gains = g if gains is None else gains * g
            if s is not None:
                sections.append(s)
        return gains, (torch.cat(sections, dim=-2) if sections else None)
    scalar = not module.diagonal and tuple(module.shape) == (1, 1) and n == 1
    if not (module.diagonal or scalar) or tuple(module.shape) != (n, n):
        raise ValueError(f"FDNStructure: {what} must be a diagonal {n} x {n} module "
                         f"({ATTENUATION_KINDS}), got {type(module).__name__} of shape "
                         f"{tuple(module.shape)} (diagonal={module.diagonal})")

    def at_fs():
        if fs is None:
            raise ValueError(f"FDNStructure: {what} ({type(module).__name__}) is designed from "
                             f"Hz or seconds: read the FDN with fdn_structure(system, fs=...)")
        return fs

    if hasattr(module, "gains_at"):  # HomogeneousAttenuation
        return _checked_gains(module.gains_at(at_fs()), module, n, what), None
    if hasattr(module, "sos_at") or hasattr(module, "sos"):
        s = module.sos_at(at_fs()) if hasattr(module, "sos_at") else module.sos
        if scalar and s.ndim <= 2:  # (6,) one section or (K, 6) a cascade
            s = s.reshape(1, -1, 6)
        elif s.ndim == 2:  # (N, 6): one section per channel
            s = s.unsqueeze(-2)
        if s.ndim != 3 or s.shape[0] != n or s.shape[-1] != 6:
            raise ValueError(f"FDNStructure: {what} ({type(module).__name__}) must have sections "
                             f"of shape ({n}, K, 6) without batch dims, got {tuple(s.shape)}")
        return None, s
    if hasattr(module, "gains"):  # Gain
        return _checked_gains(module.gains, module, n, what), None
    raise ValueError(f"FDNStructure: {what} {type(module).__name__} has no gain or second-order-"
                     f"section form (supported: {ATTENUATION_KINDS})")


def _checked_gains(gains, module, n, what):
    g = gains.reshape(-1)
    if g.shape != (n,):
        raise ValueError(f"FDNStructure: {what} ({type(module).__name__}) must have gains "
                         f"of shape ({n},) without batch dims, got {tuple(gains.shape)}")
    return g


@dataclass(frozen=True)
class FDNStructure:
    """The parts of an FDN (see the module docstring), read by :func:`fdn_structure`.

    Attributes
    ----------
    system : DSPModule
        The system read.
    core : flamo.Series
        The reverberant part (input, loop, output, tone), without the direct path.
    input, output : DSPModule
        b (N, in) and c (out, N) gain modules.
    loop : flamo.Recursion
    delays : flamo.Delay
    attenuation : DSPModule
        The N x N module after the delays in the loop.
    feedback : DSPModule
        The feedback path (A).
    tone : DSPModule or None
        The (out, out) module after the output gains.
    direct : DSPModule or None
        The direct-path gain (out, in).
    fs : float or None
        Sample rate in Hz at which modules with parameters in Hz or seconds (Biquad, GEQ,
        the attenuation modules, ...) give their gains and sections; None if there are none.

    The tensor properties (``m``, ``A``, ``b``, ``c``, ``d``, ``gains``, ``sections``,
    ``tone_gains``, ``tone_sections``) are computed from the modules at each access, so
    gradients reach the parameters; they have no batch dims.
    """

    system: DSPModule
    core: Series
    input: DSPModule
    loop: Recursion
    delays: Delay
    attenuation: DSPModule
    feedback: DSPModule
    output: DSPModule
    tone: Optional[DSPModule]
    direct: Optional[DSPModule]
    fs: Optional[float] = None

    @property
    def n_lines(self) -> int:
        """N, the number of delay lines."""
        return self.loop.shape[0]

    @property
    def shape(self) -> tuple:
        """(out, in) of the whole FDN."""
        return self.core.shape

    @property
    def m(self) -> torch.Tensor:
        """(N,) int64 delay lengths in samples (integer-valued, >= 1; no gradient)."""
        samples = self.delays.delays.detach()
        if samples.ndim != 1:
            raise ValueError(f"FDNStructure.m: Delay lengths must have shape (N,) without batch "
                             f"dims, got {tuple(samples.shape)}")
        if not bool(torch.all(samples == torch.round(samples))) or bool((samples < 1).any()):
            raise ValueError(f"FDNStructure.m: delay lengths must be integers >= 1 sample (for a "
                             f"time-domain rendering or a modal decomposition), got "
                             f"{samples.tolist()}")
        return samples.to(torch.int64)

    @property
    def A(self) -> torch.Tensor:
        """(N, N) feedback matrix (raises ValueError when the feedback is not a constant)."""
        n = self.n_lines
        return _constant_matrix(self.feedback, "the feedback path", (n, n))

    @property
    def b(self) -> torch.Tensor:
        """(N, in) input gains."""
        return _constant_matrix(self.input, "the input gains", (self.n_lines, self.shape[1]))

    @property
    def c(self) -> torch.Tensor:
        """(out, N) output gains."""
        return _constant_matrix(self.output, "the output gains", (self.shape[0], self.n_lines))

    @property
    def d(self) -> torch.Tensor:
        """(out, in) direct gains; zeros without a direct path."""
        if self.direct is None:
            c = self.c
            return c.new_zeros(self.shape)
        return _constant_matrix(self.direct, "the direct path", self.shape)

    @property
    def gains(self) -> Optional[torch.Tensor]:
        """(N,) per-line gains of the attenuation, None when it has none."""
        return self._line_attenuation()[0]

    @property
    def sections(self) -> Optional[torch.Tensor]:
        """(N, K, 6) per-line second-order sections of the attenuation (scipy layout), None
        when it is frequency-independent."""
        return self._line_attenuation()[1]

    @property
    def tone_gains(self) -> Optional[torch.Tensor]:
        """(out,) gains of the tone module, None without tone or gains."""
        return self._tone()[0]

    @property
    def tone_sections(self) -> Optional[torch.Tensor]:
        """(out, K, 6) sections of the tone module, None without tone or sections."""
        return self._tone()[1]

    @property
    def frequency_dependent(self) -> bool:
        """True when the loop attenuation or the tone module has filter sections."""
        return self.sections is not None or self.tone_sections is not None

    def _line_attenuation(self):
        return _gains_and_sections(self.attenuation, self.n_lines, "the attenuation", self.fs)

    def _tone(self):
        if self.tone is None:
            return None, None
        return _gains_and_sections(self.tone, self.shape[0], "the tone module", self.fs)


def fdn_structure(system, fs: Optional[float] = None) -> FDNStructure:
    """Read the parts of an FDN (the layout of :func:`flamo.reverb.build_fdn`).

    Parameters
    ----------
    system : flamo.Series or flamo.Parallel
        An FDN in the layout of this module's docstring.
    fs : float, optional
        Sample rate in Hz of the gains and sections of modules designed in Hz or seconds
        (needed only when there are such modules and their tensors are asked for).

    Returns
    -------
    FDNStructure
        Its modules; tensors on request (properties).

    Raises
    ------
    TypeError
        ``system`` is not a flamo module.
    ValueError
        Another layout (the message names the supported one).

    Examples
    --------
    >>> from flamo.reverb import build_fdn
    >>> fdn = fdn_structure(build_fdn(delays=[3, 5], line_gains=[0.5, 0.25], seed=0))
    >>> fdn.m.tolist(), fdn.gains.tolist(), fdn.sections is None
    ([3, 5], [0.5, 0.25], True)
    """
    if not isinstance(system, DSPModule):
        raise TypeError(f"fdn_structure: system must be a flamo module, got {type(system).__name__}")
    core, direct = system, None
    if isinstance(system, Parallel):
        if len(system) != 2:
            raise _unsupported(system, f"a Parallel needs 2 branches (FDN, direct gain), got "
                                       f"{len(system)}")
        first, second = list(system)
        core, direct = (first, second) if isinstance(first, Series) else (second, first)
        if not isinstance(direct, Gain):
            raise _unsupported(direct, "the direct path must be a flamo.Gain")
    if not isinstance(core, Series) or len(core) not in (3, 4):
        raise _unsupported(core, "expected a Series of 3 or 4 parts (input gains, Recursion, "
                                 "output gains, optional tone)")
    parts = list(core)
    gain_in, loop, gain_out = parts[:3]
    if not isinstance(loop, Recursion):
        raise _unsupported(loop, "the second part of the Series must be a Recursion")
    for module, what in ((gain_in, "input"), (gain_out, "output")):
        if not isinstance(module, (Gain, Matrix)):
            raise _unsupported(module, f"the {what} gains must be a flamo.Gain")
    forward = loop.forward_path
    if not (isinstance(forward, Series) and len(forward) == 2 and isinstance(forward[0], Delay)):
        raise _unsupported(forward, "the loop's forward path must be Series(Delay, attenuation)")
    if fs is not None and (isinstance(fs, bool) or not isinstance(fs, (int, float)) or not fs > 0):
        raise ValueError(f"fdn_structure: fs must be a number > 0 Hz, got {fs!r}")
    return FDNStructure(system=system, core=core, input=gain_in, loop=loop, delays=forward[0],
                        attenuation=forward[1], feedback=loop.feedback_path, output=gain_out,
                        tone=parts[3] if len(parts) == 4 else None, direct=direct,
                        fs=None if fs is None else float(fs))
