"""Velvet-noise modules: sparse velvet filters and the lossless velvet feedback matrix."""

from __future__ import annotations

import math

import torch

from ..functional.fir import fir_response
from ..functional.matrices import hadamard
from ..functional.velvet import velvet_pulses
from ..response import Response
from ..timedomain import realization as td
from .._common import as_real_tensor, seeded_generator
from . import config_fields as cf
from .base import DSPModule
from .paraunitary import Paraunitary

__all__ = ["VelvetNoiseFilter", "VelvetNoiseMatrix"]


class VelvetNoiseFilter(DSPModule):
    """Velvet-noise filters: one sparse FIR filter h[n] = sum_p g_p delta[n - k_p] per channel.

    A diagonal N x N module whose filters are velvet-noise sequences (see
    :func:`flamo.functional.velvet_pulses`): P pulses per channel at fixed positions k_p
    (samples) with gains g_p (+-1 for plain velvet noise; learnable, as in the optimized
    velvet-noise decorrelators of Schlecht, Alary, Valimaki & Habets, DAFx 2018). Only the
    pulses are parameters: the zeros between them stay zero while learning. Build one from a
    density with :meth:`random`.

    Parameters
    ----------
    positions : array_like
        (N, P) pulse positions in samples, integers >= 0.
    gains : array_like, optional
        (N, P) pulse gains (linear); default ones.
    learnable : bool, default True
        Store the gains as an ``nn.Parameter`` (the positions are a fixed buffer).

    Notes
    -----
    The response is that of the FIR filter with the pulses scattered into taps of length
    max(k) + 1 (:func:`flamo.functional.fir_response`: one FFT on a grid, folded modulo
    nfft there when longer).
    """

    diagonal = True
    config_fields = {"positions": cf.Tensor(2), "gains": cf.Tensor(2), "learnable": cf.Bool()}

    def __init__(self, positions, gains=None, learnable=True):
        super().__init__()
        k = as_real_tensor(positions, "positions", "VelvetNoiseFilter", ndim=2, dtype=torch.float64)
        if k.numel() == 0 or (k != torch.round(k)).any() or (k < 0).any():
            raise ValueError(f"VelvetNoiseFilter: positions must be a non-empty (N, P) array of "
                             f"integers >= 0 samples, got shape {tuple(k.shape)}"
                             + (f", min {k.min().item():g}" if k.numel() else ""))
        value = torch.ones(k.shape) if gains is None else \
            as_real_tensor(gains, "gains", "VelvetNoiseFilter", ndim=2)
        if value.shape != k.shape:
            raise ValueError(f"VelvetNoiseFilter: gains must have the shape of positions "
                             f"{tuple(k.shape)}, got {tuple(value.shape)}")
        self.register_buffer("positions", k.to(torch.int64))
        self._init_parameter("raw", value, None, learnable)

    @classmethod
    def random(cls, channels, duration, density, fs, seed=None, pulse_range=1.0,
               learnable=True) -> "VelvetNoiseFilter":
        """Velvet-noise filters of ``density`` pulses per second, +-1 gains.

        Parameters
        ----------
        channels : int
            N, one independent sequence per channel.
        duration : float
            Filter length in seconds (round(duration * fs) samples).
        density : float
            Pulses per second.
        fs : float
            Sample rate in Hz at which the positions are drawn (the module then works in
            samples, at any evaluation).
        seed : int, optional
        pulse_range : float, default 1.0
            See :func:`flamo.functional.velvet_pulses`.
        learnable : bool, default True
        """
        for name, value in (("duration", duration), ("fs", fs)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"VelvetNoiseFilter.random: {name} must be a finite number > 0, "
                                 f"got {value!r}")
        length = max(1, int(round(duration * fs)))
        positions, signs = velvet_pulses(length, density, fs, channels=channels, seed=seed,
                                         pulse_range=pulse_range)
        return cls(positions.to(torch.float64), signs.to(torch.get_default_dtype()),
                   learnable=learnable)

    @property
    def shape(self):
        n = self.positions.shape[0]
        return (n, n)

    @property
    def gains(self) -> torch.Tensor:
        """(N, P) pulse gains (leading batch dims when batched)."""
        return self.raw

    @property
    def taps(self) -> torch.Tensor:
        """(..., N, L) dense taps, L = max position + 1: the pulses scattered into zeros."""
        gains = self.gains
        length = int(self.positions.max()) + 1
        index = self.positions.expand(gains.shape)
        return gains.new_zeros(*gains.shape[:-1], length).scatter(-1, index, gains)

    def structured_response(self, points):
        return Response(fir_response(self.taps, points), True)

    def realize(self, fs=None):
        """The dense taps as a diagonal :class:`~flamo.timedomain.realization.FIRBank`."""
        return td.FIRBank(self.taps, diagonal=True)

    def config(self):
        """{"positions": samples, "gains": linear, "learnable"}."""
        return {"type": "VelvetNoiseFilter", "dtype": str(self.raw.dtype).removeprefix("torch."),
                "positions": self.positions.cpu().tolist(), "gains": self.gains.detach().cpu().tolist(),
                "learnable": isinstance(self.raw, torch.nn.Parameter)}

    def extra_repr(self):
        return super().extra_repr() + f", pulses={self.positions.shape[1]}"


def _stage_delays(n, stages, spread, seed=None) -> torch.Tensor:
    """Delays of a velvet feedback matrix: (stages + 1, n) float64 samples, row 0 zeros.

    In each stage k = 1..K, channel i's delay is drawn at a random integer position inside
    its own slot [s_i, s_i + 1) * spread / n, the slots s a random permutation of the
    channels: one pulse per slot, as in velvet noise (Schlecht & Habets, IEEE/ACM TASLP 2020).
    """
    if isinstance(n, bool) or not isinstance(n, int) or isinstance(stages, bool) \
            or not isinstance(stages, int) or n < 1 or stages < 1 \
            or not (isinstance(spread, (int, float)) and math.isfinite(spread) and spread > 0):
        raise ValueError(f"VelvetNoiseMatrix: need ints n >= 1, stages >= 1 and a number spread > 0 "
                         f"samples, got n={n!r}, stages={stages!r}, spread={spread!r}")
    gen = seeded_generator(seed)
    jitter = torch.rand(stages, n, generator=gen, dtype=torch.float64)
    order = torch.argsort(torch.rand(stages, n, generator=gen), dim=-1)
    m = torch.floor((order + jitter) * (spread / n))
    return torch.cat([torch.zeros(1, n, dtype=torch.float64), m])


class VelvetNoiseMatrix(Paraunitary):
    """Lossless velvet feedback matrix: a paraunitary n x n filter matrix with sparse entries.

    The velvet feedback matrix of Schlecht & Habets ("Scattering in feedback delay networks",
    IEEE/ACM TASLP 28, 2020): A(z) = D_K(z) U_K ... D_1(z) U_1 with velvet-like stage delays
    D_k (in each stage, channel i's delay is a random integer inside its own slot of
    spread / n samples, the slots a random permutation of the channels) and orthogonal U_k. With Hadamard U_k (the default) every entry of A(z) is a sparse sequence of
    n^(K - 1) pulses of magnitude n^(-K / 2) with random signs (pulses add where delays
    coincide): velvet noise, at most ``stages * spread`` samples long. A(z) is paraunitary
    for any delays and any orthogonal U_k, so an FDN with it as the feedback matrix is
    lossless; the loop smears every echo over the stage delays (higher echo density).

    This is a :class:`flamo.Paraunitary` built from these delays; its preset holds the delays
    and the current matrices, as a Paraunitary's does.

    Parameters
    ----------
    n : int
        Matrix size.
    stages : int
        Number K of orthogonal matrices (and of velvet delay stages after D_0 = 0).
    spread : float
        Longest stage delay in samples (> 0).
    seed : int, optional
        Seed of the delays (and of random matrices).
    orthogonal : {"hadamard", "random"}, default "hadamard"
        U_k = the n x n Hadamard matrix (n = 1, 2 or a multiple of 4), or random orthogonal
        matrices from ``seed``.
    learnable : bool, default False
        Learn the U_k (they stay orthogonal; see :class:`flamo.Paraunitary`).
    dtype : torch.dtype, default torch.float32
        dtype of the delays and matrices. Build in float64 for reference precision (a
        float32 Hadamard matrix cast to float64 is orthogonal only to float32 rounding).
    """

    def __init__(self, n, stages, spread, seed=None, orthogonal="hadamard", learnable=False,
                 dtype=torch.float32):
        if orthogonal not in ("hadamard", "random"):
            raise ValueError(f"VelvetNoiseMatrix: orthogonal must be 'hadamard' or 'random', got "
                             f"{orthogonal!r}")
        delays = _stage_delays(n, stages, spread, seed)
        matrices = hadamard(n).expand(stages, n, n) if orthogonal == "hadamard" else None
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"VelvetNoiseMatrix: dtype must be torch.float32 or torch.float64, got {dtype}")
        super().__init__(delays.to(dtype), None if matrices is None else matrices.to(dtype),
                         seed=seed, learnable=learnable)

    @classmethod
    def from_fields(cls, delays, matrices, learnable=True):
        """Rebuild from a preset's delays and matrices (the drawn values, not a new draw)."""
        module = cls.__new__(cls)
        Paraunitary.__init__(module, delays, matrices, learnable=learnable)
        return module
