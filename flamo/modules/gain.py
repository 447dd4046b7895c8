"""Frequency-independent modules: gains and mixing matrices."""

from __future__ import annotations

import torch
from torch import nn

from ..functional.loop_solve import IdentityPlusRankOne
from ..functional.matrices import BlockRotation, Circulant, hadamard, householder, skew_expm
from ..response import Response
from ..timedomain import realization as td
from . import config_fields as cf
from .._common import as_real_tensor, seeded_generator
from .base import DSPModule

__all__ = ["Gain", "Matrix"]


class Gain(DSPModule):
    """Static gains: a full (out, in) matrix or, from a vector, a diagonal N x N one.

    Parameters
    ----------
    matrix : array_like
        (out, in) gain matrix, or (N,) gains of a diagonal N x N module (one gain per
        channel). These are the mapped values; the raw parameter is ``mapping.inverse``
        of them when the mapping has an inverse.
    mapping : callable, optional
        Raw parameter -> gains (default identity), e.g. ``Interval(0, 1)`` to keep every
        gain in (0, 1).
    learnable : bool, default True
        Store the gains as an ``nn.Parameter`` (else as a buffer).
    """

    config_fields = {"matrix": cf.Tensor((1, 2)), "mapping": cf.Mapping(), "learnable": cf.Bool()}

    def __init__(self, matrix, mapping=None, learnable=True):
        super().__init__()
        value = as_real_tensor(matrix, "matrix", "Gain", ndim=(1, 2))
        self.diagonal = value.ndim == 1
        self.mapping = mapping
        self._init_parameter("raw", value, mapping, learnable)

    @classmethod
    def random(cls, shape, seed=None, **kwargs) -> "Gain":
        """Gains drawn from N(0, 1 / in): ``shape`` (out, in) or (N,) for a diagonal."""
        shape = tuple(shape)
        values = torch.randn(shape, generator=seeded_generator(seed)) / shape[-1] ** 0.5
        return cls(values, **kwargs)

    @property
    def shape(self):
        n = self.raw.shape[-1]
        return (n, n) if self.diagonal else tuple(self.raw.shape[-2:])

    @property
    def gains(self) -> torch.Tensor:
        """Mapped gains, (N,) or (out, in)."""
        return self._mapped("raw", self.mapping)

    def structured_response(self, points):
        return Response(self.gains.to(points.complex_dtype).unsqueeze(-2 if self.diagonal else -3),
                        self.diagonal)

    def realize(self, fs=None):
        """Static gains: :class:`~flamo.timedomain.realization.Gains` or
        :class:`~flamo.timedomain.realization.MatrixGain`."""
        return td.Gains(self.gains) if self.diagonal else td.MatrixGain(self.gains)

    def config(self):
        """{"matrix": linear gains, "mapping", "learnable"}."""
        return self._value_config("matrix", self.gains, self.mapping)


class Matrix(DSPModule):
    """Square mixing matrix of a chosen family (a feedback matrix, typically).

    Parameters
    ----------
    n : int
        Size of the n x n matrix.
    kind : {"orthogonal", "householder", "hadamard", "circulant", "rotation", "free"}
        - ``orthogonal``: A = base @ expm(W - W^T) with learnable W; stays orthogonal
          whatever W becomes. ``init`` (an orthogonal matrix) becomes ``base`` with W = 0,
          so any orthogonal matrix, det = -1 included, can be the start.
        - ``householder``: ``A = I - 2 u u^T / |u|^2`` with learnable u; ``init`` is u, (n,).
        - ``hadamard``: the fixed orthogonal matrix H / sqrt(n); not learnable.
        - ``circulant``: orthogonal circulant C = F^-1 diag(exp(1j phi)) F with learnable
          phases phi, ((n - 1) // 2,) (see :func:`flamo.functional.circulant`); ``init``
          is phi in radians. Every row is a cyclic shift of the first (a "rotation" of the
          channels), which spreads energy evenly when the phases are spread.
        - ``rotation``: block-diagonal plane rotations R(theta_k) on the channel pairs
          (0, 1), (2, 3), ... with learnable angles theta, (n // 2,) (see
          :func:`flamo.functional.block_rotation`); ``init`` is theta in radians, (n // 2,)
          or one angle for every block. Orthogonal with det = +1 for any angles; it mixes
          channels only within each pair.
        - ``free``: any matrix; ``init`` is the (n, n) matrix itself.
    init : array_like, optional
        Explicit initial value as described for each kind. Default: random from ``seed``.
    seed : int, optional
        Seed of the random initialization.
    mapping : callable, optional
        Overrides the family's mapping from the raw parameter (skew_expm for orthogonal,
        householder for householder, Circulant(n) for circulant, BlockRotation(n) for
        rotation, identity for free).
    learnable : bool, default True
    """

    #: The matrix families ``kind`` accepts.
    KINDS = ("orthogonal", "householder", "hadamard", "circulant", "rotation", "free")
    config_fields = {"n": cf.Int(1), "kind": cf.Choice(KINDS), "init": cf.Tensor((1, 2), nullable=True),
                     "learnable": cf.Bool()}
    #: Largest Hadamard order a config may ask for: its n x n entries are not in the config.
    MAX_CONFIG_HADAMARD = 4096

    def __init__(self, n, kind="orthogonal", init=None, seed=None, mapping=None, learnable=True):
        super().__init__()
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"Matrix: n must be a positive int, got {n!r}")
        if kind not in self.KINDS:
            raise ValueError(f"Matrix: kind must be one of {self.KINDS}, got {kind!r}")
        self.n, self.kind = n, kind
        gen = seeded_generator(seed)
        if kind == "orthogonal":
            self.mapping = skew_expm if mapping is None else mapping
            if init is None:
                base, raw = torch.eye(n), torch.randn(n, n, generator=gen)
            else:
                base = self._check_square(init, "init")
                err = (base @ base.T - torch.eye(n, dtype=base.dtype)).abs().max().item()
                if err > 1e-5:
                    raise ValueError(f"Matrix: init must be orthogonal for kind='orthogonal', "
                                     f"got max |A A^T - I| = {err:.3g}")
                raw = torch.zeros(n, n, dtype=base.dtype)
            self.register_buffer("base", base.detach().clone())
        elif kind == "householder":
            self.mapping = householder if mapping is None else mapping
            if init is None:
                raw = torch.randn(n, generator=gen)
            else:
                raw = as_real_tensor(init, "init", "Matrix", ndim=1)
                if raw.shape != (n,) or not (raw != 0).any():
                    raise ValueError(f"Matrix: init for kind='householder' must be a nonzero "
                                     f"vector of shape ({n},), got shape {tuple(raw.shape)}")
        elif kind == "hadamard":
            if init is not None or mapping is not None:
                raise ValueError("Matrix: kind='hadamard' is fixed and takes no init or mapping")
            self.mapping = None
            # float64 so that .double() keeps exact entries; .float() rounds them as asked.
            raw, learnable = hadamard(n, dtype=torch.float64), False
        elif kind == "circulant":
            self.mapping = Circulant(n) if mapping is None else mapping
            p = (n - 1) // 2
            if init is None:
                raw = torch.rand(p, generator=gen) * (2 * torch.pi) - torch.pi
            else:
                raw = as_real_tensor(init, "init", "Matrix", ndim=1)
                if raw.shape != (p,):
                    raise ValueError(f"Matrix: init for kind='circulant' must hold (n - 1) // 2 "
                                     f"phases, shape ({p},), got shape {tuple(raw.shape)}")
        elif kind == "rotation":
            self.mapping = BlockRotation(n) if mapping is None else mapping
            p = n // 2
            if init is None:
                raw = torch.rand(p, generator=gen) * (2 * torch.pi) - torch.pi
            else:
                raw = as_real_tensor(init, "init", "Matrix", ndim=(0, 1))
                raw = raw.expand(p).clone() if raw.ndim == 0 else raw
                if raw.shape != (p,):
                    raise ValueError(f"Matrix: init for kind='rotation' must hold n // 2 angles, "
                                     f"shape ({p},), or one angle, got shape {tuple(raw.shape)}")
        else:
            self.mapping = mapping
            raw = torch.randn(n, n, generator=gen) / n ** 0.5 if init is None else self._check_square(init, "init")
        self._init_parameter("raw", raw, None, learnable)

    @classmethod
    def from_fields(cls, n, kind="orthogonal", init=None, learnable=True):
        """A config holds the matrix (or u, or the phases): no random n x n init from ``n``
        alone, and a Hadamard order of at most :attr:`MAX_CONFIG_HADAMARD`."""
        if kind == "hadamard" and n > cls.MAX_CONFIG_HADAMARD:
            raise ValueError(f"Matrix: n = {n} is above the largest Hadamard order a config may ask "
                             f"for ({cls.MAX_CONFIG_HADAMARD})")
        if kind != "hadamard" and init is None:
            raise ValueError(f"Matrix: a config of kind {kind!r} must give init (the saved values); "
                             f"a random init is not rebuilt from a config")
        return cls(n, kind=kind, init=init, learnable=learnable)

    def _check_square(self, value, name):
        t = as_real_tensor(value, name, "Matrix", ndim=2)
        if t.shape != (self.n, self.n):
            raise ValueError(f"Matrix: {name} must have shape ({self.n}, {self.n}), got {tuple(t.shape)}")
        return t

    @property
    def shape(self):
        return (self.n, self.n)

    @property
    def matrix(self) -> torch.Tensor:
        """The mapped (n, n) matrix."""
        value = self._mapped("raw", self.mapping)
        return self.base @ value if self.kind == "orthogonal" else value

    def structured_response(self, points):
        matrix = self.matrix.to(points.complex_dtype).unsqueeze(-3)
        if self.kind != "householder" or self.mapping is not householder:
            return Response(matrix, False)
        # I - beta u u^T = I + p q^T, p = -beta u, q = u: the loop solve's Sherman-Morrison path
        u = self.raw
        p = -2 * u / (u * u).sum(-1, keepdim=True)
        factors = (t.to(points.complex_dtype).unsqueeze(-2) for t in (p, u))
        return Response(matrix, False, IdentityPlusRankOne(*factors))

    def realize(self, fs=None):
        """The mapped matrix, :class:`~flamo.timedomain.realization.MatrixGain`."""
        return td.MatrixGain(self.matrix)

    def config(self):
        """{"n", "kind", "init", "learnable"}: the current matrix for orthogonal/free, u for
        householder, the phases in radians for circulant, the angles in radians for rotation
        (an orthogonal module is rebuilt with the current matrix as its base)."""
        defaults = {"orthogonal": skew_expm, "householder": householder, "hadamard": None, "free": None}
        families = {"circulant": Circulant, "rotation": BlockRotation}
        custom = (not isinstance(self.mapping, families[self.kind]) if self.kind in families
                  else self.mapping is not defaults[self.kind])
        if custom:
            raise ValueError(f"Matrix.config: a custom mapping ({self.mapping!r}) cannot be saved")
        init = None if self.kind == "hadamard" else (self.raw if self.kind in ("householder", "circulant", "rotation")
                                                      else self.matrix)
        return {"type": "Matrix", "n": self.n, "kind": self.kind,
                "dtype": str(self.raw.dtype).removeprefix("torch."),
                "init": None if init is None else init.detach().cpu().tolist(),
                "learnable": isinstance(self.raw, nn.Parameter)}

    def extra_repr(self):
        return f"n={self.n}, kind={self.kind!r}"
