"""Plain torch Datasets of (input, target) pairs for fitting and hyperconditioning.

All randomness comes from an explicit seed: item i of a synthetic dataset is generated from
(seed, i), so items are reproducible and independent of the access order.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..functional.sos import sos_response
from ..signal import impulse

__all__ = ["SingleTarget", "ResponseFiles", "onset_index", "RandomSOSTargets", "RandomT60Targets"]


class SingleTarget(Dataset):
    """One (input, target) pair: a unit impulse in, the target out.

    Parameters
    ----------
    target : torch.Tensor
        Target response or signal, any shape (e.g. (nfft, out) impulse response, or (M,)
        magnitudes).
    input : torch.Tensor, optional
        Input; default a unit impulse (length, channels) with ``length``/``channels``.
    length, channels : int
        Size of the default impulse.
    """

    def __init__(self, target, input=None, length: int = 1, channels: int = 1):
        self.target = torch.as_tensor(target)
        self.input = impulse(length, channels, dtype=self.target.real.dtype) if input is None \
            else torch.as_tensor(input)

    def __len__(self):
        return 1

    def __getitem__(self, i):
        if i not in (0, -1):
            raise IndexError(f"SingleTarget has one item, got index {i}")
        return self.input, self.target


def onset_index(x: np.ndarray, threshold_db: float = -20.0) -> int:
    """First sample whose magnitude reaches ``threshold_db`` relative to the peak (x: (T, C),
    the strongest channel decides)."""
    mag = np.abs(x).max(axis=-1) if x.ndim == 2 else np.abs(x)
    peak = mag.max()
    if peak == 0:
        raise ValueError("onset_index: the signal is all zeros")
    return int(np.argmax(mag >= peak * 10 ** (threshold_db / 20)))


class ResponseFiles(Dataset):
    """Measured responses from audio files (soundfile), onset-aligned, as (impulse, target).

    Parameters
    ----------
    paths : sequence of path
        Audio files (wav, flac, ...); every file must have sample rate ``fs``.
    fs : float, optional
        Expected sample rate [Hz]; default the rate of the first file. Files at another rate
        raise ValueError (resample them beforehand).
    length : int, optional
        Keep this many samples after alignment (zero-padded if shorter); default the
        shortest aligned file.
    align_onset : bool
        Cut everything before ``pre_onset`` samples ahead of the onset (see :func:`onset_index`).
    threshold_db, pre_onset : float, int
    normalize : bool
        Scale each response to unit energy.
    channels : int, optional
        Keep the first ``channels`` channels (default all; files must agree).

    Items are ``(impulse (length, 1), target (length, channels))`` in float32.
    """

    def __init__(self, paths, fs=None, length=None, align_onset=True, threshold_db=-20.0,
                 pre_onset=0, normalize=False, channels=None):
        import soundfile as sf

        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("ResponseFiles: paths is empty")
        data = []
        for p in self.paths:
            x, rate = sf.read(str(p), dtype="float64", always_2d=True)
            fs = rate if fs is None else fs
            if rate != fs:
                raise ValueError(f"ResponseFiles: {p} has sample rate {rate} Hz, expected {fs} Hz")
            if channels is not None:
                x = x[:, :channels]
            if align_onset:
                x = x[max(0, onset_index(x, threshold_db) - int(pre_onset)):]
            if normalize:
                x = x / np.sqrt((x ** 2).sum())
            data.append(x)
        if len({x.shape[1] for x in data}) != 1:
            raise ValueError(f"ResponseFiles: files have different channel counts "
                             f"{[x.shape[1] for x in data]}; pass channels=")
        self.fs = float(fs)
        self.length = min(len(x) for x in data) if length is None else int(length)
        out = np.zeros((len(data), self.length, data[0].shape[1]))
        for i, x in enumerate(data):
            n = min(len(x), self.length)
            out[i, :n] = x[:n]
        self.targets = torch.as_tensor(out, dtype=torch.float32)

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return impulse(self.length, 1), self.targets[i]


def _item_generator(seed, i):
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(i))


class RandomSOSTargets(Dataset):
    """Random stable biquad cascades and their magnitude responses in dB.

    Each section has a conjugate pole pair of radius r ~ U(r_min, r_max) and angle ~ U(0, pi)
    and a zero pair of radius ~ U(0, 1.2) (minimum or mixed phase), as in the random-
    polynomial families of Colonel et al. (ICASSP 2022); the cascade is scaled to 0 dB mean
    level.

    Items: ``(sos (K, 6), magnitude_db (M,))`` on ``grid`` (float32).
    """

    def __init__(self, n: int, sections: int, grid, seed: int = 0, r_min: float = 0.3,
                 r_max: float = 0.98):
        if not 0 <= r_min < r_max < 1:
            raise ValueError(f"RandomSOSTargets: need 0 <= r_min < r_max < 1, got {r_min}, {r_max}")
        self.n, self.sections, self.grid, self.seed = int(n), int(sections), grid, seed
        self.r_min, self.r_max = r_min, r_max

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(f"RandomSOSTargets: index {i} out of range({self.n})")
        g = _item_generator(self.seed, i)
        k = self.sections
        rp = self.r_min + (self.r_max - self.r_min) * torch.rand(k, generator=g, dtype=torch.float64)
        tp = math.pi * torch.rand(k, generator=g, dtype=torch.float64)
        rz = 1.2 * torch.rand(k, generator=g, dtype=torch.float64)
        tz = math.pi * torch.rand(k, generator=g, dtype=torch.float64)
        one = torch.ones(k, dtype=torch.float64)
        sos = torch.stack([one, -2 * rz * torch.cos(tz), rz ** 2,
                           one, -2 * rp * torch.cos(tp), rp ** 2], dim=-1)
        mag_db = 20 * torch.log10(sos_response(sos, self.grid.replace(dtype=torch.float64)).abs())
        offset = mag_db.mean()
        sos[0, :3] *= 10 ** (-offset / 20)
        return sos.float(), (mag_db - offset).float()


class RandomT60Targets(Dataset):
    """Random reverberation-time curves over frequency bands.

    T60 in each band is log-uniform in [t_min, t_max] seconds at the lowest band and then a
    smooth random walk in log T60 (step std ``roughness`` per band), clipped to the range,
    so curves look like rooms (smooth over frequency) rather than noise.

    Items: ``(centers (bands,) Hz, t60 (bands,) s)`` (float32).
    """

    def __init__(self, n: int, centers=(125, 250, 500, 1000, 2000, 4000, 8000), seed: int = 0,
                 t_min: float = 0.2, t_max: float = 3.0, roughness: float = 0.15):
        if not 0 < t_min < t_max:
            raise ValueError(f"RandomT60Targets: need 0 < t_min < t_max, got {t_min}, {t_max}")
        self.n, self.seed = int(n), seed
        self.centers = torch.as_tensor(centers, dtype=torch.float32)
        self.t_min, self.t_max, self.roughness = t_min, t_max, roughness

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(f"RandomT60Targets: index {i} out of range({self.n})")
        g = _item_generator(self.seed, i)
        lo, hi = math.log(self.t_min), math.log(self.t_max)
        start = lo + (hi - lo) * torch.rand(1, generator=g)
        steps = self.roughness * torch.randn(len(self.centers) - 1, generator=g)
        log_t = torch.cat([start, start + torch.cumsum(steps, 0)]).clamp(lo, hi)
        return self.centers, torch.exp(log_t)
