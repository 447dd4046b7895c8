"""Attenuation modules for reverberators: loop gain < 1 for every parameter value.

Each module is diagonal N x N (one gain or filter per delay line), takes the delay lengths
(samples, fixed) and reverberation times (seconds, learnable) and maps raw parameters by
:class:`~flamo.functional.LogInterval` onto ``t60_range`` (default (0.01, 60) s): T60 is
finite and > 0, so every per-line magnitude is < 1 at every frequency by design (see
:mod:`flamo.functional.attenuation`); with an orthogonal feedback matrix the FDN is stable.
The upper bound keeps 1 - g well above float32 resolution (g = 1 - 2.4e-6 at m = 1 sample,
T60 = 60 s, 48 kHz), so a float32 evaluation cannot round the loop gain up to 1.

The gains and filters follow from the delays and T60s at the sample rate of each evaluation
(``points.fs``; :meth:`HomogeneousAttenuation.gains_at`, :meth:`FilterModule.sos_at`): the
same module is the same reverberation time at 44.1 and at 48 kHz.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..functional.mappings import LogInterval
from ..functional.attenuation import (geq_attenuation, onepole_attenuation, proportional_attenuation,
                                      shelf_attenuation, t60_to_gain)
from ..functional.proportional import ProportionalEQ
from ..response import Response
from ..timedomain import realization as td
from . import config_fields as cf
from .._common import as_real_tensor
from .eq import CENTRES_FIELD, MAX_CONFIG_BANDS, BandDesigns, resolve_centres
from .filters import (DEFAULT_FREQ_RANGE, FilterModule, as_range, broadcast_param,
                      check_below_nyquist, check_range)

__all__ = ["HomogeneousAttenuation", "OnePoleAttenuation", "ShelfAttenuation", "GEQAttenuation",
           "ProportionalAttenuation"]


def _fields(**t60_fields):
    """Config fields of an attenuation module with the given T60 (and other) fields."""
    return {"delays": cf.Tensor(1), **t60_fields, "learnable": cf.Bool(),
            "t60_range": cf.Range(nullable=True)}


class AttenuationModule(FilterModule):
    """Shared plumbing of the attenuation modules: delays (a buffer), T60 parameters."""

    registered = False  # a base class, not a preset type
    diagonal = True

    def _setup(self, delays, t60_range):
        owner = type(self).__name__
        delays = as_real_tensor(delays, "delays", owner, ndim=1)
        if (delays <= 0).any():
            raise ValueError(f"{owner}: delays must be > 0 samples, got min {delays.min().item():g}")
        self.register_buffer("delays", delays.detach().clone())
        self.t60_range = as_range(owner, "t60_range", t60_range, (0.01, 60.0))
        return delays

    def _t60_param(self, name, value, extra, learnable):
        owner = type(self).__name__
        t = broadcast_param(owner, name, value, tuple(self.delays.shape), extra).to(self.delays.dtype)
        check_range(owner, name, t, 0.0, math.inf, " s")
        check_range(owner, name, t, *self.t60_range, " s (t60_range)")
        self._init_parameter("raw_" + name, t, self.t60_mapping, learnable)

    @property
    def t60_mapping(self):
        return LogInterval(*self.t60_range)

    def _t60(self, name):
        return self._param("raw_" + name, self.t60_mapping)

    @property
    def shape(self):
        n = self.delays.shape[-1]
        return (n, n)

    def _base_config(self, **values):
        learnable = any(isinstance(p, nn.Parameter) for p in self.parameters())
        return {"type": type(self).__name__, "delays": self.delays.tolist(),
                **{k: v.tolist() for k, v in values.items()},
                "dtype": str(self.delays.dtype).removeprefix("torch."), "learnable": learnable,
                "t60_range": list(self.t60_range)}


class HomogeneousAttenuation(AttenuationModule):
    """Frequency-independent per-line gains g_i = 10^(-3 m_i / (fs T60)).

    Parameters
    ----------
    delays : array_like
        (N,) delay lengths in samples (> 0), not learnable.
    t60 : float or array_like
        Reverberation time in seconds, one per line (N,) or shared (broadcast).
    learnable : bool, default True
    t60_range : (float, float), optional
    """

    config_fields = _fields(t60=cf.Tensor((0, 1)))

    def __init__(self, delays, t60, learnable=True, t60_range=None):
        super().__init__()
        self._setup(delays, t60_range)
        self._t60_param("t60", t60, (), learnable)

    @property
    def t60(self):
        return self._t60("t60")

    def gains_at(self, fs: float) -> torch.Tensor:
        """(..., N) per-line gains at sample rate ``fs`` Hz, float64."""
        return t60_to_gain(self.delays.to(torch.float64), self.t60, fs)

    def sos_at(self, fs):
        """The gains as (..., N, 1, 6) sections [g, 0, 0, 1, 0, 0] at ``fs`` Hz."""
        g = self.gains_at(fs)
        zero, one = torch.zeros_like(g), torch.ones_like(g)
        return torch.stack([g, zero, zero, one, zero, zero], dim=-1).unsqueeze(-2)

    def structured_response(self, points):  # a gain per line: no sections to evaluate
        gains = self.gains_at(points.require_fs("HomogeneousAttenuation"))
        return Response(gains.to(points.complex_dtype).unsqueeze(-2), True)

    def realize(self, fs=None):
        """Per-line gains at ``fs`` Hz, :class:`~flamo.timedomain.realization.Gains`."""
        return td.Gains(self.gains_at(td.require_fs(fs, "HomogeneousAttenuation")))

    def config(self):
        """{"delays" (samples), "t60" (s), "t60_range", "learnable"}."""
        return self._base_config(t60=self.t60)


class OnePoleAttenuation(AttenuationModule):
    """One-pole lowpass (or highpass) per line from T60 at DC and at Nyquist.

    See :func:`flamo.functional.onepole_attenuation` (Jot & Chaigne 1991, exact at DC and
    Nyquist). Parameters as :class:`HomogeneousAttenuation` with ``t60_dc`` and
    ``t60_nyquist`` in seconds.
    """

    config_fields = _fields(t60_dc=cf.Tensor((0, 1)), t60_nyquist=cf.Tensor((0, 1)))

    def __init__(self, delays, t60_dc, t60_nyquist, learnable=True, t60_range=None):
        super().__init__()
        self._setup(delays, t60_range)
        self._t60_param("t60_dc", t60_dc, (), learnable)
        self._t60_param("t60_nyquist", t60_nyquist, (), learnable)

    def sos_at(self, fs):
        """(..., N, 1, 6) first-order sections at ``fs`` Hz, float64."""
        return onepole_attenuation(self.delays.to(torch.float64), self._t60("t60_dc"),
                                   self._t60("t60_nyquist"), fs).unsqueeze(-2)

    def config(self):
        """{"delays", "t60_dc", "t60_nyquist" (s), "t60_range", "learnable"}."""
        return self._base_config(t60_dc=self._t60("t60_dc"), t60_nyquist=self._t60("t60_nyquist"))


class ShelfAttenuation(AttenuationModule):
    """First-order shelf per line: T60 at DC and at Nyquist, crossover frequency in Hz.

    See :func:`flamo.functional.shelf_attenuation`. The crossover is mapped by LogInterval
    onto ``crossover_range`` (default :data:`flamo.modules.filters.DEFAULT_FREQ_RANGE` Hz),
    must lie below the Nyquist frequency of the evaluations, and may be (N,) or shared.
    """

    config_fields = {**_fields(t60_dc=cf.Tensor((0, 1)), t60_nyquist=cf.Tensor((0, 1)),
                               crossover=cf.Tensor((0, 1))), "crossover_range": cf.Range(nullable=True)}

    def __init__(self, delays, t60_dc, t60_nyquist, crossover=1000.0, learnable=True,
                 t60_range=None, crossover_range=None):
        super().__init__()
        self._setup(delays, t60_range)
        self._t60_param("t60_dc", t60_dc, (), learnable)
        self._t60_param("t60_nyquist", t60_nyquist, (), learnable)
        self.crossover_range = as_range("ShelfAttenuation", "crossover_range", crossover_range,
                                        DEFAULT_FREQ_RANGE)
        x = broadcast_param("ShelfAttenuation", "crossover", crossover, tuple(self.delays.shape)).to(self.delays.dtype)
        check_range("ShelfAttenuation", "crossover", x, 0.0, math.inf, " Hz")
        check_range("ShelfAttenuation", "crossover", x, *self.crossover_range, " Hz (crossover_range)")
        self._init_parameter("raw_crossover", x, LogInterval(*self.crossover_range), learnable)

    @property
    def crossover(self):
        return self._param("raw_crossover", LogInterval(*self.crossover_range))

    def sos_at(self, fs):
        """(..., N, 1, 6) first-order sections at ``fs`` Hz, float64."""
        crossover = self.crossover
        check_below_nyquist("ShelfAttenuation", "crossover", crossover, fs)
        return shelf_attenuation(self.delays.to(torch.float64), self._t60("t60_dc"),
                                 self._t60("t60_nyquist"), crossover, fs).unsqueeze(-2)

    def config(self):
        """{"delays", "t60_dc", "t60_nyquist" (s), "crossover" (Hz), ranges, "learnable"}."""
        cfg = self._base_config(t60_dc=self._t60("t60_dc"), t60_nyquist=self._t60("t60_nyquist"),
                                crossover=self.crossover)
        cfg["crossover_range"] = list(self.crossover_range)
        return cfg


class BandAttenuation(AttenuationModule):
    """Shared plumbing of the per-band T60 attenuations: band centres, T60 (B,) or (N, B)."""

    registered = False  # a base class, not a preset type
    config_fields = {**_fields(t60=cf.Tensor((1, 2), max_len=MAX_CONFIG_BANDS)), "centres": CENTRES_FIELD,
                     "margin_db": cf.Number()}

    def _bands(self, delays, t60, centres, learnable, t60_range, margin_db):
        owner = type(self).__name__
        self._setup(delays, t60_range)
        self.centres = resolve_centres(owner, centres)
        if not margin_db > 0:
            raise ValueError(f"{owner}: margin_db must be > 0 dB, got {margin_db}")
        self.margin_db = float(margin_db)
        t = as_real_tensor(t60, "t60", owner, ndim=(1, 2))
        if t.shape[-1] != len(self.centres):
            raise ValueError(f"{owner}: t60 has {t.shape[-1]} bands but there are "
                             f"{len(self.centres)} centre frequencies")
        self.per_line = t.ndim == 2
        if self.per_line and t.shape[0] != self.delays.shape[0]:
            raise ValueError(f"{owner}: t60 of shape {tuple(t.shape)} needs "
                             f"{self.delays.shape[0]} rows, one per delay line")
        t = t.to(self.delays.dtype)
        check_range(owner, "t60", t, 0.0, math.inf, " s")
        check_range(owner, "t60", t, *self.t60_range, " s (t60_range)")
        self._init_parameter("raw_t60", t, self.t60_mapping, learnable)

    @property
    def t60(self):
        """Mapped T60 in seconds, (B,) or (N, B)."""
        return self._t60("t60")

    def _t60_per_line(self):
        return self.t60 if self.per_line else self.t60.unsqueeze(-2)

    def config(self):
        """{"delays", "t60" (s per band), "centres" (Hz), "margin_db", "t60_range", "learnable"}."""
        cfg = self._base_config(t60=self.t60)
        cfg.update(centres=list(self.centres), margin_db=self.margin_db)
        return cfg


class GEQAttenuation(BandAttenuation):
    """Graphic-EQ attenuation per line from T60 per band (accurate cascade GEQ).

    Line i's command gains are -60 m_i / (fs T60_b) dB; a smooth broadband correction keeps
    every line's magnitude <= -``margin_db`` dB on a dense check grid although the GEQ may
    overshoot between bands (:func:`flamo.functional.geq_attenuation`).

    Parameters
    ----------
    delays : array_like
        (N,) delay lengths in samples.
    t60 : array_like
        (B,) T60 per band in seconds (shared by all lines) or (N, B) per line.
    centres : "octave" | "third_octave" | array_like, default "octave"
    learnable : bool, default True
    t60_range : (float, float), optional
    margin_db : float, default 0.05
    """

    def __init__(self, delays, t60, centres="octave", learnable=True, t60_range=None,
                 margin_db=0.05):
        super().__init__()
        self._bands(delays, t60, centres, learnable, t60_range, margin_db)
        self.designs = BandDesigns(self.centres, offset=True)

    def sos_at(self, fs):
        """(..., N, B, 6) sections at ``fs`` Hz, float64."""
        return geq_attenuation(self.designs(fs), self.delays.to(torch.float64), self._t60_per_line(),
                               self.margin_db)


class ProportionalAttenuation(BandAttenuation):
    """Proportional-EQ attenuation per line from T60 per band (Jot 2015).

    Line i's band gains are -60 m_i / (fs T60_b) dB, realized by a broadband gain,
    proportional first-order shelves below the lowest and above the highest band and one
    proportional peak per band (:class:`flamo.functional.ProportionalEQ`,
    :func:`flamo.functional.proportional_attenuation`): the section gains in dB scale with
    the delay length (refined per line), and every line decays by 60 dB in T60_b at each
    band centre (to the design's accuracy: band gains spanning 10 dB per pass are met to
    1e-7 dB) with T60_1 below the lowest centre and T60_B above the highest. The
    same smooth broadband correction as :class:`GEQAttenuation`, tighter, keeps every line's
    magnitude <= -``margin_db`` dB; it leaves T60 unchanged unless a line attenuates less
    than 0.03 dB per pass in some band (T60 above 2000 m / fs seconds). B + 2 sections per
    line.

    Parameters
    ----------
    delays : array_like
        (N,) delay lengths in samples.
    t60 : array_like
        (B,) T60 per band in seconds (shared by all lines) or (N, B) per line.
    centres : "octave" | "third_octave" | array_like, default "octave"
        Band centres in Hz, below the Nyquist frequency of the evaluations.
    learnable : bool, default True
    t60_range : (float, float), optional
    margin_db : float, default 0.01
    """

    def __init__(self, delays, t60, centres="octave", learnable=True, t60_range=None,
                 margin_db=0.01):
        super().__init__()
        self._bands(delays, t60, centres, learnable, t60_range, margin_db)
        self.designs = BandDesigns(self.centres, design=ProportionalEQ)

    def sos_at(self, fs):
        """(..., N, B + 2, 6) sections at ``fs`` Hz, float64."""
        return proportional_attenuation(self.designs(fs), self.delays.to(torch.float64),
                                        self._t60_per_line(), self.margin_db)
