"""Delay lines."""

from __future__ import annotations

import torch

from ..functional.delays import delay_response
from ..response import Response
from ..timedomain import realization as td
from . import config_fields as cf
from .._common import as_real_tensor, seeded_generator
from .base import DSPModule

__all__ = ["Delay"]


class Delay(DSPModule):
    """Parallel delay lines: the diagonal N x N module diag(z^-m_1, ..., z^-m_N).

    Parameters
    ----------
    delays : array_like
        (N,) delay lengths in samples, >= 0; integer or fractional. Integer lengths are
        evaluated with exact phases on any grid (see
        :func:`flamo.functional.delay_response`).
    learnable : bool, default False
        Make the lengths an ``nn.Parameter``. The gradient with respect to a length m is
        that of the exact fractional delay z^-m, d/dm z^-m = (log gamma - 1j omega) z^-m:
        it is smooth, but a loss on a long frequency grid oscillates in m with period
        ~1 sample, so expect many local minima (see the loss-surface tools). Its magnitude
        grows linearly with frequency, to ~pi per sample at Nyquist, because z^-m is a
        band-unlimited phase ramp that no finite filter realizes for fractional m; for a
        delay that a time-domain implementation reproduces exactly, use
        :class:`flamo.FractionalDelay` (integer delay + Lagrange or Thiran filter).
    mapping : callable, optional
        Raw parameter -> lengths in samples (default identity, so integer lengths stay
        exact).
    """

    diagonal = True
    config_fields = {"delays": cf.Tensor(1), "mapping": cf.Mapping(), "learnable": cf.Bool()}

    def __init__(self, delays, learnable=False, mapping=None):
        super().__init__()
        value = as_real_tensor(delays, "delays", "Delay", ndim=1)
        if (value < 0).any():
            raise ValueError(f"Delay: delays must be >= 0, got min {value.min().item():g}")
        self.mapping = mapping
        self._init_parameter("raw", value, mapping, learnable)

    @classmethod
    def random(cls, n, low, high, seed=None, **kwargs) -> "Delay":
        """N integer lengths drawn uniformly from [low, high) samples."""
        if not 0 <= low < high:
            raise ValueError(f"Delay.random: need 0 <= low < high, got low={low}, high={high}")
        values = torch.randint(int(low), int(high), (n,), generator=seeded_generator(seed))
        return cls(values.to(torch.get_default_dtype()), **kwargs)

    @property
    def shape(self):
        n = self.raw.shape[-1]
        return (n, n)

    @property
    def delays(self) -> torch.Tensor:
        """Mapped delay lengths in samples, (N,)."""
        return self._mapped("raw", self.mapping)

    def structured_response(self, points):
        return Response(delay_response(self.delays, points), True)

    def realize(self, fs=None):
        """Integer delay lines (ValueError for fractional lengths: use FractionalDelay)."""
        return td.Delays(td.integer_delays(self.delays, "Delay"))

    def config(self):
        """{"delays": lengths in samples, "mapping", "learnable"}."""
        return self._value_config("delays", self.delays, self.mapping)
