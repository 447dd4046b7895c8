"""Loss functions for fitting systems, each a function and an ``nn.Module``.

Conventions: ``pred`` and ``target`` have the same shape and every loss returns a scalar
(mean over all elements unless stated). Frequency-domain losses act on sampled responses
(e.g. ``system.response(grid)``, (..., M, out, in)); time-domain losses act on time signals
in flamo's one layout, (T,) or (..., T, C), time first (:mod:`flamo.signal`), so the output
of ``module(x, grid)``, (..., nfft, out), goes in as it is. A time axis shorter than a loss
needs raises ValueError (the usual sign of a time-last signal).
Model-dependent regularizers (sparsity of a feedback matrix) take the module they act on as
an argument; their ``nn.Module`` forms store it and ignore ``pred``/``target`` so a Trainer
can call every criterion the same way.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..signal import time_first, time_last
from .energy_decay import edr, octave_filterbank, schroeder_edc, stft

__all__ = [
    "magnitude", "complex_mse", "magnitude_mse", "masked_mse", "stft_loss", "mel_filterbank",
    "multi_resolution_stft_loss", "average_power", "edc_loss", "edr_loss",
    "colorless_spectral_loss", "feedback_sparsity", "temporal_sparsity",
    "ComplexMSE", "MagnitudeMSE", "MaskedMSE", "MultiResolutionSTFTLoss", "MelSTFTLoss",
    "AveragePower", "EDCLoss", "EDRLoss", "ColorlessSpectralLoss", "FeedbackSparsity",
    "TemporalSparsity",
]


def _check_pair(pred, target, name):
    if pred.shape != target.shape:
        raise ValueError(f"{name}: pred and target must have the same shape, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")


# -- frequency-domain losses -------------------------------------------------------------

def magnitude(x: torch.Tensor) -> torch.Tensor:
    """|x| with a gradient that is finite everywhere, for the losses.

    ``torch.abs`` of a complex tensor has a NaN gradient where |x| is subnormal (float32 below
    1.2e-38): its backward x / |x| loses the quotient there. Here the quotient is formed after
    scaling x by a power of two (exact), so it is the unit phasor x / |x| at every x != 0,
    and 0 at x = 0 (a subgradient). Real tensors use ``torch.abs``.
    """
    return _Magnitude.apply(x) if x.is_complex() else x.abs()


_safe_abs = magnitude  # for masked_mse, whose argument ``magnitude`` shadows the function


class _Magnitude(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        r = x.abs()
        ctx.save_for_backward(x, r)
        return r

    @staticmethod
    def backward(ctx, grad):
        x, r = ctx.saved_tensors
        small = r < 2.0 ** -60  # far below 1, far above the subnormals: x * 2^100 is exact
        u = torch.where(small, x * 2.0 ** 100, x)
        ru = u.abs()
        unit = torch.where(ru > 0, u / torch.where(ru > 0, ru, torch.ones_like(ru)), torch.zeros_like(u))
        return grad * unit


def complex_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean ``|pred - target|^2`` over all elements (complex or real responses, any shape)."""
    _check_pair(pred, target, "complex_mse")
    return (magnitude(pred - target) ** 2).mean()


def magnitude_mse(pred: torch.Tensor, target: torch.Tensor, db: bool = False,
                  eps: float = 1e-8) -> torch.Tensor:
    """mean (|pred| - |target|)^2, or in dB mean (20 log10(|pred| + eps) - 20 log10(|target| + eps))^2.

    Parameters
    ----------
    pred, target : torch.Tensor
        Same shape, complex responses or magnitudes (any shape).
    db : bool
        Compare levels in dB (units dB^2) instead of linear magnitudes.
    eps : float
        Floor added to magnitudes before the logarithm.
    """
    _check_pair(pred, target, "magnitude_mse")
    a, b = magnitude(pred), magnitude(target)
    if db:
        a, b = 20 * torch.log10(a + eps), 20 * torch.log10(b + eps)
    return ((a - b) ** 2).mean()


def masked_mse(pred: torch.Tensor, target: torch.Tensor, index: torch.Tensor, dim: int = -3,
               magnitude: bool = False) -> torch.Tensor:
    """MSE over the frequency bins ``index`` only (a random subset or one partition).

    Parameters
    ----------
    pred, target : torch.Tensor
        Responses with frequency along ``dim`` (default -3: (..., M, out, in)).
    index : torch.Tensor
        (S,) long tensor of selected bins.
    magnitude : bool
        Compare |pred| and |target| instead of the complex values.
    """
    _check_pair(pred, target, "masked_mse")
    p, t = pred.index_select(dim, index), target.index_select(dim, index)
    if magnitude:
        p, t = _safe_abs(p), _safe_abs(t)
    return (_safe_abs(p - t) ** 2).mean()


# -- time-domain spectral losses ---------------------------------------------------------

def stft_loss(pred: torch.Tensor, target: torch.Tensor, n_fft: int, hop: int | None = None,
              mel_fb: torch.Tensor | None = None, eps: float = 1e-7,
              per_item: bool = False) -> torch.Tensor:
    """Single-resolution STFT loss: spectral convergence + mean |log S_t - log S_p|.

    Spectral convergence ||S_t - S_p||_F / ||S_t||_F plus the log-magnitude L1 distance
    (Yamamoto, Song, Kim, "Parallel WaveGAN", ICASSP 2020), on signals (T,) or (..., T, C)
    with T >= n_fft // 2. With ``mel_fb`` (n_fft // 2 + 1, n_mels) (:func:`mel_filterbank`)
    the magnitudes are first mapped to mel bands. ``per_item=True`` returns one value per signal, (..., C) (a scalar
    for (T,) signals), instead of the mean (the norms are then taken per signal).
    """
    # bins first, frames last: (bins, ..., C, frames), or (bins, frames) for (T,) signals
    sp, st = (time_last(stft(x, n_fft, hop).abs(), check_channels=False) for x in (pred, target))
    if mel_fb is not None:
        sp, st = (torch.tensordot(mel_fb, s, dims=([0], [0])) for s in (sp, st))
    dims = (0, -1) if per_item else None
    conv = (torch.linalg.vector_norm(st - sp, dim=dims)
            / torch.linalg.vector_norm(st, dim=dims).clamp_min(eps))
    log_diff = (torch.log(sp + eps) - torch.log(st + eps)).abs()
    return conv + (log_diff.mean(dims) if per_item else log_diff.mean())


def multi_resolution_stft_loss(pred: torch.Tensor, target: torch.Tensor,
                               fft_sizes=(512, 1024, 2048), mel_bands: int | None = None,
                               fs: float | None = None, per_item: bool = False) -> torch.Tensor:
    """Mean of :func:`stft_loss` over several frame lengths (hop = n_fft / 4, Hann windows).

    Parameters
    ----------
    pred, target : torch.Tensor
        Real time signals (T,) or (..., T, C), time first, T >= max(fft_sizes) // 2.
    fft_sizes : sequence of int
        Frame lengths [samples].
    mel_bands, fs : int, float, optional
        Use a mel filterbank with this many bands (needs the sample rate ``fs`` [Hz]).
    per_item : bool
        Return one loss per signal, (..., C), instead of a scalar.
    """
    if not per_item:
        _check_pair(pred, target, "multi_resolution_stft_loss")
    total = 0.0
    for n_fft in fft_sizes:
        fb = None
        if mel_bands is not None:
            if fs is None:
                raise ValueError("multi_resolution_stft_loss: mel_bands needs fs")
            fb = mel_filterbank(n_fft // 2 + 1, mel_bands, fs, dtype=pred.dtype, device=pred.device)
        total = total + stft_loss(pred, target, n_fft, mel_fb=fb, per_item=per_item)
    return total / len(fft_sizes)


def _average_power_settings(n_fft, hop, window, stride, normalize, owner):
    """Checked (window, stride) pairs of :func:`average_power`; ValueError/TypeError naming
    the argument otherwise."""
    for name, v, low in (("n_fft", n_fft, 2), ("hop", hop, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{owner}: {name} must be an int >= {low}, got {v!r}")
    if not isinstance(normalize, bool):
        raise TypeError(f"{owner}: normalize must be True or False, got {normalize!r}")
    pairs = []
    for name, value in (("window", window), ("stride", stride)):
        pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
        if (not isinstance(pair, (tuple, list)) or len(pair) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in pair)):
            raise ValueError(f"{owner}: {name} must be a positive int or a pair of positive ints "
                             f"(bins, frames), got {value!r}")
        pairs.append(tuple(pair))
    return tuple(pairs)


def average_power(pred: torch.Tensor, target: torch.Tensor, n_fft: int = 1024, hop: int = 256,
                  window=(64, 64), stride=(4, 4), normalize: bool = False,
                  per_item: bool = False) -> torch.Tensor:
    """Averaged-power distance of late reverberation (Dal Santo et al., Asilomar 2024).

    The magnitude STFTs S_p of ``pred`` and S_t of ``target`` (Hann window of ``n_fft``
    samples, hop ``hop``, centred frames with zero padding, :func:`flamo.optim.energy_decay.stft`)
    are each smoothed by a 2-D convolution over (frequency bin, frame) with the separable
    window w[k] w[l] (w the symmetric Hann window of ``window`` taps, not normalized), kept
    where the window lies inside the spectrogram (a valid convolution) and subsampled by
    ``stride``. With the smoothed spectrograms P_p and P_t, the loss is their distance in
    the Frobenius norm relative to the product of their norms::

        L = ||P_t - P_p||_F / (||P_p||_F ||P_t||_F)

    This is the metric of G. Dal Santo, K. Prawda, S. J. Schlecht, V. Valimaki, "Similarity metrics
    for late reverberation", Asilomar Conference on Signals, Systems, and Computers, 2024
    (arXiv 2408.14836), with its published settings as defaults: Hann 1024 / hop 256,
    a 64 x 64 Hann smoothing window at stride (4, 4). The window being symmetric, the
    convolution equals a correlation. It is not invariant to the signals' level
    (scaling both by c divides it by c); ``normalize=True`` first scales each signal to
    unit energy, as the paper's option does.

    Parameters
    ----------
    pred, target : torch.Tensor
        Real signals (T,) or (..., T, C), time first, the same shape and finite. The
        smoothing needs ``n_fft // 2 + 1 >= window[0]`` bins and ``1 + T // hop >=
        window[1]`` frames: with the defaults, T >= 16128 samples (0.34 s at 48 kHz).
    n_fft, hop : int
        STFT frame length and hop [samples].
    window : int or (int, int)
        Smoothing window length in bins and in frames.
    stride : int or (int, int)
        Subsampling of the smoothed spectrogram in bins and in frames.
    normalize : bool, default False
        Scale each signal (each channel) to unit energy sum_n x[n]^2 = 1 first.
    per_item : bool, default False
        Return one loss per signal, (..., C) (a scalar for (T,) signals), instead of the mean.

    Returns
    -------
    torch.Tensor
        The loss, dimensionless for ``normalize=True``, else in 1 / (signal units x window
        gain); a scalar unless ``per_item``.

    Raises
    ------
    ValueError
        For different shapes, non-finite samples, bad sizes, a signal too short for the
        smoothing window, or a signal whose smoothed power is zero (the loss is undefined).
    """
    owner = "average_power"
    _check_pair(pred, target, owner)
    window, stride = _average_power_settings(n_fft, hop, window, stride, normalize, owner)
    specs = []
    for name, x in (("pred", pred), ("target", target)):
        xt = time_last(x, owner, name, min_length=n_fft // 2)  # (..., T) or (T,)
        if not torch.isfinite(xt).all():
            raise ValueError(f"{owner}: {name} has non-finite samples (NaN or inf)")
        frames = 1 + xt.shape[-1] // hop
        if n_fft // 2 + 1 < window[0] or frames < window[1]:
            raise ValueError(f"{owner}: {name} of shape {tuple(x.shape)} gives {n_fft // 2 + 1} bins "
                             f"x {frames} frames, fewer than the smoothing window {window}; need "
                             f"n_fft >= {2 * (window[0] - 1)} and T >= {(window[1] - 1) * hop} samples")
        if normalize:
            energy = (xt * xt).sum(-1, keepdim=True)
            if (energy == 0).any():
                raise ValueError(f"{owner}: {name} has a silent signal; normalize=True needs "
                                 f"nonzero energy")
            x = time_first(xt / energy.sqrt())
        # bins first, frames last: (bins, ..., frames) -> (..., bins, frames)
        mag = time_last(magnitude(stft(x, n_fft, hop)), check_channels=False).movedim(0, -2)
        specs.append(mag)
    w = torch.hann_window(window[0], periodic=False, dtype=specs[0].dtype, device=specs[0].device)
    v = torch.hann_window(window[1], periodic=False, dtype=specs[0].dtype, device=specs[0].device)
    kernel = (w[:, None] * v[None, :])[None, None]
    lead = specs[0].shape[:-2]
    smooth = [torch.nn.functional.conv2d(s.reshape(-1, 1, *s.shape[-2:]), kernel, stride=stride)
              .reshape(*lead, -1) for s in specs]
    norm_p, norm_t = (torch.linalg.vector_norm(s, dim=-1) for s in smooth)
    for name, n in (("pred", norm_p), ("target", norm_t)):
        if (n == 0).any():
            raise ValueError(f"{owner}: {name} has zero smoothed power (a silent signal); the "
                             f"loss divides by it")
    loss = torch.linalg.vector_norm(smooth[1] - smooth[0], dim=-1) / (norm_p * norm_t)
    return loss if per_item else loss.mean()


def _hz_to_mel(f):
    return 2595.0 * math.log10(1.0 + f / 700.0)


def mel_filterbank(n_freqs: int, n_mels: int, fs: float, fmin: float = 0.0,
                   fmax: float | None = None, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """Triangular mel filterbank (HTK mel scale, m = 2595 log10(1 + f / 700)).

    Returns
    -------
    torch.Tensor
        (n_freqs, n_mels) weights on the rfft bins 0..fs/2, frequency first; each triangle
        peaks at 1.
    """
    fmax = fs / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= fs / 2 or n_mels < 1:
        raise ValueError(f"mel_filterbank: need 0 <= fmin < fmax <= fs/2 and n_mels >= 1, got "
                         f"fmin={fmin}, fmax={fmax}, fs={fs}, n_mels={n_mels}")
    mels = torch.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2, dtype=torch.float64)
    edges = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    f = torch.linspace(0, fs / 2, n_freqs, dtype=torch.float64)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (f - lo) / (mid - lo)
    fall = (hi - f) / (hi - mid)
    weights = torch.clamp(torch.minimum(rise, fall), min=0)  # (n_mels, n_freqs)
    return weights.T.to(dtype=dtype, device=device)


# -- decay losses ------------------------------------------------------------------------

def edc_loss(pred: torch.Tensor, target: torch.Tensor, fs: float | None = None,
             centers=None, db: bool = True, normalize: bool = True) -> torch.Tensor:
    """Mean squared difference of energy decay curves (Schroeder integration).

    Parameters
    ----------
    pred, target : torch.Tensor
        Real impulse responses (T,) or (..., T, C), time first, T >= 2.
    fs : float, optional
        Sample rate [Hz]; needed with ``centers``.
    centers : sequence of float, optional
        Octave-band centres [Hz]; the EDC is then computed per band
        (:func:`flamo.optim.energy_decay.octave_filterbank`), else broadband.
    db : bool
        Compare EDCs in dB (dB^2) rather than linear energy.
    normalize : bool
        Normalize each EDC to start at 1; False compares absolute energies.
    """
    _check_pair(pred, target, "edc_loss")
    time_last(pred, "edc_loss", "pred", min_length=2)  # checks the layout
    if centers is not None:
        if fs is None:
            raise ValueError("edc_loss: per-band EDCs (centers given) need fs")
        pred, target = octave_filterbank(pred, fs, centers), octave_filterbank(target, fs, centers)
    e_p = schroeder_edc(pred, normalize=normalize, db=db)
    e_t = schroeder_edc(target, normalize=normalize, db=db)
    return ((e_p - e_t) ** 2).mean()


def edr_loss(pred: torch.Tensor, target: torch.Tensor, n_fft: int = 1024,
             hop: int | None = None) -> torch.Tensor:
    """Mean absolute difference of normalized energy decay reliefs in dB of signals (T,) or
    (..., T, C), time first (see :func:`flamo.optim.energy_decay.edr`)."""
    _check_pair(pred, target, "edr_loss")
    return (edr(pred, n_fft, hop) - edr(target, n_fft, hop)).abs().mean()


# -- colorless FDN losses (Dal Santo et al.) ---------------------------------------------

def colorless_spectral_loss(per_output: torch.Tensor, total: torch.Tensor | None = None,
                            p_below: float = 2.0, p_above: float = 2.0) -> torch.Tensor:
    """Spectral flatness loss of the colorless FDN: deviation of |H| from 1.

    L = mean_z [ (1/N) sum_i e(|H_i(z)|) + e(|H(z)|) ], with e(x) = |x - 1|^p, where H_i are
    the N per-line outputs and H their sum (Dal Santo, Prawda, Schlecht, Valimaki, "Efficient
    optimization of feedback delay networks for smooth reverberation", arXiv 2402.11216,
    spectral loss; also DAFx 2023, "Differentiable feedback delay network for colorless
    reverberation"). The paper writes the squared error, p = 2 on both sides; ``p_below`` and
    ``p_above`` give the exponent for |H| < 1 and |H| > 1 separately (an asymmetric choice
    such as 2 / 4 penalizes peaks more than dips).

    Parameters
    ----------
    per_output : torch.Tensor
        (..., M, N) responses of the N lines (complex or magnitudes) at the sampled z.
    total : torch.Tensor, optional
        (..., M) response of the summed output; omitted, only the per-line term is used.
    """
    for name, p in (("p_below", p_below), ("p_above", p_above)):
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p < math.inf:
            raise ValueError(f"colorless_spectral_loss: {name} must be a finite number > 0, got {p!r}")

    def dev(h):
        d = magnitude(h) - 1
        # |d|^p has an infinite derivative at d = 0 for p < 1: the gradient there is set to 0
        # (a subgradient), and the power is taken of a safe base so that no branch of
        # torch.where sends inf * 0 = NaN backwards
        zero = d == 0
        a = torch.where(zero, torch.ones_like(d), d.abs())
        e = torch.where(d < 0, a ** p_below, a ** p_above)
        return torch.where(zero, torch.zeros_like(e), e)

    loss = dev(per_output).mean(-1)
    if total is not None:
        loss = loss + dev(total)
    return loss.mean()


def _matrix_of(module_or_tensor) -> torch.Tensor:
    if isinstance(module_or_tensor, torch.Tensor):
        return module_or_tensor
    for attr in ("matrix", "gains"):  # flamo.Matrix, flamo.Gain
        if hasattr(module_or_tensor, attr):
            return getattr(module_or_tensor, attr)
    raise TypeError(f"feedback_sparsity: expected a tensor, flamo.Matrix or flamo.Gain, got "
                    f"{type(module_or_tensor).__name__}")


def feedback_sparsity(matrix) -> torch.Tensor:
    """Sparsity of an N x N (orthogonal) feedback matrix, 0 when dense, 1 when a permutation.

    L = (N sqrt(N) - sum_ij |A_ij|) / (N (sqrt(N) - 1)) (Dal Santo et al., arXiv 2402.11216,
    the parameter sparsity term that replaced the temporal one of DAFx 2023). For an
    orthogonal A, sum_ij |A_ij| lies between N (permutation) and N sqrt(N) (all entries
    +-1/sqrt(N)), so minimizing L favours dense mixing and hence a dense impulse response.

    Parameters
    ----------
    matrix : torch.Tensor or flamo.Matrix or flamo.Gain
        (..., N, N) matrix, or the module whose matrix is meant (its ``matrix`` / ``gains``).
    """
    a = _matrix_of(matrix)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2] or a.shape[-1] < 2:
        raise ValueError(f"feedback_sparsity: need a square N x N matrix with N >= 2, got "
                         f"shape {tuple(a.shape)}")
    n = a.shape[-1]
    return ((n * math.sqrt(n) - a.abs().sum((-2, -1))) / (n * (math.sqrt(n) - 1))).mean()


def temporal_sparsity(h: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """||h||_2 / ||h||_1 over time of signals (T,) or (..., T, C), mean over the signals.

    Between 1/sqrt(T) (all samples equal in magnitude) and 1 (a single impulse): low means
    dense. Temporal loss of Dal Santo et al., DAFx 2023 (weighted by 300 there).
    """
    x = time_last(h, "temporal_sparsity", "h")
    return (torch.linalg.vector_norm(x, 2, dim=-1)
            / torch.linalg.vector_norm(x, 1, dim=-1).clamp_min(eps)).mean()


# -- nn.Module forms ---------------------------------------------------------------------

class ComplexMSE(nn.Module):
    """Module form of :func:`complex_mse`; forward(pred, target) -> scalar."""

    def forward(self, pred, target):
        return complex_mse(pred, target)


class MagnitudeMSE(nn.Module):
    """Module form of :func:`magnitude_mse` (``db`` selects the dB variant)."""

    def __init__(self, db: bool = False, eps: float = 1e-8):
        super().__init__()
        self.db, self.eps = db, eps

    def forward(self, pred, target):
        return magnitude_mse(pred, target, self.db, self.eps)


class MaskedMSE(nn.Module):
    """MSE over random frequency subsets drawn from a seeded generator.

    Parameters
    ----------
    fraction : float
        Share of the M bins used per call, in (0, 1]. With ``partition=True`` the bins are
        split into round(1 / fraction) disjoint random parts, used in turn (every bin once
        per cycle, a new random split per cycle), as in the colorless-FDN training where each
        step sees a different subset of frequencies.
    seed : int
        Seed of the module's own generator. Its state is part of ``state_dict`` (extra
        state), so a resumed Trainer draws the same subsets.
    dim : int
        Frequency dimension (default -3: (..., M, out, in)).
    magnitude : bool
        Compare magnitudes instead of complex values.
    """

    def __init__(self, fraction: float = 0.5, seed: int = 0, partition: bool = False,
                 dim: int = -3, magnitude: bool = False):
        super().__init__()
        if not 0 < fraction <= 1:
            raise ValueError(f"MaskedMSE: fraction must be in (0, 1], got {fraction}")
        self.fraction, self.partition, self.dim, self.magnitude = fraction, partition, dim, magnitude
        self.generator = torch.Generator().manual_seed(int(seed))
        self._parts: list[torch.Tensor] = []

    def next_index(self, m: int) -> torch.Tensor:
        """(S,) bins used by the next call, for a response with ``m`` bins."""
        if not self.partition:
            count = max(1, round(self.fraction * m))
            return torch.randperm(m, generator=self.generator)[:count].sort().values
        if not self._parts or self._parts[0].max() >= m:
            n_parts = max(1, round(1 / self.fraction))
            perm = torch.randperm(m, generator=self.generator)
            self._parts = [p.sort().values for p in perm.chunk(n_parts)]
        return self._parts.pop(0)

    def forward(self, pred, target):
        index = self.next_index(pred.shape[self.dim]).to(pred.device)
        return masked_mse(pred, target, index, self.dim, self.magnitude)

    def get_extra_state(self):
        return {"generator": self.generator.get_state(), "parts": list(self._parts)}

    def set_extra_state(self, state):
        self.generator.set_state(state["generator"])
        self._parts = list(state["parts"])


class MultiResolutionSTFTLoss(nn.Module):
    """Module form of :func:`multi_resolution_stft_loss`."""

    def __init__(self, fft_sizes=(512, 1024, 2048)):
        super().__init__()
        self.fft_sizes = tuple(fft_sizes)

    def forward(self, pred, target):
        return multi_resolution_stft_loss(pred, target, self.fft_sizes)


class MelSTFTLoss(nn.Module):
    """Multi-resolution STFT loss on mel-band magnitudes (``n_mels`` bands, sample rate ``fs``)."""

    def __init__(self, fs: float, n_mels: int = 64, fft_sizes=(512, 1024, 2048)):
        super().__init__()
        self.fs, self.n_mels, self.fft_sizes = fs, n_mels, tuple(fft_sizes)

    def forward(self, pred, target):
        return multi_resolution_stft_loss(pred, target, self.fft_sizes, mel_bands=self.n_mels,
                                          fs=self.fs)


class AveragePower(nn.Module):
    """Module form of :func:`average_power` (Dal Santo et al., Asilomar 2024); the arguments
    are those of the function, checked here so that a bad setting fails at construction."""

    def __init__(self, n_fft: int = 1024, hop: int = 256, window=(64, 64), stride=(4, 4),
                 normalize: bool = False):
        super().__init__()
        self.window, self.stride = _average_power_settings(n_fft, hop, window, stride, normalize,
                                                           "AveragePower")
        self.n_fft, self.hop, self.normalize = n_fft, hop, normalize

    def forward(self, pred, target):
        return average_power(pred, target, self.n_fft, self.hop, self.window, self.stride,
                             self.normalize)


class EDCLoss(nn.Module):
    """Module form of :func:`edc_loss`; ``centers`` (Hz) selects per-octave-band EDCs."""

    def __init__(self, fs: float | None = None, centers=None, db: bool = True,
                 normalize: bool = True):
        super().__init__()
        self.fs, self.centers, self.db, self.normalize = fs, centers, db, normalize

    def forward(self, pred, target):
        return edc_loss(pred, target, self.fs, self.centers, self.db, self.normalize)


class EDRLoss(nn.Module):
    """Module form of :func:`edr_loss`."""

    def __init__(self, n_fft: int = 1024, hop: int | None = None):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop

    def forward(self, pred, target):
        return edr_loss(pred, target, self.n_fft, self.hop)


class ColorlessSpectralLoss(nn.Module):
    """Module form of :func:`colorless_spectral_loss`.

    forward(pred, target=None): ``pred`` is (..., M, N) per-line responses; the total is
    their sum over N when ``with_total`` (the FDN output with unit output gains is the sum of
    the per-line outputs). ``target`` is ignored (the target is |H| = 1).
    """

    def __init__(self, with_total: bool = True, p_below: float = 2.0, p_above: float = 2.0):
        super().__init__()
        self.with_total, self.p_below, self.p_above = with_total, p_below, p_above

    def forward(self, pred, target=None):
        total = pred.sum(-1) if self.with_total else None
        return colorless_spectral_loss(pred, total, self.p_below, self.p_above)


class FeedbackSparsity(nn.Module):
    """:func:`feedback_sparsity` of the module given at construction.

    The module is held by reference (not registered as a submodule, so it is neither
    duplicated in ``state_dict`` nor moved twice); forward ignores its arguments.
    """

    def __init__(self, module):
        super().__init__()
        _matrix_of(module)  # fail early on a wrong type
        self._target = (module,)

    def forward(self, *_):
        return feedback_sparsity(self._target[0])


class TemporalSparsity(nn.Module):
    """:func:`temporal_sparsity` of ``pred``, (T,) or (..., T, C); ``target`` is ignored."""

    def forward(self, pred, target=None):
        return temporal_sparsity(pred)
