"""Octave and third-octave filterbanks as modules: one input, one output per band."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..functional.filterbank import band_edges, band_masks, butterworth_bandpass
from ..functional.geq import octave_bands, third_octave_bands
from ..functional.sos import sos_response
from ..response import Response
from ..timedomain import realization as td
from . import config_fields as cf
from .base import DSPModule

__all__ = ["FilterBank"]


class FilterBank(DSPModule):
    """Fractional-octave filterbank: a (bands, 1) module splitting one signal into bands.

    ``module(x, grid)`` of a (T, 1) signal is (nfft, bands), one band per output channel,
    and the response is (M, bands, 1). The bands are designed for the sample rate of each
    evaluation (the module stores no fs).

    Parameters
    ----------
    centres : {"octave", "third_octave"} or sequence of float, default "octave"
        Band centre frequencies in Hz: the 10 octave centres 31.25 Hz .. 16 kHz or the 28
        third-octave centres 31.25 Hz .. 16 kHz of :func:`flamo.functional.octave_bands` /
        :func:`flamo.functional.third_octave_bands`, or any increasing list.
    fraction : int, optional
        b of 1/b-octave bands, for the band edges f_c 2^(+-1 / (2 b)) of ``kind="butterworth"``;
        default 1 for "octave", 3 for "third_octave" (required with explicit centres).
    kind : {"butterworth", "complementary"}, default "butterworth"
        - ``butterworth``: each band the Butterworth band-pass of prototype order ``order``
          between its edges (:func:`flamo.functional.butterworth_bandpass`): causal IIR
          bands, -3 dB at the edges. Every upper edge must lie below fs / 2 at evaluation
          (the 16 kHz octave needs fs > 45.3 kHz).
        - ``complementary``: the zero-phase masks of :func:`flamo.functional.band_masks`,
          which sum to exactly 1 at every frequency, so summing the bands reconstructs the
          input perfectly (the same bands as :func:`flamo.optim.octave_filterbank`). Being
          zero-phase, their impulse responses are centred on n = 0 and wrap around on a grid;
          they are defined on the unit circle only (a Grid with alias_decay_db = 0, or points
          with |z| = 1), and raise ValueError elsewhere.
    order : int, default 3
        Prototype order of the Butterworth bands (each band has 2 order poles).
    """

    KINDS = ("butterworth", "complementary")
    config_fields = {"centres": cf.Tensor(1), "fraction": cf.Int(1, 48, nullable=True),
                     "kind": cf.Choice(KINDS), "order": cf.Int(1, 16)}

    def __init__(self, centres="octave", fraction=None, kind="butterworth", order=3):
        super().__init__()
        named = {"octave": (octave_bands, 1), "third_octave": (third_octave_bands, 3)}
        if isinstance(centres, str):
            if centres not in named:
                raise ValueError(f"FilterBank: centres must be 'octave', 'third_octave' or a list of "
                                 f"Hz, got {centres!r}")
            table, default_fraction = named[centres]
            centres, fraction = table(), default_fraction if fraction is None else fraction
        values = [float(c) for c in torch.as_tensor(centres, dtype=torch.float64).reshape(-1)]
        if kind not in self.KINDS:
            raise ValueError(f"FilterBank: kind must be one of {self.KINDS}, got {kind!r}")
        if kind == "butterworth" and fraction is None:
            raise ValueError("FilterBank: explicit centres need fraction (1 octave, 3 third octave) "
                             "for the Butterworth band edges")
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise ValueError(f"FilterBank: order must be an int >= 1, got {order!r}")
        self.edges = band_edges(values, fraction or 1)  # checks the centres and fraction
        self.centres, self.fraction, self.kind, self.order = values, fraction, kind, order

    @property
    def shape(self):
        return (len(self.centres), 1)

    def sections(self, fs: float) -> torch.Tensor:
        """(bands, order, 6) float64 Butterworth sections of every band at sample rate fs (Hz)."""
        too_high = [float(f) for f in self.edges[:, 1] if f >= fs / 2]
        if too_high:
            raise ValueError(f"FilterBank: band edges {too_high} Hz lie at or above fs / 2 = "
                             f"{fs / 2:g} Hz; drop the top bands or evaluate at a higher fs")
        return torch.as_tensor(np.stack([butterworth_bandpass(self.order, lo, hi, fs)
                                         for lo, hi in self.edges]))

    def structured_response(self, points):
        fs = points.require_fs("FilterBank")
        if self.kind == "butterworth":
            h = sos_response(self.sections(fs).to(points.device), points)  # (M, bands)
        else:
            z = points.z
            off = float((z.abs().to(torch.float64) - 1).abs().max())
            if off > 1e-6:
                # zero-phase masks have no values off the circle; the grid's gamma^-n
                # compensation would then amplify their wrapped negative-time half
                raise ValueError(f"FilterBank: kind='complementary' bands are zero-phase masks "
                                 f"defined on the unit circle only; evaluate them on a Grid with "
                                 f"alias_decay_db=0 or at points with |z| = 1 (max ||z| - 1| = "
                                 f"{off:.3g})")
            freqs = torch.angle(z).abs().to(torch.float64) * (fs / (2 * math.pi))
            h = band_masks(freqs, self.centres).to(points.complex_dtype)
        return Response(h.unsqueeze(-1), False)

    def realize(self, fs=None):
        """Butterworth bands: the input copied to every band
        (:class:`~flamo.timedomain.realization.MatrixGain` of ones, (bands, 1)), then each
        band's sections designed at ``fs`` Hz (:class:`~flamo.timedomain.realization.SOSBank`).

        Raises
        ------
        NotImplementedError
            For ``kind="complementary"``: zero-phase bands are not causal, so no difference
            equation realizes them.
        """
        if self.kind == "complementary":
            raise NotImplementedError(
                "FilterBank: kind='complementary' bands are zero-phase (non-causal) masks with no "
                "time-domain realization; use kind='butterworth' to render, stream or export")
        sections = self.sections(td.require_fs(fs, "FilterBank"))
        return td.Chain([td.MatrixGain(sections.new_ones(len(self.centres), 1)), td.SOSBank(sections)])

    def config(self):
        """{"centres": Hz, "fraction", "kind", "order"}."""
        return {"type": "FilterBank", "dtype": "float64", "centres": list(self.centres),
                "fraction": self.fraction, "kind": self.kind, "order": self.order}

    def extra_repr(self):
        return super().extra_repr() + f", bands={len(self.centres)}, kind={self.kind!r}"
