r"""Colorless FDN: optimize the feedback matrix and the input/output gains for a flat response.

Dal Santo, Prawda, Schlecht, Valimaki, "Differentiable feedback delay network for colorless
reverberation", DAFx 2023, extended in "Efficient optimization of feedback delay networks for
smooth reverberation" (arXiv 2402.11216). The FDN is lossless up to a per-sample gain
(0.9999 in the published code), so every line gain is ``gain_per_sample ** m_i`` and all
modes decay alike; the orthogonal matrix A = expm(skew(W)), b and c are learned so that the
magnitude of each line output c_i x_i(z) and of their sum H(z) is close to 1
(:func:`flamo.optim.losses.colorless_spectral_loss`), with a sparsity penalty on A
(:func:`flamo.optim.losses.feedback_sparsity`) that keeps the mixing dense.

This module only assembles library parts: :func:`colorless_fdn` builds the system with
:func:`flamo.reverb.build_fdn`, :func:`published_colorless_fdn` builds it with the
parametrization and initialization of the authors' released code, :func:`line_outputs`
gives the per-line responses the spectral loss needs, :func:`colorless_criteria` gives the
Trainer criteria.
"""

from __future__ import annotations

import math

import torch

from ..optim.losses import ColorlessSpectralLoss, FeedbackSparsity
from ..system import Series
from .fdn import build_fdn
from .structure import fdn_structure

__all__ = ["COLORLESS_GAIN_PER_SAMPLE", "PUBLISHED_INITS", "colorless_fdn",
           "published_colorless_fdn", "upper_skew_expm", "LineScale", "line_outputs",
           "colorless_criteria"]

#: Per-sample gain of the nearly lossless FDN of the published colorless-FDN code.
COLORLESS_GAIN_PER_SAMPLE = 0.9999

#: Initializations of :func:`published_colorless_fdn`.
PUBLISHED_INITS = ("journal", "dafx23")


def upper_skew_expm(w: torch.Tensor) -> torch.Tensor:
    """Orthogonal expm(U - U^T) with U = triu(w, 1): only the strict upper triangle of the
    raw (..., n, n) matrix is a parameter, as in the released colorless-FDN code (Dal Santo
    et al., DAFx 2023 and arXiv 2402.11216), so one Adam step moves each skew entry by the
    step of one parameter (with W - W^T it would move by two)."""
    u = torch.triu(w, 1)
    return torch.linalg.matrix_exp(u - u.transpose(-1, -2))


class LineScale:
    """Fixed per-channel factors: raw (..., N) -> raw * factors (N,).

    Used for the output gains of :func:`published_colorless_fdn`, whose raw values are the
    released code's c while the library's FDN needs c / g (see there). Not nameable in
    presets (preset mappings take scalar settings only).
    """

    def __init__(self, factors):
        f = torch.as_tensor(factors, dtype=torch.float64)
        if f.ndim != 1 or not torch.isfinite(f).all() or (f == 0).any():
            raise ValueError(f"LineScale: factors must be a 1-D tensor of finite nonzero "
                             f"values, got {factors!r}")
        self.factors = f

    def __call__(self, x):
        return x * self.factors.to(dtype=x.dtype, device=x.device)

    def inverse(self, y):
        y = torch.as_tensor(y)
        return y / self.factors.to(dtype=y.dtype, device=y.device)

    def __repr__(self):
        return f"LineScale({self.factors.numel()} factors)"


def colorless_fdn(delays, seed=None, gain_per_sample=COLORLESS_GAIN_PER_SAMPLE,
                  dtype=torch.float32):
    """The colorless-FDN system: orthogonal A, learnable b (N, 1) and c (1, N), fixed lines.

    Parameters
    ----------
    delays : sequence of int
        (N,) delay lengths in samples (e.g. :data:`flamo.reverb.COLORLESS_FDN_DELAYS` ["N6"]).
    seed : int, optional
        Seed of the random initial A, b and c (see :class:`flamo.reverb.FDNConfig`).
    gain_per_sample : float, default 0.9999
        Per-sample gain in (0, 1]; line i gets ``gain_per_sample ** m_i`` (1 gives a lossless
        loop, whose response is infinite at its modes on the unit circle).
    dtype : torch.dtype, default torch.float32

    Returns
    -------
    flamo.Series
        A :func:`flamo.reverb.build_fdn` system of shape (1, 1) without direct path.
    """
    if not 0 < gain_per_sample <= 1:
        raise ValueError(f"colorless_fdn: gain_per_sample must be in (0, 1], got {gain_per_sample!r}")
    m = [int(v) for v in delays]
    return build_fdn(delays=m, line_gains=[gain_per_sample ** v for v in m], matrix="orthogonal",
                     seed=seed, learnable_matrix=True, learnable_gains=True, dtype=dtype)


def published_colorless_fdn(delays, seed, init="journal", gain_per_sample=COLORLESS_GAIN_PER_SAMPLE,
                            dtype=torch.float32):
    """The colorless FDN parametrized and initialized as in the authors' released code.

    The released code (Dal Santo et al., DAFx 2023; arXiv 2402.11216) computes the line
    outputs as c_i [(diag(z^m) - A Gamma)^-1 b]_i, Gamma = diag(g^m): the delay lines are
    tapped *before* the per-line gain, while :func:`flamo.reverb.build_fdn` taps them after
    it. The two differ by Gamma^-1 on the output side only, so the system built here holds
    the released code's parameters as its raw parameters:

    - c raw, the output gains mapped by :class:`LineScale` (1 / g_i): the built FDN's
      per-line outputs, transfer function, poles and residues are the released model's;
    - A = expm(U - U^T), U = triu(W, 1) (:func:`upper_skew_expm`), W raw;
    - b raw, as built.

    Adam then updates the same numbers by the same steps as the released code.

    Initialization (a ``torch.Generator`` seeded with ``seed``; b, c, then W):
    b, c ~ N(0, 1) / N, and W ~ U(-1/sqrt(N), 1/sqrt(N)) for ``init="journal"``
    (arXiv 2402.11216) or W ~ N(0, 1/N^2) for ``init="dafx23"`` (the DAFx 2023 code's
    linear-layer initialization). Normalize the energy before training
    (:func:`flamo.reverb.normalize_energy`; the released code uses 2000 frequencies on
    [0, pi], ``flamo.Grid(3998)``).

    Parameters
    ----------
    delays : sequence of int
        (N,) delay lengths in samples.
    seed : int
    init : {"journal", "dafx23"}
    gain_per_sample : float, default 0.9999
        In (0, 1]; line i gets gain_per_sample ** m_i.
    dtype : torch.dtype, default torch.float32

    Returns
    -------
    flamo.Series
        A :func:`flamo.reverb.build_fdn` system of shape (1, 1) whose feedback matrix and
        output gains carry the mappings above (so :meth:`flamo.Matrix.config` cannot save
        it as a preset; its state dict and the Trainer checkpoints hold it).
    """
    if init not in PUBLISHED_INITS:
        raise ValueError(f"published_colorless_fdn: init must be one of {PUBLISHED_INITS}, got {init!r}")
    if not 0 < gain_per_sample <= 1:
        raise ValueError(f"published_colorless_fdn: gain_per_sample must be in (0, 1], got "
                         f"{gain_per_sample!r}")
    m = [int(v) for v in delays]
    n = len(m)
    gen = torch.Generator().manual_seed(int(seed))
    b = torch.randn(n, generator=gen, dtype=torch.float64) / n
    c = torch.randn(n, generator=gen, dtype=torch.float64) / n
    if init == "journal":
        w = (2 * torch.rand(n, n, generator=gen, dtype=torch.float64) - 1) / math.sqrt(n)
    else:
        w = torch.randn(n, n, generator=gen, dtype=torch.float64) / n
    g = torch.tensor([gain_per_sample ** v for v in m], dtype=torch.float64)
    system = build_fdn(delays=m, line_gains=g, matrix="orthogonal", input_gains=b,
                       output_gains=c / g, learnable_matrix=True, learnable_gains=True,
                       dtype=torch.float64)
    parts = fdn_structure(system)
    parts.output.mapping = LineScale(1 / g)
    parts.feedback.mapping = upper_skew_expm
    with torch.no_grad():
        parts.output.raw.copy_(c.reshape(1, n))
        parts.feedback.raw.copy_(w)
    return system.to(dtype)


def line_outputs(system, grid) -> torch.Tensor:
    """Per-line outputs c_i x_i(z) of a single-input FDN, (M, N); their sum over N is H(z).

    x(z) = (I - D(z) A)^-1 D(z) b is the vector of delay-line outputs (the loop is solved
    for the single input column only).

    Parameters
    ----------
    system : flamo.Series or flamo.Parallel
        Built by :func:`flamo.reverb.build_fdn` with one input, one output and no tone
        module (a direct path, if any, is not included).
    grid : flamo.Grid

    Returns
    -------
    torch.Tensor
        (M, N) complex responses, differentiable with respect to b, A and c.
    """
    fdn = fdn_structure(system)
    if fdn.tone is not None or fdn.shape != (1, 1):
        raise ValueError(f"line_outputs: expected a single-input single-output FDN without tone "
                         f"module, got shape {fdn.shape} and tone {fdn.tone!r}")
    lines = Series({"input": fdn.input, "loop": fdn.loop}).response(grid)  # (M, N, 1)
    return lines[..., 0] * fdn.c  # c is (1, N): broadcast over M


def colorless_criteria(system, sparsity_weight=1.0, p_below=2.0, p_above=2.0) -> dict:
    """Trainer criteria ``{"spectral": (loss, 1), "sparsity": (loss, sparsity_weight)}``.

    The spectral term expects :func:`line_outputs` as the model output (it adds the sum over
    lines itself); the sparsity term reads the system's feedback matrix.

    Parameters
    ----------
    system : flamo.Series or flamo.Parallel
        Built by :func:`colorless_fdn` or :func:`flamo.reverb.build_fdn`.
    sparsity_weight : float, default 1
        Weight of :func:`flamo.optim.losses.feedback_sparsity`, >= 0.
    p_below, p_above : float, default 2
        Exponents of the spectral term below and above |H| = 1 (the paper's squared error
        by default).
    """
    if not sparsity_weight >= 0:
        raise ValueError(f"colorless_criteria: sparsity_weight must be >= 0, got {sparsity_weight!r}")
    feedback = fdn_structure(system).feedback
    return {"spectral": (ColorlessSpectralLoss(with_total=True, p_below=p_below, p_above=p_above), 1.0),
            "sparsity": (FeedbackSparsity(feedback), float(sparsity_weight))}
