"""Parametric biquads and state-variable filters with stable-by-construction parameters.

Each module holds its parameters unconstrained (raw) and maps them smoothly into their
valid ranges, so that no optimizer step can make a filter unstable:

- frequency: :class:`~flamo.functional.LogInterval` onto ``freq_range`` in Hz (default
  :data:`DEFAULT_FREQ_RANGE`, inside (0, 24 kHz)), uniform per octave;
- Q (and the SVF resonance R): LogInterval onto ``q_range`` (default (0.01, 100)), so Q > 0
  and, bounded away from 0 and infinity, poles stay clear of the unit circle;
- gain: :class:`~flamo.functional.Interval` onto ``gain_range_db`` (default +/-24 dB).

**The sample rate belongs to the evaluation.** Parameters are in Hz; the sections are
designed for the sample rate of each evaluation (``points.fs``, :meth:`FilterModule.sos_at`),
so a trained EQ evaluates at 44.1 kHz on a 44.1 kHz grid. With freq in (0, fs/2) and Q > 0
every RBJ design and every SVF has its poles strictly inside the unit circle (proofs in
:mod:`flamo.functional.biquads`): an evaluation whose Nyquist frequency fs/2 lies above the
top of ``freq_range`` (every fs >= 48 kHz with the default) is stable for every parameter
value; at a lower rate a frequency at or above fs/2 raises ValueError at evaluation (pass a
``freq_range`` below that Nyquist frequency to rule it out). Coefficients are designed in
float64 (a few numbers per filter) so that float32 rounding of cos(w0) near DC or Nyquist
cannot put a pole on the circle; :func:`~flamo.functional.sos_response` samples them in a
shifted basis that keeps low-frequency sections accurate in complex64.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..functional.biquads import BIQUAD_KINDS, biquad, svf
from ..functional.mappings import Interval, LogInterval
from . import config_fields as cf
from ..timedomain import realization as td
from .sos import cascade_response
from .._common import as_real_tensor
from .base import DSPModule

__all__ = ["Biquad", "SVF", "FilterModule", "DEFAULT_FREQ_RANGE"]

#: Default ``freq_range`` in Hz of the frequency mappings: (1e-5, 1 - 1e-5) times 24 kHz,
#: the Nyquist frequency of 48 kHz.
DEFAULT_FREQ_RANGE = (0.48, 23999.76)


def check_range(owner: str, name: str, value: torch.Tensor, low: float, high: float, unit=""):
    """ValueError naming ``name`` unless every value lies strictly inside (low, high)."""
    bad = ~((value > low) & (value < high))
    if bad.any():
        raise ValueError(f"{owner}: {name} must lie in ({low:g}, {high:g}){unit}, got "
                         f"{value[bad].flatten()[0].item():g}")


def check_below_nyquist(owner: str, name: str, value: torch.Tensor, fs: float):
    """ValueError unless every frequency ``value`` (Hz) lies below fs / 2."""
    bad = value >= fs / 2
    if bad.any():
        raise ValueError(f"{owner}: {name} {value[bad].flatten()[0].item():g} Hz is at or above "
                         f"the Nyquist frequency fs/2 = {fs / 2:g} Hz of this evaluation; "
                         f"evaluate at a higher sample rate, or give the module a range below it")


def as_range(owner, name, value, default):
    value = default if value is None else tuple(float(v) for v in value)
    if len(value) != 2 or not value[0] < value[1]:
        raise ValueError(f"{owner}: {name} must be (low, high) with low < high, got {value}")
    return value


def broadcast_param(owner, name, value, shape, extra=()):
    """Broadcast ``value`` to ``shape + extra`` (a copy), with an error naming it."""
    t = as_real_tensor(value, name, owner)
    try:
        return torch.broadcast_to(t, tuple(shape) + tuple(extra)).clone()
    except RuntimeError as err:
        raise ValueError(f"{owner}: {name} must broadcast to shape {tuple(shape) + tuple(extra)}, "
                         f"got shape {tuple(t.shape)}") from err


class FilterModule(DSPModule):
    """Base of the modules designed from physical parameters (Hz, dB, seconds) into
    second-order sections for the sample rate of each evaluation.

    Subclasses implement :meth:`sos_at`; the response at any points is the cascade designed
    at ``points.fs`` (ValueError for points without a sample rate).
    """

    registered = False  # a base class, not a preset type

    def sos_at(self, fs: float) -> torch.Tensor:
        """Designed sections (..., K, 6) for a 1 x 1 module or (..., N, K, 6) for a diagonal
        one, at sample rate ``fs`` Hz; differentiable w.r.t. the parameters."""
        raise NotImplementedError

    def structured_response(self, points):
        fs = points.require_fs(type(self).__name__)
        return cascade_response(self.sos_at(fs), points, self.diagonal)

    def realize(self, fs=None):
        """The sections designed at ``fs`` Hz, :class:`~flamo.timedomain.realization.SOSBank`."""
        sos = self.sos_at(td.require_fs(fs, type(self).__name__))
        return td.SOSBank(sos if self.diagonal else sos.unsqueeze(0))

    def _param(self, name, mapping):
        return mapping(getattr(self, name).to(torch.float64))

    @property
    def shape(self):
        n = self.raw_freq.shape[-1] if self.diagonal else 1
        return (n, n)

    def _learnable(self):
        return isinstance(self.raw_freq, nn.Parameter)

    def _dtype(self):
        return str(self.raw_freq.dtype).removeprefix("torch.")


class Biquad(FilterModule):
    """One RBJ-cookbook (or first-order shelf) filter, or N of them on a diagonal.

    Parameters
    ----------
    kind : str
        ``lowpass``, ``highpass``, ``bandpass``, ``notch``, ``allpass``, ``peak``,
        ``lowshelf``, ``highshelf``, ``lowshelf1``, ``highshelf1`` (see
        :func:`flamo.functional.biquad`).
    freq : float or array_like
        Cutoff/centre frequency in Hz, inside ``freq_range`` and below the Nyquist frequency
        of the evaluations: a scalar gives a 1 x 1 module, an (N,) vector a diagonal N x N
        module (one filter per channel).
    q : float or array_like, default 1/sqrt(2)
        Quality factor (> 0), broadcast to the shape of ``freq``.
    gain_db : float or array_like, default 0
        Gain in dB of peak and shelf kinds, broadcast to the shape of ``freq``.
    learnable : bool, default True
    freq_range, q_range, gain_range_db : (float, float), optional
        Open intervals of the smooth mappings (see the module docstring).
    """

    _freq_ndim = (0, 1)
    config_fields = {"kind": cf.Choice(BIQUAD_KINDS), "freq": cf.Tensor((0, 1)), "q": cf.Tensor((0, 1)),
                     "gain_db": cf.Tensor((0, 1)), "learnable": cf.Bool(),
                     "freq_range": cf.Range(nullable=True), "q_range": cf.Range(nullable=True),
                     "gain_range_db": cf.Range(nullable=True)}

    def __init__(self, kind, freq, q=2 ** -0.5, gain_db=0.0, learnable=True, freq_range=None,
                 q_range=None, gain_range_db=None):
        super().__init__()
        if kind not in BIQUAD_KINDS:
            raise ValueError(f"Biquad: kind must be one of {BIQUAD_KINDS}, got {kind!r}")
        self.kind = kind
        owner = type(self).__name__  # PEQ reuses this constructor
        freq = as_real_tensor(freq, "freq", owner, ndim=self._freq_ndim)
        check_range(owner, "freq", freq, 0.0, math.inf, " Hz")
        q = broadcast_param(owner, "q", q, freq.shape).to(freq.dtype)
        gain_db = broadcast_param(owner, "gain_db", gain_db, freq.shape).to(freq.dtype)
        check_range(owner, "q", q, 0.0, math.inf)
        self.freq_range = as_range(owner, "freq_range", freq_range, DEFAULT_FREQ_RANGE)
        self.q_range = as_range(owner, "q_range", q_range, (1e-2, 1e2))
        self.gain_range_db = as_range(owner, "gain_range_db", gain_range_db, (-24.0, 24.0))
        check_range(owner, "freq", freq, *self.freq_range, " Hz (freq_range)")
        check_range(owner, "q", q, *self.q_range, " (q_range)")
        check_range(owner, "gain_db", gain_db, *self.gain_range_db, " dB (gain_range_db)")
        self.diagonal = freq.ndim == 1
        self._init_parameter("raw_freq", freq, self.freq_mapping, learnable)
        self._init_parameter("raw_q", q, self.q_mapping, learnable)
        self._init_parameter("raw_gain", gain_db, self.gain_mapping, learnable)

    @property
    def freq_mapping(self):
        return LogInterval(*self.freq_range)

    @property
    def q_mapping(self):
        return LogInterval(*self.q_range)

    @property
    def gain_mapping(self):
        return Interval(*self.gain_range_db)

    @property
    def freq(self) -> torch.Tensor:
        """Mapped frequencies in Hz (float64), shape of the ``freq`` argument."""
        return self._param("raw_freq", self.freq_mapping)

    @property
    def q(self) -> torch.Tensor:
        return self._param("raw_q", self.q_mapping)

    @property
    def gain_db(self) -> torch.Tensor:
        return self._param("raw_gain", self.gain_mapping)

    def sos_at(self, fs):
        """Designed sections at ``fs`` Hz: (..., 1, 6) (scalar) or (..., N, 1, 6) (diagonal),
        float64."""
        freq = self.freq
        check_below_nyquist(type(self).__name__, "freq", freq, fs)
        return biquad(self.kind, freq, self.q, self.gain_db, fs).unsqueeze(-2)

    def config(self):
        """{"kind", "freq" (Hz), "q", "gain_db" (dB), ranges, "learnable"}."""
        return {"type": "Biquad", "kind": self.kind, "freq": self.freq.tolist(), "q": self.q.tolist(),
                "gain_db": self.gain_db.tolist(), "dtype": self._dtype(),
                "learnable": self._learnable(), "freq_range": list(self.freq_range),
                "q_range": list(self.q_range), "gain_range_db": list(self.gain_range_db)}

    def extra_repr(self):
        return f"kind={self.kind!r}, " + super().extra_repr()


class SVF(FilterModule):
    """State-variable filter (Kuznetsov et al. 2020; Lee et al. 2022), 1 x 1 or diagonal.

    H(s) = (m_hp s^2 + m_bp s + m_lp) / (s^2 + 2 R s + 1) at the cutoff ``freq``, bilinear
    transformed with g = tan(pi freq / fs) at the sample rate of each evaluation
    (:func:`flamo.functional.svf`). Stable for every parameter value below the Nyquist
    frequency: freq is mapped into ``freq_range``, R into ``resonance_range`` > 0, and the
    mixing coefficients (unconstrained, identity mapping) only move the zeros.

    Parameters
    ----------
    freq : float or array_like
        Cutoff in Hz, inside ``freq_range`` and below the Nyquist frequency of the
        evaluations; scalar -> 1 x 1, (N,) -> diagonal N x N.
    resonance : float or array_like, default 1/sqrt(2)
        Damping R > 0 (R = 1 / (2 Q)), broadcast to the shape of ``freq``.
    mix : array_like, default (1, 0, 0) (lowpass)
        Mixing coefficients [m_lp, m_bp, m_hp], shape (3,) or freq.shape + (3,). See
        :func:`flamo.functional.svf_mixing` for shelves, peak, notch, ...
    learnable : bool, default True
    freq_range, resonance_range : (float, float), optional
        Defaults :data:`DEFAULT_FREQ_RANGE` Hz and (1e-3, 1e2).
    """

    config_fields = {"freq": cf.Tensor((0, 1)), "resonance": cf.Tensor((0, 1)), "mix": cf.Tensor((1, 2)),
                     "learnable": cf.Bool(), "freq_range": cf.Range(nullable=True),
                     "resonance_range": cf.Range(nullable=True)}

    def __init__(self, freq, resonance=2 ** -0.5, mix=(1.0, 0.0, 0.0), learnable=True,
                 freq_range=None, resonance_range=None):
        super().__init__()
        freq = as_real_tensor(freq, "freq", "SVF", ndim=(0, 1))
        check_range("SVF", "freq", freq, 0.0, math.inf, " Hz")
        resonance = broadcast_param("SVF", "resonance", resonance, freq.shape).to(freq.dtype)
        check_range("SVF", "resonance", resonance, 0.0, math.inf)
        mix = broadcast_param("SVF", "mix", mix, freq.shape, (3,)).to(freq.dtype)
        self.freq_range = as_range("SVF", "freq_range", freq_range, DEFAULT_FREQ_RANGE)
        self.resonance_range = as_range("SVF", "resonance_range", resonance_range, (1e-3, 1e2))
        check_range("SVF", "freq", freq, *self.freq_range, " Hz (freq_range)")
        check_range("SVF", "resonance", resonance, *self.resonance_range, " (resonance_range)")
        self.diagonal = freq.ndim == 1
        self._init_parameter("raw_freq", freq, self.freq_mapping, learnable)
        self._init_parameter("raw_resonance", resonance, self.resonance_mapping, learnable)
        self._init_parameter("raw_mix", mix, None, learnable)

    @property
    def freq_mapping(self):
        return LogInterval(*self.freq_range)

    @property
    def resonance_mapping(self):
        return LogInterval(*self.resonance_range)

    @property
    def freq(self):
        return self._param("raw_freq", self.freq_mapping)

    @property
    def resonance(self):
        return self._param("raw_resonance", self.resonance_mapping)

    @property
    def mix(self):
        return self.raw_mix.to(torch.float64)

    def sos_at(self, fs):
        """Designed sections at ``fs`` Hz, (..., 1, 6) or (..., N, 1, 6), float64."""
        freq, m = self.freq, self.mix
        check_below_nyquist("SVF", "freq", freq, fs)
        return svf(freq, self.resonance, m[..., 0], m[..., 1], m[..., 2], fs).unsqueeze(-2)

    def config(self):
        """{"freq" (Hz), "resonance", "mix", ranges, "learnable"}."""
        return {"type": "SVF", "freq": self.freq.tolist(), "resonance": self.resonance.tolist(),
                "mix": self.mix.tolist(), "dtype": self._dtype(),
                "learnable": self._learnable(), "freq_range": list(self.freq_range),
                "resonance_range": list(self.resonance_range)}
