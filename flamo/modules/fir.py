"""Finite impulse response filters with learnable taps."""

from __future__ import annotations

from ..functional.fir import fir_response
from ..response import Response
from ..timedomain import realization as td
from . import config_fields as cf
from .._common import as_real_tensor
from .base import DSPModule

__all__ = ["FIR"]


class FIR(DSPModule):
    """FIR filters H(z) = sum_n h[n] z^-n: 1 x 1, diagonal N x N or full (out, in).

    Parameters
    ----------
    taps : array_like
        The taps h[0..L-1] (dimensionless), last dim L >= 1:

        - (L,): one filter, a 1 x 1 module;
        - (N, L): one filter per channel, a diagonal N x N module;
        - (out, in, L): a filter per matrix entry, a full (out, in) module.
    mapping : callable, optional
        Raw parameter -> taps (default identity).
    learnable : bool, default True
        Store the taps as an ``nn.Parameter`` (else as a buffer).

    Notes
    -----
    On a grid the samples are the DFT of h[n] gamma^n (see
    :func:`flamo.functional.fir_response`), one FFT for all channels. Filters longer than
    nfft are folded modulo nfft first, which is exact at the grid points: their impulse
    response on that grid is time-aliased, as any response longer than nfft is.
    """

    config_fields = {"taps": cf.Tensor((1, 2, 3)), "mapping": cf.Mapping(), "learnable": cf.Bool()}

    def __init__(self, taps, mapping=None, learnable=True):
        super().__init__()
        value = as_real_tensor(taps, "taps", "FIR", ndim=(1, 2, 3))
        if value.shape[-1] < 1 or value.numel() == 0:
            raise ValueError(f"FIR: taps must hold at least one tap per filter, got shape {tuple(value.shape)}")
        self.layout = {1: "single", 2: "diagonal", 3: "full"}[value.ndim]
        self.diagonal = self.layout == "diagonal"
        self.mapping = mapping
        self._init_parameter("raw", value, mapping, learnable)

    @property
    def shape(self):
        if self.layout == "single":
            return (1, 1)
        if self.layout == "diagonal":
            n = self.raw.shape[-2]
            return (n, n)
        return tuple(self.raw.shape[-3:-1])

    @property
    def taps(self):
        """Mapped taps, (L,), (N, L) or (out, in, L)."""
        return self._mapped("raw", self.mapping)

    def structured_response(self, points):
        taps = self.taps
        if self.layout == "diagonal":
            return Response(fir_response(taps, points), True)  # (..., M, N)
        if self.layout == "single":
            return Response(fir_response(taps.unsqueeze(-2), points).unsqueeze(-1), False)
        out, inp = taps.shape[-3:-1]
        h = fir_response(taps.flatten(-3, -2), points)  # (..., M, out * in)
        return Response(h.unflatten(-1, (out, inp)), False)

    def realize(self, fs=None):
        """The taps, :class:`~flamo.timedomain.realization.FIRBank`."""
        taps = self.taps
        if self.layout == "single":
            return td.FIRBank(taps.unsqueeze(0), diagonal=True)
        return td.FIRBank(taps, diagonal=self.layout == "diagonal")

    def config(self):
        """{"taps": taps, "mapping", "learnable"}."""
        return self._value_config("taps", self.taps, self.mapping)

    def extra_repr(self):
        return super().extra_repr() + f", taps={self.raw.shape[-1]}"
