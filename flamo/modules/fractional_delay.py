"""Fractional delay lines realizable in the time domain: integer delay + interpolation filter."""

from __future__ import annotations

import torch

from ..functional.delays import delay_response
from ..functional.fir import allpass_response, fir_response, lagrange_taps, thiran_coefficients
from ..response import Response
from ..timedomain import realization as td
from . import config_fields as cf
from .._common import as_real_tensor
from .base import DSPModule

__all__ = ["FractionalDelay"]


class FractionalDelay(DSPModule):
    """Parallel fractional delays z^-s F(z; D), a diagonal N x N module.

    Each length m (samples) is split into an integer delay s = m - D (a plain delay line)
    and a fractional part D realized by a short filter F whose coefficients are
    polynomials/rational functions of D, so a time-domain implementation (an integer
    delay line plus N + 1 taps) has exactly this transfer function, and the gradient with
    respect to m flows through the coefficients (s carries none).

    Parameters
    ----------
    delays : array_like
        (N,) delay lengths in samples, >= 0 (>= order - 0.5 for ``kind="thiran"``).
    order : int, default 3
        Order of the interpolation filter (>= 1).
    kind : {"lagrange", "thiran"}
        - ``lagrange``: maximally flat FIR interpolator (:func:`flamo.functional.lagrange_taps`)
          with D = m - s in [(order - 1) // 2, (order - 1) // 2 + 1), centred where its error
          is smallest. The response is continuous in m and exact (z^-m) at integer m; its
          gradient is smooth inside each unit interval, with a kink at integer m (the
          one-sided derivatives differ where the split s changes). The magnitude is < 1 at
          high frequencies for fractional D (lowpass error, worst at D + 1/2).
        - ``thiran``: maximally flat group delay allpass
          (:func:`flamo.functional.thiran_coefficients`), D in [order - 0.5, order + 0.5),
          so |F| = 1 at every frequency on the unit circle (a loop built with it stays
          lossless) and the allpass is stable (D > order - 1). The response jumps slightly
          at m = s + order + 1/2, where the split changes, as the two neighbouring designs
          differ at high frequencies.
    learnable : bool, default True
        Make the lengths an ``nn.Parameter``.
    mapping : callable, optional
        Raw parameter -> lengths in samples (default identity).

    Notes
    -----
    Compare :class:`flamo.Delay` (the exact, band-unlimited z^-m): its gradient is
    d z^-m / dm = (log gamma - 1j omega) z^-m, of magnitude up to pi per sample at Nyquist.
    Here the gradient equals that of z^-m at low frequencies and departs from it near
    Nyquist with the interpolator's error (Laakso et al., "Splitting the unit delay", IEEE
    SPM 1996): a Thiran allpass has its phase pinned to -(s + N) pi at Nyquist, so there its
    gradient tends to 0; a Lagrange filter's gradient stays of order 1 there.
    """

    diagonal = True
    KINDS = ("lagrange", "thiran")
    #: Highest order a config may ask for (its cost grows with the order, not with the data).
    MAX_CONFIG_ORDER = 256
    config_fields = {"delays": cf.Tensor(1), "order": cf.Int(1, MAX_CONFIG_ORDER), "kind": cf.Choice(KINDS),
                     "mapping": cf.Mapping(), "learnable": cf.Bool()}

    def __init__(self, delays, order=3, kind="lagrange", learnable=True, mapping=None):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"FractionalDelay: kind must be one of {self.KINDS}, got {kind!r}")
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise ValueError(f"FractionalDelay: order must be an int >= 1, got {order!r}")
        value = as_real_tensor(delays, "delays", "FractionalDelay", ndim=1)
        low = order - 0.5 if kind == "thiran" else 0.0
        if (value < low).any():
            raise ValueError(f"FractionalDelay: delays must be >= {low:g} for kind={kind!r}, "
                             f"order={order}, got min {value.min().item():g}")
        self.order, self.kind, self.mapping = order, kind, mapping
        self._init_parameter("raw", value, mapping, learnable)

    @property
    def shape(self):
        n = self.raw.shape[-1]
        return (n, n)

    @property
    def delays(self) -> torch.Tensor:
        """Mapped delay lengths in samples, (N,)."""
        return self._mapped("raw", self.mapping)

    def split(self):
        """(s, D): integer delays (no gradient) and the filter's fractional delays, (N,) each."""
        m = self.delays
        with torch.no_grad():
            if self.kind == "lagrange":
                s = torch.clamp(torch.floor(m) - (self.order - 1) // 2, min=0)
            else:
                s = torch.clamp(torch.floor(m - self.order + 0.5), min=0)
        return s, m - s

    def filter_coefficients(self):
        """Lagrange taps or Thiran denominators, (N, order + 1)."""
        _, d = self.split()
        return lagrange_taps(d, self.order) if self.kind == "lagrange" else thiran_coefficients(d, self.order)

    def _checked_coefficients(self):
        _, d = self.split()
        if self.kind == "thiran" and (d <= self.order - 1).any():
            raise ValueError(f"FractionalDelay: thiran allpass of order {self.order} is unstable for "
                             f"delays <= {self.order - 1}; got min {self.delays.min().item():g}")
        return self.filter_coefficients()

    def realize(self, fs=None):
        """The integer delay lines, then the Lagrange FIR or the Thiran allpass
        (z^-N A(z^-1) / A(z)) per line."""
        coeffs = self._checked_coefficients()
        s = td.Delays(self.split()[0].detach().round().to(torch.int64).cpu())
        frac = (td.FIRBank(coeffs, diagonal=True) if self.kind == "lagrange"
                else td.RationalBank(coeffs.flip(-1), coeffs))
        return td.Chain([s, frac])

    def structured_response(self, points):
        s, d = self.split()
        coeffs = self._checked_coefficients()
        frac = (fir_response(coeffs, points) if self.kind == "lagrange"
                else allpass_response(coeffs, points))  # (..., M, N)
        return Response(delay_response(s, points) * frac, True)

    def config(self):
        """{"delays": lengths in samples, "order", "kind", "mapping", "learnable"}."""
        return {**self._value_config("delays", self.delays, self.mapping),
                "order": self.order, "kind": self.kind}

    def extra_repr(self):
        return super().extra_repr() + f", kind={self.kind!r}, order={self.order}"
