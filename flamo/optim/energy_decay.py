"""Energy decay analysis: Schroeder integration, octave bands, EDR and T60.

Shared by the decay losses of :mod:`flamo.optim.losses` and by reverberation code that needs
an energy decay curve (EDC) or a reverberation time. Everything is plain torch, differentiable
and batched over leading dimensions. Signals are time first, (T,) or (..., T, C), as
everywhere in flamo (see :mod:`flamo.signal`); a filterbank's bands and an STFT's bins are a
new leading axis, or the channel axis of a (T,) signal.

References
----------
M. R. Schroeder, "New method of measuring reverberation time", JASA 37(3), 1965
(backward integration of the squared impulse response).
J.-M. Jot, "An analysis/synthesis approach to real-time artificial reverberation", ICASSP 1992
(energy decay relief: Schroeder integration per time-frequency bin).
"""

from __future__ import annotations

import math

import torch

from ..functional.filterbank import band_masks
from ..signal import time_first, time_last

__all__ = ["schroeder_edc", "to_db", "octave_band_masks", "octave_filterbank", "edr", "stft",
           "t60_from_edc", "noise_floor_cut", "OCTAVE_CENTERS"]

#: Nominal octave-band centre frequencies [Hz] (IEC 61260 base-2 series).
OCTAVE_CENTERS = (31.25, 62.5, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)


def to_db(power: torch.Tensor, floor_db: float = -200.0) -> torch.Tensor:
    """10 log10(power), clamped below at ``floor_db`` dB so that zeros stay finite."""
    return 10 * torch.log10(power.clamp_min(10 ** (floor_db / 10)))


def schroeder_edc(h: torch.Tensor, normalize: bool = True, db: bool = False) -> torch.Tensor:
    """Energy decay curve by Schroeder backward integration, EDC[n] = sum_{k >= n} h[k]^2.

    Parameters
    ----------
    h : torch.Tensor
        (T,) or (..., T, C) real impulse responses, time first.
    normalize : bool, default True
        Divide by EDC[0] (the total energy) so the curve starts at 1 (0 dB).
    db : bool, default False
        Return 10 log10(EDC) in dB instead of linear energy.

    Returns
    -------
    torch.Tensor
        Decay curves shaped like ``h``, non-increasing in n.
    """
    x = time_last(h, "schroeder_edc", "h")
    return time_first(_backward_integral(x * x, normalize, db))


def _backward_integral(power, normalize, db):
    """sum_{k >= n} power[k] along the last dim, optionally normalized and in dB."""
    energy = torch.flip(torch.cumsum(torch.flip(power, (-1,)), dim=-1), (-1,))
    if normalize:
        energy = energy / energy[..., :1].clamp_min(torch.finfo(energy.dtype).tiny)
    return to_db(energy) if db else energy


def octave_band_masks(n_freqs: int, fs: float, centers=OCTAVE_CENTERS, fraction: int = 1,
                      dtype=torch.float32, device="cpu") -> torch.Tensor:
    """Complementary zero-phase band masks on the rfft bins 0..fs/2
    (:func:`flamo.functional.band_masks` at those bins).

    Adjacent bands cross over between their centres with cos^2 / sin^2 in log-frequency, so
    the masks sum to 1 at every frequency (the lowest band extends to DC, the highest to
    Nyquist). A signal split with them is reconstructed exactly
    by summing the bands, and each band is a linear-phase (zero-phase) filter, so EDCs per band
    are free of filter phase distortion. Band edges follow from the centres, not from
    ``fraction``; ``fraction`` only labels the spacing for error messages.

    Parameters
    ----------
    n_freqs : int
        Number of rfft bins, nfft // 2 + 1.
    fs : float
        Sample rate [Hz].
    centers : sequence of float
        Increasing band centre frequencies [Hz], below fs / 2.
    fraction : int, default 1
        1 for octaves, 3 for third octaves (informational).

    Returns
    -------
    torch.Tensor
        (n_freqs, bands) real masks in [0, 1], frequency first.
    """
    centers = [float(c) for c in centers]
    if not centers or any(b <= a for a, b in zip(centers, centers[1:])) or centers[0] <= 0:
        raise ValueError(f"octave_band_masks: centers must be positive and increasing, got {centers}")
    if centers[-1] >= fs / 2:
        raise ValueError(f"octave_band_masks: highest centre {centers[-1]} Hz must be below "
                         f"fs/2 = {fs / 2} Hz (1/{fraction}-octave bands)")
    f = torch.linspace(0, fs / 2, n_freqs, dtype=torch.float64)
    return band_masks(f, centers).to(dtype=dtype, device=device)


def octave_filterbank(x: torch.Tensor, fs: float, centers=OCTAVE_CENTERS) -> torch.Tensor:
    """Split signals into bands with :func:`octave_band_masks` (applied in the frequency domain).

    Parameters
    ----------
    x : torch.Tensor
        (T,) or (..., T, C) real signals, time first.
    fs : float
        Sample rate [Hz].
    centers : sequence of float
        Band centres [Hz].

    Returns
    -------
    torch.Tensor
        (bands, ..., T, C) band signals, or (T, bands) for a (T,) signal (its bands become
        its channels); their sum over bands equals ``x`` (up to rounding). The FFT length
        is 2T, so the zero-phase band filters wrap around less.
    """
    x = time_last(x, "octave_filterbank")
    n = x.shape[-1]
    spectrum = torch.fft.rfft(x, n=2 * n, dim=-1)  # (..., n + 1)
    masks = octave_band_masks(n + 1, fs, centers, dtype=x.dtype, device=x.device)  # (n + 1, B)
    banded = spectrum * masks.T.reshape(masks.shape[1], *[1] * (x.ndim - 1), n + 1)
    bands = torch.fft.irfft(banded, n=2 * n, dim=-1)  # (B, ..., 2n)
    return time_first(bands[..., :n])


def edr(x: torch.Tensor, n_fft: int = 1024, hop: int | None = None, normalize: bool = True,
        db: bool = True) -> torch.Tensor:
    """Energy decay relief: Schroeder integration of the STFT power in every frequency bin.

    Parameters
    ----------
    x : torch.Tensor
        (T,) or (..., T, C) real signals, time first, T >= n_fft // 2.
    n_fft : int
        STFT frame length [samples] (Hann window).
    hop : int, optional
        Hop size [samples], default n_fft // 4.
    normalize : bool
        Normalize each bin by its total energy (the EDR then starts at 0 dB in every bin).
    db : bool
        Return dB.

    Returns
    -------
    torch.Tensor
        (n_fft // 2 + 1, ..., frames, C) decay relief, or (frames, n_fft // 2 + 1) for a
        (T,) signal: frames are its time axis, bins a new leading axis (see :func:`stft`).
    """
    power = _stft_time_last(x, n_fft, hop, "edr").abs().square()  # (..., bins, frames)
    return time_first(_backward_integral(power, normalize, db).movedim(-2, 0))


def stft(x: torch.Tensor, n_fft: int, hop: int | None = None) -> torch.Tensor:
    """Complex STFT of real signals, Hann window, centred frames with zero padding.

    Parameters
    ----------
    x : torch.Tensor
        (T,) or (..., T, C) real signals, time first, T >= n_fft // 2.
    n_fft : int
        Frame length [samples].
    hop : int, optional
        Hop size [samples], default n_fft // 4.

    Returns
    -------
    torch.Tensor
        (n_fft // 2 + 1, ..., frames, C) complex, the bins a new leading axis and the frames
        the time axis, or (frames, n_fft // 2 + 1) for a (T,) signal.
    """
    return time_first(_stft_time_last(x, n_fft, hop, "stft").movedim(-2, 0))


def _stft_time_last(x, n_fft, hop, owner):
    """torch.stft of a time-first signal: (..., bins, frames), rows of (..., C) leading."""
    hop = n_fft // 4 if hop is None else hop
    if n_fft < 2 or hop < 1:
        raise ValueError(f"{owner}: need n_fft >= 2 and hop >= 1, got n_fft={n_fft}, hop={hop}")
    x = time_last(x, owner, min_length=n_fft // 2)
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    spec = torch.stft(flat, n_fft, hop_length=hop, window=window, center=True,
                      pad_mode="constant", return_complex=True)  # (rows, bins, frames)
    return spec.reshape(*lead, *spec.shape[-2:])


def t60_from_edc(edc_db: torch.Tensor, fs: float, start_db: float = -5.0,
                 stop_db: float = -35.0) -> torch.Tensor:
    """Reverberation time from an EDC in dB by a least-squares line between two levels.

    The slope of the EDC between ``start_db`` and ``stop_db`` (default: T30 range) is
    extrapolated to a 60 dB decay (ISO 3382-1).

    Parameters
    ----------
    edc_db : torch.Tensor
        (T,) or (..., T, C) normalized EDCs in dB (starting at 0 dB), time first.
    fs : float
        Sample rate [Hz].

    Returns
    -------
    torch.Tensor
        T60 in seconds: a scalar for a (T,) curve, (..., C) for (..., T, C). Not
        differentiable with respect to the level crossings.
    """
    if not stop_db < start_db <= 0:
        raise ValueError(f"t60_from_edc: need stop_db < start_db <= 0, got {stop_db}, {start_db}")
    edc_db = time_last(edc_db, "t60_from_edc", "edc_db", min_length=2)
    t = torch.arange(edc_db.shape[-1], dtype=edc_db.dtype, device=edc_db.device) / fs
    mask = ((edc_db <= start_db) & (edc_db >= stop_db)).to(edc_db.dtype)
    count = mask.sum(-1).clamp_min(2)
    t_mean = (mask * t).sum(-1) / count
    e_mean = (mask * edc_db).sum(-1) / count
    dt = (t - t_mean[..., None]) * mask
    slope = (dt * (edc_db - e_mean[..., None])).sum(-1) / (dt * dt).sum(-1).clamp_min(1e-30)
    return -60.0 / slope


def noise_floor_cut(h: torch.Tensor, fs: float, window_s: float = 0.05, margin_db: float = 5.0,
                    tail: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each channel's decay meets its noise floor, and how far its peak stands above it.

    The response is split into consecutive windows of ``window_s`` seconds. The noise floor
    is the mean energy of the last ``tail`` share of the windows; the cut is the start of
    the first window after the energy peak whose energy is within ``margin_db`` of the floor
    (the intersection point of Lundeby et al., "Uncertainties of measurements in room
    acoustics", Acustica 81, 1995, first pass). Integrating a Schroeder curve only up to the
    cut keeps the noise from flattening it (ISO 3382-1, truncation without compensation: a
    T60 read from it is slightly short). The floor is the mean of the last windows, so one
    of them always comes within the margin: a response without a noise floor (noise-free,
    decaying to its end) is cut near its end, and only a large ``dynamic_range_db`` says
    that a channel has a decay above a floor at all.

    Parameters
    ----------
    h : torch.Tensor
        (T,) or (T, C) real impulse response(s), time first.
    fs : float
        Sample rate [Hz].
    window_s : float, default 0.05
        Window length [s]; at least one sample.
    margin_db : float, default 5.0
        How close to the floor the energy must come [dB], >= 0.
    tail : float, default 0.1
        Share of the windows, at the end, that estimates the floor, in (0, 1].

    Returns
    -------
    cut : torch.Tensor of int64
        () or (C,): first sample to discard in each channel (T if no window after the
        peak comes within the margin).
    dynamic_range_db : torch.Tensor
        () or (C,): peak window energy over the noise floor [dB].

    Examples
    --------
    >>> t = torch.arange(48000) / 48000.0
    >>> h = torch.randn(48000, generator=torch.Generator().manual_seed(0))
    >>> h = h * 10 ** (-3 * t / 0.2) + 1e-3 * torch.randn(48000, generator=torch.Generator().manual_seed(1))
    >>> cut, dr = noise_floor_cut(h, 48000.0)  # 60 dB per 0.2 s down to noise at -60 dB
    >>> cut.item() / 48000, round(dr.item())  # the 50 ms window after floor + 5 dB
    (0.2, 55)
    """
    owner = "noise_floor_cut"
    if not (isinstance(fs, (int, float)) and math.isfinite(fs) and fs > 0):
        raise ValueError(f"{owner}: fs must be a positive finite sample rate in Hz, got {fs!r}")
    if not (isinstance(window_s, (int, float)) and math.isfinite(window_s) and window_s * fs >= 0.5):
        raise ValueError(f"{owner}: window_s must be at least one sample ({0.5 / fs:g} s), got {window_s!r}")
    if not (isinstance(margin_db, (int, float)) and math.isfinite(margin_db) and margin_db >= 0):
        raise ValueError(f"{owner}: margin_db must be a finite number >= 0 dB, got {margin_db!r}")
    if not (isinstance(tail, (int, float)) and 0 < tail <= 1):
        raise ValueError(f"{owner}: tail must be in (0, 1], got {tail!r}")
    x = time_last(h, owner, "h")
    if x.dim() > 2:
        raise ValueError(f"{owner}: h must be (T,) or (T, C), got shape {tuple(h.shape)}")
    x = x.detach()
    n = max(1, int(round(window_s * fs)))
    length = x.shape[-1]
    if length < n:
        raise ValueError(f"{owner}: h has {length} samples, fewer than one window of {n} "
                         f"(window_s = {window_s} s at fs = {fs} Hz)")
    if not torch.isfinite(x).all():
        raise ValueError(f"{owner}: h has non-finite samples")
    energy = (x[..., : length // n * n].reshape(*x.shape[:-1], -1, n) ** 2).mean(-1)
    tiny = torch.finfo(energy.dtype).tiny
    floor = energy[..., -max(1, int(tail * energy.shape[-1])):].mean(-1).clamp_min(tiny)
    peak = energy.argmax(-1, keepdim=True)
    index = torch.arange(energy.shape[-1], device=energy.device)
    near = (energy <= floor[..., None] * 10 ** (margin_db / 10)) & (index >= peak)
    first = torch.where(near, index, energy.shape[-1]).amin(-1)
    cut = torch.where(first < energy.shape[-1], first * n, length)
    dynamic_range = 10 * torch.log10(energy.amax(-1).clamp_min(tiny) / floor)
    return cut, dynamic_range
