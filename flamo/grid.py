"""The evaluation grid: where every module of a system is sampled.

A system is evaluated by sampling its transfer function H(z) at the M = nfft // 2 + 1
points z_k = exp(1j * omega_k) / gamma, omega_k = 2 pi k / nfft, k = 0 .. M - 1.
With gamma = 1 the points lie on the unit circle and the inverse FFT returns the impulse
response aliased in time, h_M[n] = sum_k h[n + k nfft]. With 0 < gamma < 1 they lie on the
circle of radius 1 / gamma; the inverse FFT then returns h[n] gamma^n (plus aliases), and
multiplying by gamma^-n gives h[n] + sum_{k >= 1} gamma^(k nfft) h[n + k nfft], so every
wrap is attenuated by ``alias_decay_db`` (Dal Santo et al., "FLAMO", ICASSP 2025).

The grid belongs to the evaluation, not to the modules: one Grid object per evaluation makes
inconsistent settings impossible and lets a trained system be evaluated at another
resolution.
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = ["Grid"]

_REAL_DTYPES = {torch.float32: torch.complex64, torch.float64: torch.complex128}


class Grid:
    """Frequency-sampling grid shared by every module of one evaluation.

    Parameters
    ----------
    nfft : int
        FFT length in samples (>= 2). It is also the length of every impulse response
        computed on this grid.
    fs : float, default 48000
        Sample rate in Hz (> 0). Used only to convert between Hz and radians per sample.
    alias_decay_db : float, default 0.0
        Attenuation of each time-aliased copy of the impulse response, in dB (>= 0).
        0 samples on the unit circle (no anti-aliasing).
    dtype : torch.dtype, default torch.float32
        Real dtype of the evaluation, ``torch.float32`` or ``torch.float64``. Responses
        use the matching complex dtype.
    device : torch.device or str, default "cpu"
        Device of the tensors returned by the properties (``omega``, ``z``, ...).
        Modules ask for grid tensors on their own device through :meth:`get`, so one
        grid serves modules on any device.

    Attributes
    ----------
    M : int
        Number of frequency points, ``nfft // 2 + 1``, covering [0, pi].
    gamma : float
        Sampling radius factor ``10 ** (-alias_decay_db / (20 * nfft))`` in (0, 1].
    """

    def __init__(self, nfft, fs=48000.0, alias_decay_db=0.0, dtype=torch.float32, device="cpu"):
        if isinstance(nfft, bool) or not isinstance(nfft, numbers.Integral):
            raise TypeError(f"Grid: nfft must be an int, got {type(nfft).__name__} {nfft!r}")
        if nfft < 2:
            raise ValueError(f"Grid: nfft must be >= 2, got {nfft}")
        if not isinstance(fs, numbers.Real) or not math.isfinite(fs) or fs <= 0:
            raise ValueError(f"Grid: fs must be a finite number > 0 Hz, got {fs!r}")
        if (not isinstance(alias_decay_db, numbers.Real) or not math.isfinite(alias_decay_db)
                or alias_decay_db < 0):
            raise ValueError(
                f"Grid: alias_decay_db must be a finite number >= 0 dB (gamma in (0, 1]), "
                f"got {alias_decay_db!r}")
        if dtype not in _REAL_DTYPES:
            raise TypeError(f"Grid: dtype must be torch.float32 or torch.float64, got {dtype}")
        self.nfft = int(nfft)
        self.fs = float(fs)
        self.alias_decay_db = float(alias_decay_db)
        self.dtype = dtype
        self.device = torch.device(device)
        self._cache = {}

    # -- derived scalars -------------------------------------------------------------
    @property
    def M(self) -> int:
        """Number of frequency points, nfft // 2 + 1."""
        return self.nfft // 2 + 1

    @property
    def gamma(self) -> float:
        """Radius factor: points are sampled on the circle of radius 1 / gamma."""
        return 10.0 ** (-self.alias_decay_db / (20.0 * self.nfft))

    @property
    def log_gamma(self) -> float:
        """Natural log of gamma, exact for tiny alias_decay_db / nfft."""
        return -self.alias_decay_db / (20.0 * self.nfft) * math.log(10.0)

    @property
    def complex_dtype(self) -> torch.dtype:
        """Complex dtype matching ``dtype``."""
        return _REAL_DTYPES[self.dtype]

    # -- tensors on the grid's own device --------------------------------------------
    @property
    def omega(self) -> torch.Tensor:
        """(M,) real tensor: angular frequencies in radians per sample, 2 pi k / nfft."""
        return self.get("omega")

    @property
    def freqs(self) -> torch.Tensor:
        """(M,) real tensor: frequencies in Hz, k fs / nfft."""
        return self.get("freqs")

    @property
    def z(self) -> torch.Tensor:
        """(M,) complex tensor: sampling points exp(1j omega) / gamma."""
        return self.get("z")

    def get(self, name: str, device=None) -> torch.Tensor:
        """Return a grid tensor on ``device`` (default: the grid's), computed once.

        Parameters
        ----------
        name : {"omega", "freqs", "z", "z_inv", "sos_basis", "envelope", "inverse_envelope"}
            ``z_inv`` is 1 / z_k, shape (M,). ``sos_basis`` is [1, u, u^2, v, v^2] with
            u = 1 - z^-1 and v = 1 + z^-1, shape (5, M): the well-conditioned basis of
            :func:`flamo.functional.sos_response`. ``envelope`` is gamma^n and
            ``inverse_envelope`` gamma^-n for n = 0 .. nfft - 1, shape (nfft,).
        device : torch.device, optional

        Notes
        -----
        Everything is computed in float64 and then cast, so float32 grids get correctly
        rounded values. Grid tensors are constants (no autograd history), so caching them
        never breaks a second backward pass.
        """
        device = self.device if device is None else torch.device(device)
        key = (name, device)
        if key not in self._cache:
            self._cache[key] = self._compute(name).to(device)
        return self._cache[key]

    def _compute(self, name):
        f64 = dict(dtype=torch.float64)
        k = torch.arange(self.M, **f64)
        n = torch.arange(self.nfft, **f64)
        if name == "omega":
            return (2 * math.pi / self.nfft * k).to(self.dtype)
        if name == "freqs":
            return (self.fs / self.nfft * k).to(self.dtype)
        if name in ("z", "z_inv"):
            sign = 1.0 if name == "z" else -1.0
            phase = torch.polar(torch.ones_like(k), sign * 2 * math.pi / self.nfft * k)
            radius = math.exp(-sign * self.log_gamma)
            return (radius * phase).to(self.complex_dtype)
        if name == "sos_basis":
            z_inv = torch.polar(torch.full_like(k, self.gamma), -2 * math.pi / self.nfft * k)
            u, v = 1 - z_inv, 1 + z_inv
            return torch.stack([torch.ones_like(u), u, u * u, v, v * v]).to(self.complex_dtype)
        if name == "envelope":
            return torch.exp(self.log_gamma * n).to(self.dtype)
        if name == "inverse_envelope":
            return torch.exp(-self.log_gamma * n).to(self.dtype)
        raise KeyError(f"Grid.get: unknown grid tensor {name!r}")

    # -- conversions ----------------------------------------------------------------
    def hz_to_rad(self, f):
        """Convert frequencies in Hz to radians per sample (2 pi f / fs)."""
        return 2 * math.pi * f / self.fs

    def with_(self, **changes) -> "Grid":
        """Return a copy with some settings changed, e.g. ``grid.with_(nfft=2**18)``."""
        kwargs = dict(nfft=self.nfft, fs=self.fs, alias_decay_db=self.alias_decay_db,
                      dtype=self.dtype, device=self.device)
        kwargs.update(changes)
        return Grid(**kwargs)

    def __eq__(self, other):
        return isinstance(other, Grid) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def _key(self):
        return (self.nfft, self.fs, self.alias_decay_db, self.dtype, self.device)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    def __repr__(self):
        return (f"Grid(nfft={self.nfft}, fs={self.fs:g}, alias_decay_db={self.alias_decay_db:g}, "
                f"dtype={self.dtype}, device={self.device})")
