r"""Feedback delay network (FDN) builder.

An FDN (Jot & Chaigne, AES 1991; Stautner & Puckette, CMJ 1982) with N delay lines is

.. math::
    H(z) = d + c^T \left(I - D(z) A\right)^{-1} D(z)\, b, \qquad
    D(z) = \mathrm{diag}\left(z^{-m_i}\right) \Gamma(z),

with delays m (N,), feedback matrix A (N, N), input gains b (N, in), output gains
c (out, N), direct gains d (out, in) and per-line attenuation Gamma(z) (a gain g_i or any
diagonal filter). :func:`build_fdn` returns it as ordinary library systems, so grids, losses,
trainers, presets and renderers all apply. Part names (stable; use them for access)::

    system = Parallel({"fdn": core, "direct": Gain (out, in)})   # Series core alone if no direct path
    core   = Series({"input":  Gain (N, in),
                     "loop":   Recursion(Series({"delays": Delay (N,),
                                                 "attenuation": N x N module}),
                                         Matrix (N, N)),              # loop.feedback_path
                     "output": Gain (out, N),
                     "tone":   out x out module})                    # only when given

e.g. ``system["fdn"]["loop"].forward_path["delays"]``; :func:`flamo.reverb.fdn_structure`
reads them back (modules and tensors), for this layout whatever the part names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import torch

from ..functional.mappings import Interval, unmap_value
from ..modules import AllpassFDNMatrix, Delay, DSPModule, Gain, HomogeneousAttenuation, Matrix
from .._common import as_real_tensor, seeded_generator
from ..system import Parallel, Recursion, Series
from .delays import COLORLESS_FDN_DELAYS
from .structure import fdn_structure

__all__ = ["FDNConfig", "build_fdn", "allpass_fdn", "normalize_energy"]

ModuleOrFactory = Union[DSPModule, Callable[["FDNConfig"], DSPModule], None]


@dataclass
class FDNConfig:
    """Everything :func:`build_fdn` needs, as plain values.

    Attributes
    ----------
    delays : sequence of int
        (N,) delay lengths in samples, integers >= 1. Default: the N = 6 set of the
        colorless-FDN paper (:data:`flamo.reverb.COLORLESS_FDN_DELAYS` ["N6"]).
    matrix : str, DSPModule or callable, default "orthogonal"
        Feedback-matrix family, one of :attr:`flamo.Matrix.KINDS` (see :class:`flamo.Matrix`),
        or the feedback path itself: an N x N module (e.g. a :class:`flamo.Paraunitary`
        filter matrix) or a factory ``f(config) -> module``, used as given.
    matrix_init : array_like, optional
        Explicit initial value for the family (see :class:`flamo.Matrix`); default random.
    input_gains : array_like, optional
        b: (N,) or (N, n_inputs). Default: N(0, 1/N) entries drawn from ``seed``.
    output_gains : array_like, optional
        c: (N,) or (n_outputs, N). Default: N(0, 1/N) entries drawn from ``seed``.
    n_inputs, n_outputs : int, default 1
        Channel counts used when the gains are drawn at random.
    seed : int, optional
        Seed of every random initial value (matrix, b, c); None draws a fresh one.
    direct_gain : float or array_like, optional
        d: (n_outputs, n_inputs), or a scalar that fills it. None builds no direct path
        (no Parallel).
    t60 : float or array_like, optional
        Reverberation time in seconds, shared or (N,) per line: the attenuation is a
        :class:`flamo.HomogeneousAttenuation` (gains 10^(-3 m / (fs T60)) at the sample rate
        of each evaluation, computed in float64 from T60 in the module's dtype; T60 learnable
        when ``learnable_attenuation``).
    line_gains : array_like, optional
        (N,) per-line gains, instead of ``t60``: a diagonal :class:`flamo.Gain` holding
        exactly these values (in ``dtype``).
    attenuation : DSPModule or callable, optional
        The per-line attenuation after the delays: an N x N module (diagonal filters, e.g.
        :class:`flamo.GEQAttenuation`, :class:`flamo.SOS`, or a Series of such), or a
        factory ``f(config) -> module``. Replaces ``t60``/``line_gains``; its learnability
        is the module's own. Without any of the three the loop is lossless (unit gains).
    tone : DSPModule or callable, optional
        A tone-correction module after the output gains, (n_outputs, n_outputs), or a
        factory ``f(config) -> module``.
    learnable_matrix, learnable_gains, learnable_direct : bool, default True
        Learnability of A, of b and c, and of d.
    learnable_attenuation : bool, default False
        Learn the attenuation built from ``t60`` (T60 through LogInterval onto its range) or
        ``line_gains`` (the gains through ``Interval(0, 1)``): every gain stays in (0, 1), so
        the loop stays stable with an orthogonal matrix.
    learnable_delays : bool, default False
    dtype : torch.dtype, default torch.float32
        dtype of every parameter of the built system.
    """

    delays: Sequence[int] = COLORLESS_FDN_DELAYS["N6"]
    matrix: Union[str, ModuleOrFactory] = "orthogonal"
    matrix_init: Any = None
    input_gains: Any = None
    output_gains: Any = None
    n_inputs: int = 1
    n_outputs: int = 1
    seed: Optional[int] = None
    direct_gain: Any = None
    t60: Any = None
    line_gains: Any = None
    attenuation: ModuleOrFactory = None
    tone: ModuleOrFactory = None
    learnable_matrix: bool = True
    learnable_gains: bool = True
    learnable_direct: bool = True
    learnable_attenuation: bool = False
    learnable_delays: bool = False
    dtype: torch.dtype = torch.float32


def _float64(value, name, ndim):
    """``value`` as a float64 tensor: Python numbers and lists are read in float64 (not in
    the default float32), so that a float64 FDN holds exactly the values given."""
    return as_real_tensor(value, name, "build_fdn", ndim=ndim, dtype=torch.float64)


def _delays(value):
    m = _float64(value, "delays", 1)
    if m.numel() == 0 or (m != torch.round(m)).any() or (m < 1).any():
        raise ValueError(f"build_fdn: delays must be integers >= 1 samples (a loop without "
                         f"delay cannot be computed), got {m.tolist()}")
    return m


def _gain_matrix(value, name, shape):
    t = _float64(value, name, (0, 1, 2))
    if t.ndim == 1:  # a vector is the single column of b or the single row of c
        t = t.reshape(-1, 1) if name == "input_gains" else t.reshape(1, -1)
    elif t.ndim == 0:  # a scalar fills the expected shape
        t = t.expand(*(1 if s is None else s for s in shape)).clone()
    if any(s is not None and t.shape[i] != s for i, s in enumerate(shape)):
        want = ", ".join("any" if s is None else str(s) for s in shape)
        raise ValueError(f"build_fdn: {name} must have shape ({want}), got {tuple(t.shape)}")
    return t


def _module(value, name, config, shape):
    module = value(config) if callable(value) and not isinstance(value, DSPModule) else value
    if not isinstance(module, DSPModule):
        raise TypeError(f"build_fdn: {name} must be a flamo module or a factory returning one, "
                        f"got {type(module).__name__}")
    if module.shape != shape:
        raise ValueError(f"build_fdn: {name} must have shape {shape}, got {module.shape}")
    return module


def _attenuation(config, m):
    n = m.numel()
    given = [k for k in ("t60", "line_gains", "attenuation") if getattr(config, k) is not None]
    if len(given) > 1:
        raise ValueError(f"build_fdn: give at most one of t60, line_gains, attenuation; got {given}")
    if config.attenuation is not None:
        return _module(config.attenuation, "attenuation", config, (n, n))
    if config.t60 is not None:
        t60 = _float64(config.t60, "t60", (0, 1))
        if t60.ndim == 1 and t60.shape != (n,):
            raise ValueError(f"build_fdn: t60 must be one number of seconds or one per line, "
                             f"shape ({n},), got shape {tuple(t60.shape)}")
        return HomogeneousAttenuation(m, t60, learnable=config.learnable_attenuation)
    if config.line_gains is not None:
        gains = _float64(config.line_gains, "line_gains", 1)
        if gains.shape != (n,):
            raise ValueError(f"build_fdn: line_gains must have shape ({n},), got {tuple(gains.shape)}")
    else:
        gains = torch.ones(n, dtype=torch.float64)
    if config.learnable_attenuation:
        return Gain(gains, mapping=Interval(0.0, 1.0), learnable=True)
    return Gain(gains, learnable=False)


def build_fdn(config: Optional[FDNConfig] = None, **kwargs) -> DSPModule:
    """Build an FDN from an :class:`FDNConfig` and/or its fields as keyword arguments.

    Parameters
    ----------
    config : FDNConfig, optional
        Base configuration; ``kwargs`` override its fields.
    **kwargs
        Fields of :class:`FDNConfig`.

    Returns
    -------
    flamo.Parallel or flamo.Series
        ``Parallel({"fdn": core, "direct": Gain})`` with a direct path, else the
        ``Series`` core itself; part names as in the module docstring. Shape
        (n_outputs, n_inputs).

    Examples
    --------
    >>> fdn = build_fdn(delays=[887, 911, 941, 1699, 1951, 2053], t60=1.5, seed=0, direct_gain=0.0)
    >>> fdn["fdn"]["loop"].forward_path["delays"].delays.tolist()[:2]
    [887.0, 911.0]
    """
    if config is None:
        config = FDNConfig(**kwargs)
    elif not isinstance(config, FDNConfig):
        raise TypeError(f"build_fdn: config must be an FDNConfig, got {type(config).__name__}")
    elif kwargs:
        config = dataclasses.replace(config, **kwargs)
    if config.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"build_fdn: dtype must be torch.float32 or torch.float64, got {config.dtype}")
    m = _delays(config.delays)
    n = m.numel()
    gen = seeded_generator(config.seed)
    matrix_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    if isinstance(config.matrix, str):
        init = None if config.matrix_init is None else _float64(config.matrix_init, "matrix_init",
                                                                (1, 2))
        feedback = Matrix(n, kind=config.matrix, init=init, seed=matrix_seed,
                          learnable=config.learnable_matrix and config.matrix != "hadamard")
    elif config.matrix_init is not None:
        raise ValueError("build_fdn: matrix_init applies to a matrix family (a str), not to a "
                         "given feedback module")
    else:
        feedback = _module(config.matrix, "matrix", config, (n, n))

    def gains(value, name, shape, draw_shape):
        if value is None:
            return torch.randn(draw_shape, generator=gen, dtype=torch.float64) / n ** 0.5
        return _gain_matrix(value, name, shape)

    b = gains(config.input_gains, "input_gains", (n, None), (n, config.n_inputs))
    c = gains(config.output_gains, "output_gains", (None, n), (config.n_outputs, n))
    loop = Recursion(Series({"delays": Delay(m, learnable=config.learnable_delays),
                             "attenuation": _attenuation(config, m)}), feedback)
    parts = {"input": Gain(b, learnable=config.learnable_gains), "loop": loop,
             "output": Gain(c, learnable=config.learnable_gains)}
    n_out, n_in = c.shape[0], b.shape[1]
    if config.tone is not None:
        parts["tone"] = _module(config.tone, "tone", config, (n_out, n_out))
    system = Series(parts)
    if config.direct_gain is not None:
        d = _gain_matrix(config.direct_gain, "direct_gain", (n_out, n_in))
        system = Parallel({"fdn": system, "direct": Gain(d, learnable=config.learnable_direct)})
    return system.to(config.dtype)


def allpass_fdn(delays, matrix=None, seed=None, dtype=torch.float32) -> Series:
    """An n-channel allpass FDN around an :class:`flamo.AllpassFDNMatrix` S.

    H(z) = S_11 + S_12 D(z) (I - S_22 D(z))^-1 S_21 with D(z) = diag(z^-m) and S's n x n
    blocks [[S_11, S_12], [S_21, S_22]] = [[-Q G, Q], [I - G^2, G]]: paraunitary (|H| = 1 for
    n = 1) for any delays and any parameter values. The four blocks share S's parameters,
    so the system is built as one loop around S rather than in :func:`build_fdn`'s layout
    (whose input, output and direct gains are parameters of their own)::

        Series({"input":  Gain (2n, n)  [I; 0],             # the input enters S's first block
                "loop":   Recursion(S, Series({"delays": Delay (2n,) [1 .. 1, m],
                                               "select": Gain (2n,) [0 .. 0, 1 .. 1]})),
                "output": Gain (n, 2n)  [I, 0]})

    Recursion(S, B) = (I - S B)^-1 S with B = diag(0, D(z)) has S_11 + S_12 D (I - S_22 D)^-1
    S_21 as its first block, which the fixed input and output selections pick. The unused
    first-block lines get a delay of 1 sample (their gain is 0, so any length gives the same
    B): every feedback line then holds a delay, and the loop has a time-domain realization.

    Parameters
    ----------
    delays : array_like
        (n,) delay lengths in samples, integers >= 1.
    matrix : AllpassFDNMatrix, optional
        The system matrix (learnable Q and G); default ``AllpassFDNMatrix(n, seed=seed)``.
    seed : int, optional
    dtype : torch.dtype, default torch.float32

    Returns
    -------
    flamo.Series
        (n, n) system; ``system["loop"].forward_path`` is the AllpassFDNMatrix.
    """
    m = _delays(delays)
    n = m.numel()
    if matrix is None:
        matrix = AllpassFDNMatrix(n, seed=seed)
    elif not isinstance(matrix, AllpassFDNMatrix) or matrix.n != n:
        raise ValueError(f"allpass_fdn: matrix must be an AllpassFDNMatrix of n = {n} channels (one "
                         f"per delay), got {type(matrix).__name__} of shape {matrix.shape}"
                         if isinstance(matrix, DSPModule) else
                         f"allpass_fdn: matrix must be an AllpassFDNMatrix, got {type(matrix).__name__}")
    eye, zeros = torch.eye(n, dtype=torch.float64), torch.zeros(n, n, dtype=torch.float64)
    select = torch.cat([torch.zeros(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)])
    lines = Series({"delays": Delay(torch.cat([torch.ones(n, dtype=torch.float64), m])),
                    "select": Gain(select, learnable=False)})
    system = Series({"input": Gain(torch.cat([eye, zeros]), learnable=False),
                     "loop": Recursion(matrix, lines),
                     "output": Gain(torch.cat([eye, zeros], dim=1), learnable=False)})
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"allpass_fdn: dtype must be torch.float32 or torch.float64, got {dtype}")
    return system.to(dtype)


def _set_gains(gain: Gain, value: torch.Tensor):
    with torch.no_grad():
        gain.raw.copy_(unmap_value(gain.mapping, value))


def normalize_energy(system, grid, target=1.0) -> float:
    """Scale the input and output gains b, c in place so the FDN's energy is ``target``.

    The energy is the Parseval-weighted mean of ``|H(z_k)|^2`` over the full circle of the grid
    (the M grid points stand for their mirror images too), summed over the output and input
    channels of the reverberant part (the direct path is excluded). On a grid with
    alias_decay_db = 0 this equals the energy sum_n h_M[n]^2 of the impulse response on the
    grid (time-aliased to nfft samples); with gamma < 1 it is that of gamma^n h[n]. b and c
    are both scaled by (target / energy)^(1/4).

    Parameters
    ----------
    system : DSPModule
        A system built by :func:`build_fdn`.
    grid : flamo.Grid
    target : float, default 1.0

    Returns
    -------
    float
        The energy before scaling.
    """
    if not target > 0:
        raise ValueError(f"normalize_energy: target must be > 0, got {target!r}")
    fdn = fdn_structure(system)
    with torch.no_grad():
        power = fdn.core.response(grid).abs().square().sum(dim=(-2, -1))  # (..., M)
        weights = torch.full((grid.M,), 2.0, dtype=power.dtype)
        weights[0] = 1.0
        if grid.nfft % 2 == 0:
            weights[-1] = 1.0
        energy = float((power * weights).sum() / grid.nfft)
    if not energy > 0:
        raise ValueError(f"normalize_energy: the FDN has zero energy on the grid ({energy})")
    scale = (target / energy) ** 0.25
    for gains in (fdn.input, fdn.output):
        _set_gains(gains, gains.gains.detach() * scale)
    return energy
