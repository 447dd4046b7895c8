"""Gain-delay matrices: a gain and a delay on every matrix entry."""

from __future__ import annotations

import torch
from torch import nn

from ..functional.delays import delay_response
from ..functional.mappings import mapping_config
from ..response import Response
from ..timedomain import realization as td
from . import config_fields as cf
from .._common import as_real_tensor
from .base import DSPModule

__all__ = ["DelayMatrix"]


class DelayMatrix(DSPModule):
    """Full (out, in) module with entries H_ij(z) = G_ij z^-m_ij.

    The "delay feedback matrix" of Schlecht & Habets ("Dense reverberation with delay
    feedback matrices", WASPAA 2019; "Scattering in feedback delay networks", IEEE/ACM
    TASLP 2020): used as an FDN feedback matrix it raises the echo density at no extra cost.

    Parameters
    ----------
    delays : array_like
        (out, in) delays in samples, >= 0, integer or fractional (exact z^-m, as
        :class:`flamo.Delay`).
    gains : array_like, optional
        (out, in) linear gains; default all ones.
    learnable_delays : bool, default False
    learnable_gains : bool, default True
    delay_mapping, gain_mapping : callable, optional
        Raw parameters -> delays in samples / linear gains (default identity).
    """

    config_fields = {"delays": cf.Tensor(2), "gains": cf.Tensor(2, nullable=True),
                     "learnable_delays": cf.Bool(), "learnable_gains": cf.Bool(),
                     "delay_mapping": cf.Mapping(), "gain_mapping": cf.Mapping()}

    def __init__(self, delays, gains=None, learnable_delays=False, learnable_gains=True,
                 delay_mapping=None, gain_mapping=None):
        super().__init__()
        m = as_real_tensor(delays, "delays", "DelayMatrix", ndim=2)
        if (m < 0).any():
            raise ValueError(f"DelayMatrix: delays must be >= 0, got min {m.min().item():g}")
        g = torch.ones_like(m) if gains is None else as_real_tensor(gains, "gains", "DelayMatrix", ndim=2)
        if g.shape != m.shape:
            raise ValueError(f"DelayMatrix: gains must have the shape of delays {tuple(m.shape)}, "
                             f"got {tuple(g.shape)}")
        self.delay_mapping, self.gain_mapping = delay_mapping, gain_mapping
        self._init_parameter("raw_delays", m, delay_mapping, learnable_delays)
        self._init_parameter("raw_gains", g, gain_mapping, learnable_gains)

    @property
    def shape(self):
        return tuple(self.raw_delays.shape[-2:])

    @property
    def delays(self) -> torch.Tensor:
        """Mapped delays in samples, (out, in)."""
        return self._mapped("raw_delays", self.delay_mapping)

    @property
    def gains(self) -> torch.Tensor:
        """Mapped linear gains, (out, in)."""
        return self._mapped("raw_gains", self.gain_mapping)

    def structured_response(self, points):
        m = self.delays
        out, inp = m.shape[-2:]
        z = delay_response(m.flatten(-2), points).unflatten(-1, (out, inp))  # (..., M, out, in)
        return Response(self.gains.unsqueeze(-3).to(points.complex_dtype) * z, False)

    def realize(self, fs=None):
        """Integer delays and gains per entry, :class:`~flamo.timedomain.realization.DelayGains`."""
        return td.DelayGains(td.integer_delays(self.delays, "DelayMatrix"), self.gains)

    def config(self):
        """{"delays": in samples, "gains": linear gains, mappings, learnability}."""
        for mapping in (self.delay_mapping, self.gain_mapping):
            if mapping is not None and not hasattr(mapping, "inverse"):
                raise ValueError(f"DelayMatrix.config: mapping {mapping!r} has no inverse, so the "
                                 f"module cannot be rebuilt from its mapped values")
        m, g = self.delays.detach(), self.gains.detach()
        return {"type": "DelayMatrix", "dtype": str(m.dtype).removeprefix("torch."),
                "delays": m.cpu().tolist(), "gains": g.cpu().tolist(),
                "learnable_delays": isinstance(self.raw_delays, nn.Parameter),
                "learnable_gains": isinstance(self.raw_gains, nn.Parameter),
                "delay_mapping": mapping_config(self.delay_mapping),
                "gain_mapping": mapping_config(self.gain_mapping)}
