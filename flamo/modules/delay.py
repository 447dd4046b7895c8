"""Delay lines."""

from __future__ import annotations

import torch

from ..functional.delays import delay_response
from ..functional.mappings import Interval
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
        Raw parameter -> lengths in samples. Default: the identity for fixed lengths (so
        integer lengths stay exact); for learnable ones
        ``flamo.functional.Interval(0, max_delay)``, so that gradient descent cannot make a
        length negative or longer than ``max_delay`` (learnable lengths went to -46.5
        samples with the identity). Pass ``flamo.functional.identity`` for unbounded
        learnable lengths.
    max_delay : float, optional
        Upper bound of the default learnable mapping, in samples; default twice the
        longest initial length (at least 2). Keep it below the nfft of the grids you
        evaluate on: a longer delay wraps (a :class:`flamo.exceptions.DelayWrapWarning`).
    """

    diagonal = True
    config_fields = {"delays": cf.Tensor(1), "mapping": cf.Mapping(), "learnable": cf.Bool()}

    def __init__(self, delays, learnable=False, mapping=None, max_delay=None):
        super().__init__()
        value = as_real_tensor(delays, "delays", "Delay", ndim=1)
        if (value < 0).any():
            raise ValueError(f"Delay: delays must be >= 0, got min {value.min().item():g}")
        if mapping is None and learnable:
            high = max(2.0, 2 * value.max().item()) if max_delay is None else float(max_delay)
            if not (value <= high).all():
                raise ValueError(f"Delay: learnable delays must lie in [0, max_delay = {high:g}] samples "
                                 f"(the default mapping's interval), got [{value.min().item():g}, "
                                 f"{value.max().item():g}]; pass max_delay, or "
                                 f"mapping=flamo.functional.identity for unbounded lengths")
            mapping = Interval(0.0, high)
        elif max_delay is not None:
            raise ValueError("Delay: max_delay bounds the default mapping of learnable delays; "
                             "it cannot be combined with a mapping or learnable=False")
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
