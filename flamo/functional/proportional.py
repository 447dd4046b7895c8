"""Proportional parametric EQ: a band-gain cascade of proportional shelves and peaks.

Jot's proportional filters (J.-M. Jot, "Proportional parametric equalizers: application to
digital reverberation and environmental audio processing", 139th AES Convention, 2015; the
same sections in V. Valimaki, J. D. Reiss, "All about audio equalization", Applied
Sciences 6(5), 2016) have a dB response that scales with the dB gain: each section reaches
half its dB gain at its edges whatever the gain, and the gains G and 1/G give reciprocal
responses. A cascade of them therefore responds, in dB, almost linearly to its section
gains, and a response made of per-band gains that all scale with one factor (the
per-line attenuation of a delay line of m samples, -60 m / (fs T60_b) dB) is realized by
section gains that scale with the same factor.

The cascade for B bands with centres f_b (Hz) is

- a broadband gain g_0, the mean of the band gains;
- a first-order proportional low shelf (:func:`flamo.functional.first_order_lowshelf`) at
  the lower edge of band 1 and a high shelf (:func:`flamo.functional.first_order_highshelf`)
  at the upper edge of band B, which set the response at DC and at Nyquist to the gains of
  the outer bands;
- one proportional peak (:func:`flamo.functional.proportional_peak`) per band at f_b,
  bandwidth from its lower to its upper edge (the geometric means between neighbouring
  centres; the outer edges mirror the inner ones, and the top edge stays below Nyquist).

Section gains (B + 2: low shelf, B peaks, high shelf) are solved so that the dB response at
DC, at the B centres and at Nyquist equals the band gains (B + 2 equations): first the
linear system of the interaction matrix at 1 dB (the proportional approximation, whose
solution is linear in the band gains), then ``refinements`` secant steps in which each
section's column is its own dB response at its current gain divided by that gain (the
iteration of Valimaki & Liski's accurate GEQ, square here). Every step is a closed-form
solve, so the section gains are differentiable functions of the band gains.

Measured accuracy (tests/test_proportional_eq.py, float64, octave and third-octave bands,
44.1 and 48 kHz, 4 refinements, 50 random band-gain vectors uniform over a span): the dB
error at the centres, DC and Nyquist is below 1e-7 dB for spans of 10 dB and below 3e-3 dB
for spans of 30 dB; on smooth band-gain curves (a 9 dB ramp over the octaves) the response
between the centres stays inside the range of the band gains to 0.01 dB.
"""

from __future__ import annotations

import math

import torch

from .biquads import first_order_highshelf, first_order_lowshelf, proportional_peak
from .geq import unit_circle_db

__all__ = ["ProportionalEQ"]


class ProportionalEQ:
    """Precomputed constants of the proportional band-gain cascade for one band layout and
    sample rate (see the module docstring).

    Parameters
    ----------
    centres : sequence of float
        (B,) band centres in Hz, B >= 2, strictly increasing inside (0, fs/2).
    fs : float
        Sample rate in Hz, > 0.
    refinements : int, default 4
        Secant steps after the linear solve, >= 0.
    """

    def __init__(self, centres, fs, refinements: int = 4):
        if not (isinstance(fs, (int, float)) and math.isfinite(fs) and fs > 0):
            raise ValueError(f"ProportionalEQ: fs must be a finite number > 0 Hz, got {fs!r}")
        f = torch.as_tensor(centres, dtype=torch.float64)
        if f.ndim != 1 or f.numel() < 2:
            raise ValueError(f"ProportionalEQ: centres must be a 1-D list of >= 2 frequencies, "
                             f"got shape {tuple(f.shape)}")
        if not torch.isfinite(f).all() or (f <= 0).any() or (f >= fs / 2).any() or (f.diff() <= 0).any():
            raise ValueError(f"ProportionalEQ: centres must increase strictly inside (0, fs/2 = "
                             f"{fs / 2:g}) Hz, got {f.tolist()}")
        if not (isinstance(refinements, int) and refinements >= 0):
            raise ValueError(f"ProportionalEQ: refinements must be an int >= 0, got {refinements!r}")
        self.fs, self.refinements, self.centres = float(fs), refinements, f
        inner = torch.sqrt(f[1:] * f[:-1])
        lower = torch.cat([f[:1] ** 2 / inner[:1], inner])
        upper = torch.cat([inner, f[-1:] ** 2 / inner[-1:]])
        upper[-1] = torch.minimum(upper[-1], torch.sqrt(f[-1] * fs / 2))  # below Nyquist
        #: (B,) peak bandwidths in Hz; shelf crossovers in Hz
        self.bandwidths = upper - lower
        self.low_crossover, self.high_crossover = lower[0], upper[-1]
        #: (B + 2,) rad/sample: DC, the centres, Nyquist
        self.points = torch.cat([torch.zeros(1, dtype=torch.float64), 2 * math.pi * f / fs,
                                 torch.full((1,), math.pi, dtype=torch.float64)])
        one_db = torch.ones(self.bands + 2, dtype=torch.float64)
        self.linear_solve = torch.linalg.inv(self._interaction(one_db))  # (B + 2, B + 2)

    @property
    def bands(self) -> int:
        return self.centres.numel()

    def band_sections(self, gains_db):
        """(..., B + 2, 6): low shelf, B peaks, high shelf with section gains (..., B + 2) dB."""
        like = dict(dtype=gains_db.dtype, device=gains_db.device)
        low = first_order_lowshelf(self.low_crossover.to(**like), gains_db[..., 0], self.fs)
        peaks = proportional_peak(self.centres.to(**like), self.bandwidths.to(**like),
                                  gains_db[..., 1:-1], self.fs)
        high = first_order_highshelf(self.high_crossover.to(**like), gains_db[..., -1], self.fs)
        return torch.cat([low.unsqueeze(-2), peaks, high.unsqueeze(-2)], dim=-2)

    def _interaction(self, gains_db):
        """(..., B + 2 points, B + 2 sections): each section's dB response at the design
        points divided by its gain (gains of magnitude below 1e-3 dB taken as 1e-3 dB: the
        ratio's limit at 0 dB is the same to 1e-6 relative)."""
        g = torch.where(gains_db.abs() < 1e-3, torch.full_like(gains_db, 1e-3), gains_db)
        sections = self.band_sections(g).unsqueeze(-2)  # (..., B + 2, 1, 6): each alone
        return unit_circle_db(sections, self.points.to(g.device)) / g.unsqueeze(-2)

    def filter_gains(self, band_db):
        """(broadband gain (...,), section gains (..., B + 2)) in dB for band gains (..., B)."""
        if band_db.shape[-1] != self.bands:
            raise ValueError(f"ProportionalEQ: expected {self.bands} band gains (last dim), got "
                             f"shape {tuple(band_db.shape)}")
        g0 = band_db.mean(-1, keepdim=True)
        target = torch.cat([band_db[..., :1], band_db, band_db[..., -1:]], dim=-1) - g0
        gains = target @ self.linear_solve.to(band_db).T
        for _ in range(self.refinements):
            gains = torch.linalg.solve(self._interaction(gains), target.unsqueeze(-1)).squeeze(-1)
        return g0.squeeze(-1), gains

    def sections(self, band_db):
        """Cascade (..., B + 2, 6) realizing band gains (..., B) dB; the broadband gain is
        folded into the numerator of the first section."""
        g0, gains = self.filter_gains(band_db)
        sos = self.band_sections(gains)
        scale = torch.pow(10.0, g0 / 20)[..., None, None]
        first = torch.cat([sos[..., :1, :3] * scale, sos[..., :1, 3:]], dim=-1)
        return torch.cat([first, sos[..., 1:, :]], dim=-2)

    def response_db(self, band_db, omega):
        """dB magnitude of the designed cascade at omega (K,) rad/sample -> (..., K)."""
        return unit_circle_db(self.sections(band_db).unsqueeze(-3), omega)[..., 0]
