"""Private stable peak-filter (parametric EQ band) parametrization for the optim tools.

A stop-gap until the module catalogue lands a proper PEQ module: the examples and
experiments of :mod:`flamo.optim` need a biquad whose raw parameters map to a centre
frequency, a gain and a Q, and that stays stable for any raw value. Replace with the
catalogue's PEQ once it exists.

Peak filter of the Audio EQ Cookbook (R. Bristow-Johnson): with A = 10^(g/40),
w0 = 2 pi f0 / fs, alpha = sin(w0) / (2 Q),
b = [1 + alpha A, -2 cos w0, 1 - alpha A], a = [1 + alpha / A, -2 cos w0, 1 - alpha / A].
Its poles have radius^2 = (1 - alpha/A) / (1 + alpha/A) < 1 whenever alpha / A > 0, i.e. for
every f0 in (0, fs/2), Q > 0 and finite gain: the sigmoid mappings below keep it stable.
"""

from __future__ import annotations

import math

import torch

from ..modules.sos import SOS


class PeakMapping:
    """Raw (..., K, 3) [u_f, u_g, u_q] -> sections (..., K, 6) of K peak filters.

    f0 = f_min (f_max / f_min)^sigmoid(u_f)   [Hz]  (log-uniform in the raw value)
    g  = g_max tanh(u_g)                        [dB]
    Q  = q_min (q_max / q_min)^sigmoid(u_q)
    """

    def __init__(self, fs: float, f_min: float = 20.0, f_max: float | None = None,
                 g_max: float = 18.0, q_min: float = 0.3, q_max: float = 10.0):
        self.fs = float(fs)
        self.f_min, self.f_max = float(f_min), float(f_max if f_max is not None else 0.45 * fs)
        if not 0 < self.f_min < self.f_max < self.fs / 2:
            raise ValueError(f"PeakMapping: need 0 < f_min < f_max < fs/2, got {self.f_min}, "
                             f"{self.f_max}, fs={self.fs}")
        self.g_max, self.q_min, self.q_max = float(g_max), float(q_min), float(q_max)

    def physical(self, raw: torch.Tensor):
        """(f0 [Hz], gain [dB], Q), each (..., K)."""
        f0 = self.f_min * (self.f_max / self.f_min) ** torch.sigmoid(raw[..., 0])
        gain = self.g_max * torch.tanh(raw[..., 1])
        q = self.q_min * (self.q_max / self.q_min) ** torch.sigmoid(raw[..., 2])
        return f0, gain, q

    def inverse(self, f0, gain, q) -> torch.Tensor:
        """Raw (..., K, 3) for physical values (each (..., K))."""
        f0, gain, q = (torch.as_tensor(v, dtype=torch.get_default_dtype()) for v in (f0, gain, q))
        u_f = torch.logit(torch.log(f0 / self.f_min) / math.log(self.f_max / self.f_min))
        u_g = torch.atanh(gain / self.g_max)
        u_q = torch.logit(torch.log(q / self.q_min) / math.log(self.q_max / self.q_min))
        return torch.stack([u_f, u_g, u_q], dim=-1)

    def __call__(self, raw: torch.Tensor) -> torch.Tensor:
        f0, gain, q = self.physical(raw)
        amp = 10 ** (gain / 40)
        w0 = 2 * math.pi * f0 / self.fs
        alpha = torch.sin(w0) / (2 * q)
        c = -2 * torch.cos(w0)
        a0 = 1 + alpha / amp
        # normalized by a0 so the sections are in the [b0 b1 b2 1 a1 a2] form of flamo.SOS
        return torch.stack([(1 + alpha * amp) / a0, c / a0, (1 - alpha * amp) / a0,
                            torch.ones_like(a0), c / a0, (1 - alpha / amp) / a0], dim=-1)

    def __repr__(self):
        return (f"PeakMapping(fs={self.fs:g}, f=[{self.f_min:g}, {self.f_max:g}] Hz, "
                f"|g|<{self.g_max:g} dB, Q=[{self.q_min:g}, {self.q_max:g}])")


def peak_cascade(f0, gain_db, q, fs: float, learnable: bool = True, **mapping_kwargs) -> SOS:
    """A flamo.SOS of K peak filters whose raw parameter is (K, 3) [u_f, u_g, u_q].

    Built with flamo.SOS(mapping=PeakMapping) and its raw parameter replaced by the
    (K, 3) peak parameters (flamo.SOS stores normalized coefficients by default).
    """
    mapping = PeakMapping(fs, **mapping_kwargs)
    raw = mapping.inverse(f0, gain_db, q)
    if raw.ndim != 2:
        raise ValueError(f"peak_cascade: f0, gain_db, q must be (K,), got raw shape {tuple(raw.shape)}")
    module = SOS(mapping(raw).detach(), mapping=mapping, learnable=learnable)
    del module.raw
    if learnable:
        module.raw = torch.nn.Parameter(raw)
    else:
        module.register_buffer("raw", raw)
    return module
