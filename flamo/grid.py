"""Where systems are evaluated: explicit points z, and the FFT grid.

Every module is a transfer matrix H(z); an evaluation samples it at M points. Two kinds of
point sets exist, and every module, system and response function accepts both:

- :class:`Points`: any M nonzero complex points (like ``worN`` in scipy.signal.freqz), e.g.
  a minibatch of random frequencies on the unit circle, or points inside it;
- :class:`Grid`, the points of the inverse FFT: z_k = exp(1j * omega_k) / gamma,
  omega_k = 2 pi k / nfft, k = 0 .. M - 1 with M = nfft // 2 + 1. With gamma = 1 they lie on
  the unit circle and the inverse FFT returns the impulse response aliased in time,
  h_M[n] = sum_k h[n + k nfft]. With 0 < gamma < 1 they lie on the circle of radius
  1 / gamma; the inverse FFT then returns h[n] gamma^n (plus aliases), and multiplying by
  gamma^-n gives h[n] + sum_{k >= 1} gamma^(k nfft) h[n + k nfft], so every wrap is
  attenuated by ``alias_decay_db`` (Dal Santo et al., "FLAMO", ICASSP 2025). Only a Grid
  supports the time domain (impulse responses, filtering signals).

The points belong to the evaluation, not to the modules: the settings an evaluation needs
(points, dtype, sample rate) are carried by one object passed down the system, so a trained
system can be evaluated at another resolution or at other points.

A point set knows its own geometry, so it supplies the two primitives that response functions
are built from, computed to float64 accuracy: the monomials z^-m (:meth:`Points.inverse_powers`)
and polynomials sum_n c_n z^-n (:meth:`Points.polynomial`). A Grid computes them exactly from
its integer structure (delay phases 2 pi ((k m) mod nfft) / nfft, polynomials by one FFT);
explicit points directly. Each point set also keeps a per-device cache of constant tensors
derived from its points (:meth:`Points.cached`).
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = ["Points", "Grid", "as_points"]

_REAL_DTYPES = {torch.float32: torch.complex64, torch.float64: torch.complex128}

# Complex values per block of a polynomial evaluated at explicit points (bounds the
# (taps, M) table of z^-n held at once).
_POLYNOMIAL_BLOCK = 2 ** 20


def _check_fs(owner, fs, allow_none):
    if fs is None and allow_none:
        return None
    if (isinstance(fs, bool) or not isinstance(fs, numbers.Real) or not math.isfinite(fs)
            or fs <= 0):
        raise ValueError(f"{owner}: fs must be a finite number > 0 Hz, got {fs!r}")
    return float(fs)


def _check_dtype(owner, dtype):
    if dtype not in _REAL_DTYPES:
        raise TypeError(f"{owner}: dtype must be torch.float32 or torch.float64, got {dtype}")
    return dtype


class Points:
    """Explicit evaluation points: a system sampled at any nonzero complex z.

    Parameters
    ----------
    z : array_like
        (M,) complex points (real values are taken as points on the real axis), finite and
        nonzero. They are constants of the evaluation (no gradient flows to them).
    fs : float, optional
        Sample rate in Hz, needed by modules whose parameters are in Hz (filters designed
        from frequencies, attenuation from T60); those raise ValueError without it.
    dtype : torch.dtype, optional
        Real dtype of the evaluation, ``torch.float32`` or ``torch.float64``; responses use
        the matching complex dtype. Default: float64 for complex128 or float64 ``z``, else
        float32.

    Attributes
    ----------
    M : int
        Number of points.

    Examples
    --------
    >>> import math, torch, flamo
    >>> z = torch.exp(1j * torch.tensor([0.0, math.pi / 2], dtype=torch.float64))
    >>> points = flamo.Points(z, fs=48000)
    >>> points.M, points.dtype
    (2, torch.float64)
    >>> h = flamo.Delay([1.0]).response(points)[:, 0, 0]  # z^-1 at each point
    >>> torch.allclose(h, 1 / z)
    True
    """

    def __init__(self, z, fs=None, dtype=None):
        values = torch.as_tensor(z)
        if values.dtype == torch.bool or not (values.is_complex() or values.is_floating_point()):
            raise TypeError(f"Points: z must hold complex or real floating values, got dtype "
                            f"{values.dtype}")
        if dtype is None:
            dtype = torch.float64 if values.dtype in (torch.complex128, torch.float64) else torch.float32
        values = values.detach().to(torch.complex128)
        if values.ndim != 1 or values.numel() == 0:
            raise ValueError(f"Points: z must be a non-empty 1-D tensor of points, got shape "
                             f"{tuple(values.shape)}")
        if not torch.isfinite(values).all():
            raise ValueError("Points: z must be finite, got non-finite values")
        if (values == 0).any():
            raise ValueError("Points: z must be nonzero (z^-1, the unit delay, is infinite at 0)")
        self._values = values
        self._settings(fs, dtype, values.device, "Points", allow_no_fs=True)

    def _settings(self, fs, dtype, device, owner, allow_no_fs):
        self.fs = _check_fs(owner, fs, allow_no_fs)
        self.dtype = _check_dtype(owner, dtype)
        self.device = torch.device(device)
        self._cache = {}

    # -- sizes and dtypes ------------------------------------------------------------
    @property
    def M(self) -> int:
        """Number of points."""
        return self._values.numel()

    def __len__(self):
        return self.M

    @property
    def complex_dtype(self) -> torch.dtype:
        """Complex dtype matching ``dtype``."""
        return _REAL_DTYPES[self.dtype]

    @property
    def z(self) -> torch.Tensor:
        """(M,) complex tensor of the points, in ``complex_dtype`` on ``device``."""
        return self.cached(_z_values)

    # -- the per-device cache ----------------------------------------------------------
    def cached(self, compute, device=None) -> torch.Tensor:
        """``compute(self)`` moved to ``device`` (default: the points' own), computed once.

        Parameters
        ----------
        compute : callable
            A module-level function ``compute(points) -> torch.Tensor`` of the points only;
            the function itself is the cache key, so pass the same function every time
            (never a lambda made per call).
        device : torch.device or str, optional

        Notes
        -----
        Cached tensors are constants (no autograd history), so caching them never breaks a
        second backward pass. A point set is cheap to make; its cache lives as long as it.
        """
        device = self.device if device is None else torch.device(device)
        key = (compute, device)
        if key not in self._cache:
            self._cache[key] = compute(self).detach().to(device)
        return self._cache[key]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    # -- the two primitives of every response ----------------------------------------
    def inverse_powers(self, exponent: torch.Tensor) -> torch.Tensor:
        """z^-m at every point for real exponents m, in complex128.

        Parameters
        ----------
        exponent : torch.Tensor
            (..., N) real exponents (delay lengths in samples; may be fractional and may
            require grad).

        Returns
        -------
        torch.Tensor
            (..., M, N) complex128 on the device of ``exponent``: z_k^-m = |z_k|^-m
            exp(-1j m arg z_k), with the phase m arg z_k reduced modulo 2 pi in float64.
            Differentiable with respect to m: d z^-m / dm = -log(z) z^-m.
        """
        log_z = self.cached(_log_values, exponent.device)  # (M,) complex128
        m = exponent.to(torch.float64).unsqueeze(-2)  # (..., 1, N)
        phase = torch.remainder(log_z.imag.unsqueeze(-1) * m, 2 * math.pi)
        magnitude = torch.exp(-log_z.real.unsqueeze(-1) * m)
        return torch.polar(magnitude, -phase)

    def polynomial(self, coefficients: torch.Tensor) -> torch.Tensor:
        """sum_n c_n z^-n at every point, for coefficients c_0 .. c_{L-1} along the last dim.

        Parameters
        ----------
        coefficients : torch.Tensor
            (..., L) real coefficients (may require grad).

        Returns
        -------
        torch.Tensor
            (..., M) in ``complex_dtype``: the powers z^-n are formed in float64 and the sum
            is a real matrix product in ``dtype``, in blocks of taps.
        """
        c = coefficients.to(self.dtype)
        length = c.shape[-1]
        step = max(1, _POLYNOMIAL_BLOCK // self.M)
        total = None
        for start in range(0, length, step):
            n = torch.arange(start, min(start + step, length), dtype=torch.float64,
                             device=c.device)
            powers = self.inverse_powers(n).to(self.complex_dtype)  # (M, l)
            pairs = torch.view_as_real(powers.transpose(0, 1)).flatten(-2)  # (l, 2M)
            part = c[..., start:start + step] @ pairs
            total = part if total is None else total + part
        return torch.view_as_complex(total.unflatten(-1, (self.M, 2)))

    # -- Hz and error messages -------------------------------------------------------
    def require_fs(self, owner: str) -> float:
        """The sample rate in Hz, or ValueError naming ``owner`` when the points have none."""
        if self.fs is None:
            raise ValueError(f"{owner}: its parameters are in Hz, so the evaluation needs a "
                             f"sample rate: use a Grid (fs=...) or Points(z, fs=...) / "
                             f"probe(z, fs=...)")
        return self.fs

    def hz_to_rad(self, f):
        """Convert frequencies in Hz to radians per sample (2 pi f / fs)."""
        return 2 * math.pi * f / self.require_fs("hz_to_rad")

    def point_label(self, k: int) -> str:
        """Human-readable name of point ``k``, for error messages."""
        z = complex(self._values[k])
        return f"point {k} (z = {z.real:.6g}{z.imag:+.6g}j)"

    def __repr__(self):
        fs = "None" if self.fs is None else f"{self.fs:g}"
        return f"Points(M={self.M}, fs={fs}, dtype={self.dtype}, device={self.device})"


def _z_values(points):
    return points._values.to(points.complex_dtype)


def _log_values(points):
    return torch.log(points._values)


def as_points(where, owner: str = "as_points", name: str = "points") -> Points:
    """A point set from a :class:`Points` (or :class:`Grid`) or from a tensor of points z.

    Response functions accept either, like scipy's ``worN``: a 1-D tensor z becomes
    ``Points(z)`` (dtype from z, no sample rate). ``owner`` and ``name`` (the caller and its
    argument) are named in the TypeError for anything else.
    """
    if isinstance(where, Points):
        return where
    if isinstance(where, torch.Tensor):
        return Points(where)
    raise TypeError(f"{owner}: {name} must be a flamo.Grid, flamo.Points or a 1-D tensor of "
                    f"points z, got {type(where).__name__} {where!r:.60}")


class Grid(Points):
    """Frequency-sampling grid: the M = nfft // 2 + 1 points of the inverse FFT.

    Parameters
    ----------
    nfft : int
        FFT length in samples (>= 2). It is also the length of every impulse response
        computed on this grid.
    fs : float, default 48000
        Sample rate in Hz (> 0): converts between Hz and radians per sample, for ``freqs``
        and for modules whose parameters are in Hz.
    alias_decay_db : float, default 0.0
        Attenuation of each time-aliased copy of the impulse response, in dB (>= 0).
        0 samples on the unit circle (no anti-aliasing). A value whose compensation
        gamma^-n overflows the dtype raises ValueError; one above
        :func:`flamo.aliasing.max_alias_decay_db` (rounding noise above 1 % of the response)
        warns with :class:`flamo.exceptions.PrecisionWarning`.
    dtype : torch.dtype, default torch.float32
        Real dtype of the evaluation, ``torch.float32`` or ``torch.float64``. Responses
        use the matching complex dtype.
    device : torch.device or str, default "cpu"
        Device of the tensors returned by the properties (``omega``, ``z``, ...).
        Modules ask for grid tensors on their own device (:meth:`cached`), so one grid
        serves modules on any device.

    Attributes
    ----------
    M : int
        Number of frequency points, ``nfft // 2 + 1``, covering [0, pi].
    gamma : float
        Sampling radius factor ``10 ** (-alias_decay_db / (20 * nfft))`` in (0, 1].

    Examples
    --------
    >>> import flamo
    >>> grid = flamo.Grid(nfft=8, fs=48000)
    >>> grid.M, grid.freqs.tolist()
    (5, [0.0, 6000.0, 12000.0, 18000.0, 24000.0])
    >>> grid.replace(nfft=16, alias_decay_db=30.0).M  # a new grid; ``grid`` is unchanged
    9
    """

    def __init__(self, nfft, fs=48000.0, alias_decay_db=0.0, dtype=torch.float32, device="cpu"):
        if isinstance(nfft, bool) or not isinstance(nfft, numbers.Integral):
            raise TypeError(f"Grid: nfft must be an int, got {type(nfft).__name__} {nfft!r}")
        if nfft < 2:
            raise ValueError(f"Grid: nfft must be >= 2, got {nfft}")
        if (not isinstance(alias_decay_db, numbers.Real) or not math.isfinite(alias_decay_db)
                or alias_decay_db < 0):
            raise ValueError(
                f"Grid: alias_decay_db must be a finite number >= 0 dB (gamma in (0, 1]), "
                f"got {alias_decay_db!r}")
        self.nfft = int(nfft)
        self.alias_decay_db = float(alias_decay_db)
        self._settings(fs, dtype, device, "Grid", allow_no_fs=False)
        self._check_precision()

    def _check_precision(self):
        """Refuse an alias_decay_db whose compensation gamma^-n overflows the dtype (the
        impulse response would be inf/NaN) and warn above what the dtype carries
        (:func:`flamo.aliasing.max_alias_decay_db`)."""
        from . import aliasing  # aliasing imports the functional package, which imports this module
        from .exceptions import PrecisionWarning, warn

        largest = self.alias_decay_db * (self.nfft - 1) / self.nfft / 20  # log10 gamma^-(nfft - 1)
        if largest >= math.log10(torch.finfo(self.dtype).max):
            raise ValueError(
                f"Grid: alias_decay_db={self.alias_decay_db:g} needs a compensation gamma^-n up to "
                f"1e{largest:.0f}, beyond {self.dtype}'s range: impulse responses would be inf/NaN. "
                f"Use at most {aliasing.max_alias_decay_db(self.nfft, self.dtype):g} dB for this "
                f"nfft and dtype (see flamo.recommend_alias_decay_db)")
        limit = aliasing.max_alias_decay_db(self.nfft, self.dtype)
        if self.alias_decay_db > limit:
            bound = float(aliasing.rounding_error_bound(self.nfft, self.alias_decay_db, self.dtype))
            warn(f"Grid: alias_decay_db={self.alias_decay_db:g} is more than {self.dtype} carries at "
                 f"nfft={self.nfft}: the compensation gamma^-n amplifies its rounding noise to up to "
                 f"{bound:.3g} of the impulse response (relative L2, for a response that does not "
                 f"grow; tolerance {aliasing.MAX_ROUNDING_ERROR:g} at {limit:g} dB). Use "
                 f"flamo.recommend_alias_decay_db, a smaller value or float64",
                 PrecisionWarning)

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

    # -- tensors on the grid's own device --------------------------------------------
    @property
    def omega(self) -> torch.Tensor:
        """(M,) real tensor: angular frequencies in radians per sample, 2 pi k / nfft."""
        return self.cached(_grid_omega)

    @property
    def freqs(self) -> torch.Tensor:
        """(M,) real tensor: frequencies in Hz, k fs / nfft."""
        return self.cached(_grid_freqs)

    @property
    def z(self) -> torch.Tensor:
        """(M,) complex tensor: sampling points exp(1j omega) / gamma."""
        return self.cached(_grid_z)

    # -- the primitives, from the integer structure of the grid ----------------------
    def inverse_powers(self, exponent: torch.Tensor) -> torch.Tensor:
        """z_k^-m = gamma^m exp(-1j omega_k m), (..., N) -> (..., M, N) complex128.

        The phase omega_k m of a long delay is large (up to pi m), so it is formed as
        2 pi ((k m) mod nfft) / nfft in float64: exact for integer m, and for fractional m
        accurate to float64. Differentiable w.r.t. m with d z^-m / dm = (log(gamma) -
        1j omega) z^-m.
        """
        m = exponent.to(torch.float64).unsqueeze(-2)  # (..., 1, N)
        k = torch.arange(self.M, dtype=torch.float64, device=m.device).unsqueeze(-1)  # (M, 1)
        phase = (2 * math.pi / self.nfft) * torch.remainder(k * m, self.nfft)
        magnitude = torch.exp(self.log_gamma * m).expand_as(phase)
        return torch.polar(magnitude, -phase)

    def polynomial(self, coefficients: torch.Tensor) -> torch.Tensor:
        """sum_n c_n z_k^-n by one FFT, (..., L) -> (..., M) in ``complex_dtype``.

        At z_k = exp(1j omega_k) / gamma, z_k^-n = gamma^n exp(-1j 2 pi k n / nfft), so the
        values are the DFT of c_n gamma^n: ``torch.fft.rfft`` with zero padding to nfft.
        Longer coefficient vectors are first folded modulo nfft, c_f[r] = sum_q c[r + q nfft]
        gamma^(r + q nfft), because exp(-1j 2 pi k n / nfft) has period nfft in n: exact at
        every grid point (the time aliasing the grid implies, not an approximation).
        """
        length = coefficients.shape[-1]
        n = torch.arange(length, dtype=torch.float64, device=coefficients.device)
        weighted = coefficients.to(self.dtype) * torch.exp(self.log_gamma * n).to(self.dtype)
        if length > self.nfft:
            blocks = -(-length // self.nfft)
            weighted = torch.nn.functional.pad(weighted, (0, blocks * self.nfft - length))
            weighted = weighted.reshape(*weighted.shape[:-1], blocks, self.nfft).sum(-2)
        return torch.fft.rfft(weighted, n=self.nfft, dim=-1).to(self.complex_dtype)

    # -- conversions ----------------------------------------------------------------
    def point_label(self, k: int) -> str:
        return f"bin k={k} ({k * self.fs / self.nfft:.3f} Hz)"

    def replace(self, **changes) -> "Grid":
        """A new grid with some settings changed, e.g. ``grid.replace(nfft=2**18)``."""
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

    def __repr__(self):
        return (f"Grid(nfft={self.nfft}, fs={self.fs:g}, alias_decay_db={self.alias_decay_db:g}, "
                f"dtype={self.dtype}, device={self.device})")


# Grid tensors are computed in float64 and then cast, so float32 grids get correctly rounded
# values.
def _grid_omega(grid):
    k = torch.arange(grid.M, dtype=torch.float64)
    return (2 * math.pi / grid.nfft * k).to(grid.dtype)


def _grid_freqs(grid):
    k = torch.arange(grid.M, dtype=torch.float64)
    return (grid.fs / grid.nfft * k).to(grid.dtype)


def _grid_z(grid):
    k = torch.arange(grid.M, dtype=torch.float64)
    z = torch.polar(torch.full_like(k, math.exp(-grid.log_gamma)), 2 * math.pi / grid.nfft * k)
    return z.to(grid.complex_dtype)
