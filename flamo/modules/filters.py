"""Parametric biquads and state-variable filters with stable-by-construction parameters.

Each module holds its parameters unconstrained (raw) and maps them smoothly into their
valid ranges, so that no optimizer step can make a filter unstable:

- frequency: :class:`~flamo.functional.LogSigmoid` onto ``freq_range`` (default
  (1e-5 fs, (1 - 1e-5) fs / 2)), inside (0, fs/2) and uniform per octave;
- Q (and the SVF resonance R): LogSigmoid onto ``q_range`` (default (0.01, 100)), so Q > 0
  and, bounded away from 0 and infinity, poles stay clear of the unit circle;
- gain: :class:`~flamo.functional.Sigmoid` onto ``gain_range_db`` (default +/-24 dB).

With freq in (0, fs/2) and Q > 0 every RBJ design and every SVF has its poles strictly inside
the unit circle (proofs in :mod:`flamo.functional.biquads`). Coefficients are designed in
float64 (a few numbers per filter) so that float32 rounding of cos(w0) near DC or Nyquist
cannot put a pole on the circle; :func:`~flamo.functional.sos_response` samples them in a
shifted basis that keeps low-frequency sections accurate in complex64.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..functional.biquads import BIQUAD_KINDS, LogSigmoid, biquad, svf
from ..functional.mappings import Sigmoid
from . import config_fields as cf
from .sos import cascade_response
from .base import DSPModule, as_real_tensor

__all__ = ["Biquad", "SVF"]


def check_fs(owner: str, fs: float, points) -> None:
    """Raise ValueError unless the points' sample rate (if any) equals the module's."""
    if points.fs is not None and not math.isclose(points.fs, fs, rel_tol=1e-9):
        raise ValueError(f"{owner}: designed for fs = {fs:g} Hz but evaluated with "
                         f"fs = {points.fs:g} Hz; build the module with fs={points.fs:g}")


def check_fs_arg(owner: str, fs) -> float:
    if isinstance(fs, bool) or not isinstance(fs, (int, float)) or not math.isfinite(fs) or fs <= 0:
        raise ValueError(f"{owner}: fs must be a finite number > 0 Hz, got {fs!r}")
    return float(fs)


def check_range(owner: str, name: str, value: torch.Tensor, low: float, high: float, unit=""):
    """ValueError naming ``name`` unless every value lies strictly inside (low, high)."""
    bad = ~((value > low) & (value < high))
    if bad.any():
        raise ValueError(f"{owner}: {name} must lie in ({low:g}, {high:g}){unit}, got "
                         f"{value[bad].flatten()[0].item():g}")


def default_freq_range(fs: float):
    return (1e-5 * fs, (1 - 1e-5) * fs / 2)


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


class _FilterModule(DSPModule):
    """Shared plumbing: float64 mapped parameters, fs check, response of (..., [N,] K, 6)."""

    def _param(self, name, mapping):
        return mapping(getattr(self, name).to(torch.float64))

    def _sos_response(self, sos, points):
        """sos (..., K, 6) for 1 x 1 or (..., N, K, 6) for diagonal -> Response."""
        check_fs(type(self).__name__, self.fs, points)
        return cascade_response(sos, points, self.diagonal)

    @property
    def shape(self):
        n = self.raw_freq.shape[-1] if self.diagonal else 1
        return (n, n)

    def _learnable(self):
        return isinstance(self.raw_freq, nn.Parameter)

    def _dtype(self):
        return str(self.raw_freq.dtype).removeprefix("torch.")


class Biquad(_FilterModule):
    """One RBJ-cookbook (or first-order shelf) filter, or N of them on a diagonal.

    Parameters
    ----------
    kind : str
        ``lowpass``, ``highpass``, ``bandpass``, ``notch``, ``allpass``, ``peak``,
        ``lowshelf``, ``highshelf``, ``lowshelf1``, ``highshelf1`` (see
        :func:`flamo.functional.biquad`).
    freq : float or array_like
        Cutoff/centre frequency in Hz, in (0, fs/2): a scalar gives a 1 x 1 module, an (N,)
        vector a diagonal N x N module (one filter per channel).
    q : float or array_like, default 1/sqrt(2)
        Quality factor (> 0), broadcast to the shape of ``freq``.
    gain_db : float or array_like, default 0
        Gain in dB of peak and shelf kinds, broadcast to the shape of ``freq``.
    fs : float, default 48000
        Sample rate in Hz; the evaluation grid must have the same.
    learnable : bool, default True
    freq_range, q_range, gain_range_db : (float, float), optional
        Open intervals of the smooth mappings (see the module docstring).
    """

    _freq_ndim = (0, 1)
    config_fields = {"kind": cf.Choice(BIQUAD_KINDS), "freq": cf.Tensor((0, 1)), "q": cf.Tensor((0, 1)),
                     "gain_db": cf.Tensor((0, 1)), "fs": cf.Number(), "learnable": cf.Bool(),
                     "freq_range": cf.Range(nullable=True), "q_range": cf.Range(nullable=True),
                     "gain_range_db": cf.Range(nullable=True)}

    def __init__(self, kind, freq, q=2 ** -0.5, gain_db=0.0, fs=48000.0, learnable=True,
                 freq_range=None, q_range=None, gain_range_db=None):
        super().__init__()
        if kind not in BIQUAD_KINDS:
            raise ValueError(f"Biquad: kind must be one of {BIQUAD_KINDS}, got {kind!r}")
        self.kind, self.fs = kind, check_fs_arg("Biquad", fs)
        freq = as_real_tensor(freq, "freq", type(self).__name__, ndim=self._freq_ndim)
        check_range("Biquad", "freq", freq, 0.0, self.fs / 2, " Hz")
        q = broadcast_param("Biquad", "q", q, freq.shape).to(freq.dtype)
        gain_db = broadcast_param("Biquad", "gain_db", gain_db, freq.shape).to(freq.dtype)
        check_range("Biquad", "q", q, 0.0, math.inf)
        self.freq_range = as_range("Biquad", "freq_range", freq_range, default_freq_range(self.fs))
        self.q_range = as_range("Biquad", "q_range", q_range, (1e-2, 1e2))
        self.gain_range_db = as_range("Biquad", "gain_range_db", gain_range_db, (-24.0, 24.0))
        check_range("Biquad", "freq", freq, *self.freq_range, " Hz (freq_range)")
        check_range("Biquad", "q", q, *self.q_range, " (q_range)")
        check_range("Biquad", "gain_db", gain_db, *self.gain_range_db, " dB (gain_range_db)")
        self.diagonal = freq.ndim == 1
        self._init_parameter("raw_freq", freq, self.freq_mapping, learnable)
        self._init_parameter("raw_q", q, self.q_mapping, learnable)
        self._init_parameter("raw_gain", gain_db, self.gain_mapping, learnable)

    @property
    def freq_mapping(self):
        return LogSigmoid(*self.freq_range)

    @property
    def q_mapping(self):
        return LogSigmoid(*self.q_range)

    @property
    def gain_mapping(self):
        return Sigmoid(*self.gain_range_db)

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

    @property
    def sos(self) -> torch.Tensor:
        """Designed sections (..., 6) (scalar) or (..., N, 6) (diagonal), float64."""
        return biquad(self.kind, self.freq, self.q, self.gain_db, self.fs)

    def structured_response(self, points):
        return self._sos_response(self.sos.unsqueeze(-2), points)

    def config(self):
        """{"kind", "freq" (Hz), "q", "gain_db" (dB), "fs" (Hz), ranges, "learnable"}."""
        return {"type": "Biquad", "kind": self.kind, "freq": self.freq.tolist(), "q": self.q.tolist(),
                "gain_db": self.gain_db.tolist(), "fs": self.fs, "dtype": self._dtype(),
                "learnable": self._learnable(), "freq_range": list(self.freq_range),
                "q_range": list(self.q_range), "gain_range_db": list(self.gain_range_db)}

    def extra_repr(self):
        return f"kind={self.kind!r}, fs={self.fs:g}, " + super().extra_repr()


class SVF(_FilterModule):
    """State-variable filter (Kuznetsov et al. 2020; Lee et al. 2022), 1 x 1 or diagonal.

    H(s) = (m_hp s^2 + m_bp s + m_lp) / (s^2 + 2 R s + 1) at the cutoff ``freq``, bilinear
    transformed with g = tan(pi freq / fs) (:func:`flamo.functional.svf`). Stable for every
    parameter value: freq is mapped into (0, fs/2), R into ``resonance_range`` > 0, and the
    mixing coefficients (unconstrained, identity mapping) only move the zeros.

    Parameters
    ----------
    freq : float or array_like
        Cutoff in Hz in (0, fs/2); scalar -> 1 x 1, (N,) -> diagonal N x N.
    resonance : float or array_like, default 1/sqrt(2)
        Damping R > 0 (R = 1 / (2 Q)), broadcast to the shape of ``freq``.
    mix : array_like, default (1, 0, 0) (lowpass)
        Mixing coefficients [m_lp, m_bp, m_hp], shape (3,) or freq.shape + (3,). See
        :func:`flamo.functional.svf_mixing` for shelves, peak, notch, ...
    fs : float, default 48000
    learnable : bool, default True
    freq_range, resonance_range : (float, float), optional
        Defaults (1e-5 fs, (1 - 1e-5) fs / 2) Hz and (1e-3, 1e2).
    """

    config_fields = {"freq": cf.Tensor((0, 1)), "resonance": cf.Tensor((0, 1)), "mix": cf.Tensor((1, 2)),
                     "fs": cf.Number(), "learnable": cf.Bool(), "freq_range": cf.Range(nullable=True),
                     "resonance_range": cf.Range(nullable=True)}

    def __init__(self, freq, resonance=2 ** -0.5, mix=(1.0, 0.0, 0.0), fs=48000.0, learnable=True,
                 freq_range=None, resonance_range=None):
        super().__init__()
        self.fs = check_fs_arg("SVF", fs)
        freq = as_real_tensor(freq, "freq", "SVF", ndim=(0, 1))
        check_range("SVF", "freq", freq, 0.0, self.fs / 2, " Hz")
        resonance = broadcast_param("SVF", "resonance", resonance, freq.shape).to(freq.dtype)
        check_range("SVF", "resonance", resonance, 0.0, math.inf)
        mix = broadcast_param("SVF", "mix", mix, freq.shape, (3,)).to(freq.dtype)
        self.freq_range = as_range("SVF", "freq_range", freq_range, default_freq_range(self.fs))
        self.resonance_range = as_range("SVF", "resonance_range", resonance_range, (1e-3, 1e2))
        check_range("SVF", "freq", freq, *self.freq_range, " Hz (freq_range)")
        check_range("SVF", "resonance", resonance, *self.resonance_range, " (resonance_range)")
        self.diagonal = freq.ndim == 1
        self._init_parameter("raw_freq", freq, self.freq_mapping, learnable)
        self._init_parameter("raw_resonance", resonance, self.resonance_mapping, learnable)
        self._init_parameter("raw_mix", mix, None, learnable)

    @property
    def freq_mapping(self):
        return LogSigmoid(*self.freq_range)

    @property
    def resonance_mapping(self):
        return LogSigmoid(*self.resonance_range)

    @property
    def freq(self):
        return self._param("raw_freq", self.freq_mapping)

    @property
    def resonance(self):
        return self._param("raw_resonance", self.resonance_mapping)

    @property
    def mix(self):
        return self.raw_mix.to(torch.float64)

    @property
    def sos(self):
        m = self.mix
        return svf(self.freq, self.resonance, m[..., 0], m[..., 1], m[..., 2], self.fs)

    def structured_response(self, points):
        return self._sos_response(self.sos.unsqueeze(-2), points)

    def config(self):
        """{"freq" (Hz), "resonance", "mix", "fs" (Hz), ranges, "learnable"}."""
        return {"type": "SVF", "freq": self.freq.tolist(), "resonance": self.resonance.tolist(),
                "mix": self.mix.tolist(), "fs": self.fs, "dtype": self._dtype(),
                "learnable": self._learnable(), "freq_range": list(self.freq_range),
                "resonance_range": list(self.resonance_range)}
