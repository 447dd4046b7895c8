r"""Grouped feedback delay networks (coupled rooms) on the FDN builder.

A grouped FDN (GFDN; Das, Dal Santo, Schlecht et al., "Differentiable grouped feedback delay
networks for coupled rooms" (DiffGFDN), IEEE/ACM TASLP 2025; after Das & Abel's grouped FDN,
ICASSP 2021) splits the N delay lines into G groups, one per coupled room, each with its own
reverberation time, and mixes them with a block feedback matrix

.. math::
    A = \mathrm{blkdiag}(Q_1, \ldots, Q_G)\, \exp(\theta K), \qquad K = W - W^T,

where the Q_g are orthogonal (each room's own mixing), W is zero on and below the diagonal
blocks (so K only couples different groups) with unit spectral norm of K, and the coupling
strength theta (radians) sets how much energy crosses between rooms on each pass. A is
orthogonal for every theta; theta = 0 gives uncoupled rooms (A block diagonal). For two
groups of equal size whose coupling block C is orthogonal, exp(theta K) =
[[cos theta I, sin theta C], [-sin theta C^T, cos theta I]]: a fraction sin^2 theta of the
energy of each pass changes room.

:func:`build_gfdn` builds it with :func:`flamo.reverb.build_fdn` (per-line T60s equal within a
group, the matrix as a learnable orthogonal :class:`flamo.Matrix` starting at A), so the
result has the builder's layout and part names and :func:`flamo.reverb.fdn_structure` reads
it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch

from .._common import as_real_tensor, seeded_generator
from ..modules import Matrix
from .fdn import FDNConfig, build_fdn

__all__ = ["GFDNConfig", "build_gfdn", "coupled_matrix"]


@dataclass
class GFDNConfig:
    """Everything :func:`build_gfdn` needs, as plain values.

    Attributes
    ----------
    group_delays : sequence of sequence of int
        The delay lengths in samples of each group (room), e.g. ``[[601, 701, 809],
        [1031, 1187, 1327]]``; lines are numbered group after group.
    t60 : float or sequence of float
        Reverberation time in seconds of each group (G,), or one shared value: every line of
        group g gets the attenuation 10^(-3 m / (fs T60_g)) (:class:`flamo.HomogeneousAttenuation`).
    coupling : float, default 0.0
        Coupling strength theta in radians, in [0, pi / 2] (see the module docstring).
    coupling_matrix : array_like, optional
        (N, N) explicit W whose blocks off the diagonal couple the groups (only the blocks
        above the diagonal are used); default random from ``seed`` with orthonormal blocks.
    room_matrices : sequence of array_like, optional
        The orthogonal Q_g, (n_g, n_g) each; default random from ``seed``.
    seed : int, optional
        Seed of every random initial value (Q_g, W, and the gains build_fdn draws).
    input_gains, output_gains, n_inputs, n_outputs, direct_gain
        As in :class:`flamo.reverb.FDNConfig` (e.g. gains that feed or read one group only
        place a source or a receiver in that room).
    learnable_matrix, learnable_gains, learnable_direct, learnable_attenuation : bool
        As in :class:`flamo.reverb.FDNConfig`; a learnable matrix stays orthogonal (its
        blocks move freely: the coupling is the initial value).
    dtype : torch.dtype, default torch.float32
    """

    group_delays: Sequence[Sequence[int]] = field(default_factory=lambda: [[601, 701, 809],
                                                                           [1031, 1187, 1327]])
    t60: Any = 1.0
    coupling: float = 0.0
    coupling_matrix: Any = None
    room_matrices: Any = None
    seed: Optional[int] = None
    input_gains: Any = None
    output_gains: Any = None
    n_inputs: int = 1
    n_outputs: int = 1
    direct_gain: Any = None
    learnable_matrix: bool = True
    learnable_gains: bool = True
    learnable_direct: bool = True
    learnable_attenuation: bool = False
    dtype: torch.dtype = torch.float32

    def groups(self) -> list[slice]:
        """The line indices of each group, as slices into the N lines."""
        out, start = [], 0
        for g in self.group_delays:
            out.append(slice(start, start + len(g)))
            start += len(g)
        return out


def _group_sizes(group_delays):
    if isinstance(group_delays, (str, bytes)) or not hasattr(group_delays, "__len__") \
            or len(group_delays) < 1 or any(not hasattr(g, "__len__") or len(g) < 1 for g in group_delays):
        raise ValueError(f"build_gfdn: group_delays must be a non-empty list of non-empty lists of "
                         f"delays (one list per group), got {group_delays!r:.80}")
    return [len(g) for g in group_delays]


def coupled_matrix(room_matrices, coupling: float, coupling_matrix=None, seed=None) -> torch.Tensor:
    """The GFDN feedback matrix A = blkdiag(Q_1 .. Q_G) expm(theta K), float64 (N, N).

    Parameters
    ----------
    room_matrices : sequence of array_like
        Orthogonal Q_g, (n_g, n_g) each.
    coupling : float
        theta in radians, in [0, pi / 2].
    coupling_matrix : array_like, optional
        (N, N) W; its blocks above the block diagonal are used. Default: each block (g, h),
        g < h, has orthonormal rows or columns, drawn from ``seed``.
    seed : int, optional

    Returns
    -------
    torch.Tensor
        (N, N) orthogonal matrix, block diagonal for theta = 0.
    """
    qs = [as_real_tensor(q, f"room_matrices[{i}]", "coupled_matrix", ndim=2, dtype=torch.float64)
          for i, q in enumerate(room_matrices)]
    for i, q in enumerate(qs):
        err = (q @ q.T - torch.eye(q.shape[0], dtype=torch.float64)).abs().max().item() \
            if q.shape[0] == q.shape[1] else math.inf
        if err > 1e-8:
            raise ValueError(f"coupled_matrix: room_matrices[{i}] must be square and orthogonal, got "
                             f"shape {tuple(q.shape)}, max |Q Q^T - I| = {err:.3g}")
    if isinstance(coupling, bool) or not isinstance(coupling, (int, float)) \
            or not 0 <= coupling <= math.pi / 2:
        raise ValueError(f"coupled_matrix: coupling must be an angle in [0, pi / 2] radians, got "
                         f"{coupling!r}")
    sizes = [q.shape[0] for q in qs]
    n = sum(sizes)
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    upper = torch.zeros(n, n, dtype=torch.float64)
    if coupling_matrix is None:
        gen = seeded_generator(seed)
        for g in range(len(sizes)):
            for h in range(g + 1, len(sizes)):
                a, b = sizes[g], sizes[h]
                block, _ = torch.linalg.qr(torch.randn(max(a, b), min(a, b), generator=gen,
                                                       dtype=torch.float64))
                upper[starts[g]:starts[g] + a, starts[h]:starts[h] + b] = block if a >= b else block.T
    else:
        w = as_real_tensor(coupling_matrix, "coupling_matrix", "coupled_matrix", ndim=2,
                           dtype=torch.float64)
        if w.shape != (n, n):
            raise ValueError(f"coupled_matrix: coupling_matrix must have shape ({n}, {n}), got "
                             f"{tuple(w.shape)}")
        for g in range(len(sizes)):
            for h in range(g + 1, len(sizes)):
                rows, cols = slice(starts[g], starts[g] + sizes[g]), slice(starts[h], starts[h] + sizes[h])
                upper[rows, cols] = w[rows, cols]
    k = upper - upper.T
    norm = torch.linalg.matrix_norm(k, ord=2)
    rooms = torch.block_diag(*qs)
    if len(sizes) == 1 or coupling == 0 or norm == 0:
        return rooms
    return rooms @ torch.linalg.matrix_exp(coupling * k / norm)


def build_gfdn(config: Optional[GFDNConfig] = None, **kwargs):
    """Build a grouped FDN (coupled rooms) from a :class:`GFDNConfig` and/or its fields.

    Returns
    -------
    flamo.Parallel or flamo.Series
        The system :func:`flamo.reverb.build_fdn` builds (its layout and part names), with
        the lines of all groups in order and the feedback matrix of :func:`coupled_matrix`.

    Examples
    --------
    >>> gfdn = build_gfdn(group_delays=[[601, 701], [1031, 1187]], t60=[0.5, 2.0],
    ...                   coupling=0.2, seed=0)
    >>> gfdn["loop"].forward_path["delays"].delays.tolist()
    [601.0, 701.0, 1031.0, 1187.0]
    """
    if config is None:
        config = GFDNConfig(**kwargs)
    elif not isinstance(config, GFDNConfig):
        raise TypeError(f"build_gfdn: config must be a GFDNConfig, got {type(config).__name__}")
    elif kwargs:
        config = dataclasses.replace(config, **kwargs)
    sizes = _group_sizes(config.group_delays)
    t60 = as_real_tensor(config.t60, "t60", "build_gfdn", ndim=(0, 1), dtype=torch.float64)
    if t60.ndim == 0:
        t60 = t60.expand(len(sizes))
    if t60.shape != (len(sizes),):
        raise ValueError(f"build_gfdn: t60 must be one value or one per group ({len(sizes)}), got "
                         f"shape {tuple(t60.shape)}")
    gen = seeded_generator(config.seed)
    seeds = torch.randint(0, 2**31 - 1, (3,), generator=gen).tolist()
    if config.room_matrices is None:
        room_gen = seeded_generator(seeds[0])
        rooms = [torch.linalg.qr(torch.randn(s, s, generator=room_gen, dtype=torch.float64))[0]
                 for s in sizes]
    else:
        rooms = list(config.room_matrices)
        if len(rooms) != len(sizes):
            raise ValueError(f"build_gfdn: room_matrices must hold one matrix per group "
                             f"({len(sizes)}), got {len(rooms)}")
    a = coupled_matrix(rooms, config.coupling, config.coupling_matrix, seed=seeds[1])
    delays = [d for group in config.group_delays for d in group]
    line_t60 = torch.repeat_interleave(t60, torch.tensor(sizes))
    matrix = Matrix(len(delays), kind="orthogonal", init=a, learnable=config.learnable_matrix)
    fdn = FDNConfig(delays=delays, matrix=matrix.to(config.dtype), t60=line_t60,
                    input_gains=config.input_gains, output_gains=config.output_gains,
                    n_inputs=config.n_inputs, n_outputs=config.n_outputs, seed=seeds[2],
                    direct_gain=config.direct_gain, learnable_gains=config.learnable_gains,
                    learnable_direct=config.learnable_direct,
                    learnable_attenuation=config.learnable_attenuation, dtype=config.dtype)
    return build_fdn(fdn)
