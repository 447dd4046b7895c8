"""The system matrix of an allpass FDN."""

from __future__ import annotations

import torch
from torch import nn

from ..functional.mappings import Interval
from ..functional.matrices import skew_expm
from ..response import Response
from ..timedomain import realization as td
from .._common import as_real_tensor, seeded_generator
from . import config_fields as cf
from .base import DSPModule

__all__ = ["AllpassFDNMatrix"]

#: G's entries stay strictly inside (-1, 1): mapped from raw values by Interval(-1, 1).
_GAINS = Interval(-1.0, 1.0)


class AllpassFDNMatrix(DSPModule):
    """System matrix S = [[-Q G, Q], [I - G^2, G]] (2n x 2n) of an n-channel allpass FDN.

    With Q orthogonal and G = diag(g), |g_i| < 1, the FDN whose direct path, output gains,
    input gains and feedback matrix are the blocks of S,

        H(z) = -Q G + Q D(z) (I - G D(z))^-1 (I - G^2),    D(z) = diag(z^-m_i),

    is allpass (paraunitary: H(e^jw)^H H(e^jw) = I at every frequency) for any delays m:
    it is Q times n Schroeder allpass sections (z^-m_i - g_i) / (1 - g_i z^-m_i), since S is
    diagonally similar to an orthogonal matrix (Schlecht, "Allpass feedback delay networks",
    IEEE TSP 69, 2021). :func:`flamo.reverb.allpass_fdn` builds that FDN around this module.

    Q and G are learnable through bounded mappings, so S keeps this form for any raw value:
    Q = base expm(W - W^T) (as :class:`flamo.Matrix` kind "orthogonal") and
    g = Interval(-1, 1)(raw).

    Parameters
    ----------
    n : int
        Number of channels (S is 2n x 2n).
    orthogonal : array_like, optional
        (n, n) initial orthogonal Q (becomes the base, W = 0). Default: random from ``seed``.
    gains : array_like, optional
        (n,) initial g, each in (-1, 1). Default: uniform in (-0.8, 0.8) from ``seed``.
    seed : int, optional
    learnable : bool, default True
    """

    config_fields = {"n": cf.Int(1), "orthogonal": cf.Tensor(2), "gains": cf.Tensor(1),
                     "learnable": cf.Bool()}

    def __init__(self, n, orthogonal=None, gains=None, seed=None, learnable=True):
        super().__init__()
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"AllpassFDNMatrix: n must be a positive int, got {n!r}")
        self.n = n
        gen = seeded_generator(seed)
        if orthogonal is None:
            base, w = torch.eye(n), torch.randn(n, n, generator=gen)
        else:
            base = as_real_tensor(orthogonal, "orthogonal", "AllpassFDNMatrix", ndim=2)
            if base.shape != (n, n):
                raise ValueError(f"AllpassFDNMatrix: orthogonal must have shape ({n}, {n}), got "
                                 f"{tuple(base.shape)}")
            err = (base @ base.T - torch.eye(n, dtype=base.dtype)).abs().max().item()
            if err > 1e-5:
                raise ValueError(f"AllpassFDNMatrix: orthogonal must be orthogonal, got max "
                                 f"|Q Q^T - I| = {err:.3g}")
            w = torch.zeros(n, n, dtype=base.dtype)
        if gains is None:
            g = (torch.rand(n, generator=gen) * 1.6 - 0.8).to(base.dtype)
        else:
            g = as_real_tensor(gains, "gains", "AllpassFDNMatrix", ndim=1)
            if g.shape != (n,) or not ((g > -1) & (g < 1)).all():
                raise ValueError(f"AllpassFDNMatrix: gains must be ({n},) values in (-1, 1), got "
                                 f"shape {tuple(g.shape)}, values {g.tolist()}")
        self.register_buffer("base", base.detach().clone())
        self._init_parameter("raw", w, None, learnable)
        self._init_parameter("raw_gains", g, _GAINS, learnable)

    @classmethod
    def from_fields(cls, n, orthogonal, gains, learnable=True):
        """A config holds Q and g: no random init from ``n`` alone."""
        return cls(n, orthogonal=orthogonal, gains=gains, learnable=learnable)

    @property
    def shape(self):
        return (2 * self.n, 2 * self.n)

    @property
    def orthogonal(self) -> torch.Tensor:
        """Q, (n, n) orthogonal."""
        return self.base @ skew_expm(self.raw)

    @property
    def gains(self) -> torch.Tensor:
        """g, (n,), every entry in (-1, 1)."""
        return self._mapped("raw_gains", _GAINS)

    @property
    def matrix(self) -> torch.Tensor:
        """S = [[-Q G, Q], [I - G^2, G]], (..., 2n, 2n)."""
        q, g = self.orthogonal, self.gains
        blocks = torch.broadcast_tensors(-q * g.unsqueeze(-2), q,  # Q G scales Q's columns
                                         torch.diag_embed(1 - g * g), torch.diag_embed(g))
        return torch.cat([torch.cat(blocks[:2], -1), torch.cat(blocks[2:], -1)], -2)

    def structured_response(self, points):
        return Response(self.matrix.to(points.complex_dtype).unsqueeze(-3), False)

    def realize(self, fs=None):
        """S as a static :class:`~flamo.timedomain.realization.MatrixGain`."""
        return td.MatrixGain(self.matrix)

    def config(self):
        """{"n", "orthogonal": the current Q, "gains": g, "learnable"}."""
        return {"type": "AllpassFDNMatrix", "n": self.n,
                "dtype": str(self.base.dtype).removeprefix("torch."),
                "orthogonal": self.orthogonal.detach().cpu().tolist(),
                "gains": self.gains.detach().cpu().tolist(),
                "learnable": isinstance(self.raw, nn.Parameter)}

    def extra_repr(self):
        return f"n={self.n}"
