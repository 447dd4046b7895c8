"""Paraunitary filter feedback matrices: orthogonal matrices interleaved with delays."""

from __future__ import annotations

import torch
from torch import nn

from ..functional.delays import delay_response
from ..functional.matrices import skew_expm
from ..response import Response
from ..timedomain import realization as td
from . import config_fields as cf
from .._common import as_real_tensor, seeded_generator
from .base import DSPModule

__all__ = ["Paraunitary"]


class Paraunitary(DSPModule):
    """Lossless filter feedback matrix A(z) = D_K(z) U_K ... D_1(z) U_1 D_0(z), full n x n.

    Schlecht & Habets, "Scattering in feedback delay networks", IEEE/ACM TASLP 2020: each
    U_k is orthogonal and each D_k(z) = diag(z^-m_k,1, ..., z^-m_k,n) is a diagonal delay
    matrix. Every factor is paraunitary (A~(z) A(z) = I with A~(z) = A^T(z^-1)), so the
    cascade is too: on the unit circle A(e^jw) is unitary at every frequency, |det| = 1
    and the energy of any input vector is preserved. Used as the feedback matrix of an
    FDN, the loop stays lossless whatever the delays and the learnable U_k, while every
    round trip smears an impulse over the stage delays (higher echo density). With sparse,
    velvet-noise-like delays this is the paper's velvet feedback matrix,
    :class:`flamo.VelvetNoiseMatrix`.

    Parameters
    ----------
    delays : array_like
        (K + 1, n) non-negative delays in samples: row k is D_k (row 0 acts first).
    matrices : array_like, optional
        (K, n, n) orthogonal initial matrices U_1..U_K. Each stays orthogonal while
        learning: U_k = base_k expm(W_k - W_k^T) with learnable W_k, as
        :class:`flamo.Matrix` kind="orthogonal": given matrices become the bases with W = 0;
        by default the bases are I and W is random from ``seed``.
    seed : int, optional
    learnable : bool, default True
        Learn the orthogonal matrices (the delays are fixed buffers).
    """

    config_fields = {"delays": cf.Tensor(2), "matrices": cf.Tensor(3), "learnable": cf.Bool()}

    def __init__(self, delays, matrices=None, seed=None, learnable=True):
        super().__init__()
        m = as_real_tensor(delays, "delays", "Paraunitary", ndim=2)
        if m.shape[0] < 2:
            raise ValueError(f"Paraunitary: delays must have K + 1 >= 2 rows (K >= 1 stages), got shape "
                             f"{tuple(m.shape)}")
        if (m < 0).any():
            raise ValueError(f"Paraunitary: delays must be >= 0, got min {m.min().item():g}")
        stages, n = m.shape[0] - 1, m.shape[1]
        if matrices is None:  # identity base, so .double() keeps the U_k exactly orthogonal
            base = torch.eye(n, dtype=m.dtype).expand(stages, n, n).clone()
            raw = torch.randn(stages, n, n, generator=seeded_generator(seed)).to(m.dtype)
        else:
            base = as_real_tensor(matrices, "matrices", "Paraunitary", ndim=3)
            if base.shape != (stages, n, n):
                raise ValueError(f"Paraunitary: matrices must have shape ({stages}, {n}, {n}) to match "
                                 f"delays {tuple(m.shape)}, got {tuple(base.shape)}")
            eye = torch.eye(n, dtype=base.dtype)
            err = (base @ base.transpose(-1, -2) - eye).abs().max().item()
            if err > 1e-5:
                raise ValueError(f"Paraunitary: matrices must be orthogonal, got max |U U^T - I| = {err:.3g}")
            raw = torch.zeros_like(base)
        self.register_buffer("delays", m.detach().clone())
        self.register_buffer("base", base.detach().clone())
        if learnable:
            self.raw = nn.Parameter(raw)
        else:
            self.register_buffer("raw", raw)

    @classmethod
    def from_fields(cls, delays, matrices, learnable=True):
        """A config holds the matrices: no random (K, n, n) init from the delays alone."""
        return cls(delays, matrices, learnable=learnable)

    @property
    def shape(self):
        n = self.delays.shape[-1]
        return (n, n)

    @property
    def matrices(self) -> torch.Tensor:
        """The orthogonal matrices U_1..U_K, (K, n, n)."""
        return self.base @ skew_expm(self.raw)

    def structured_response(self, points):
        d = delay_response(self.delays, points)  # (K + 1, M, n)
        u = self.matrices.to(points.complex_dtype)  # (..., K, n, n)
        acc = torch.diag_embed(d[0])  # (M, n, n)
        for k in range(u.shape[-3]):  # stages, not channels: rows scale U_k D_{k-1}... by D_k
            acc = d[k + 1].unsqueeze(-1) * (u[..., k, None, :, :] @ acc)
        return Response(acc, False)

    def realize(self, fs=None):
        """D_0, then U_1, D_1, ..., U_K, D_K in series."""
        delays = td.integer_delays(self.delays, "Paraunitary")
        u = self.matrices
        parts = [td.Delays(delays[0])]
        for k in range(u.shape[0]):
            parts += [td.MatrixGain(u[k]), td.Delays(delays[k + 1])]
        return td.Chain(parts)

    def config(self):
        """{"delays": samples, "matrices": the current orthogonal U_k, "learnable"}."""
        return {"type": type(self).__name__, "dtype": str(self.base.dtype).removeprefix("torch."),
                "delays": self.delays.detach().cpu().tolist(),
                "matrices": self.matrices.detach().cpu().tolist(),
                "learnable": isinstance(self.raw, nn.Parameter)}

    def extra_repr(self):
        return super().extra_repr() + f", stages={self.delays.shape[0] - 1}"
