"""Equalizers: parametric (shelves + peaks) and graphic (accurate cascade GEQ)."""

from __future__ import annotations

import torch
from torch import nn

from ..functional.biquads import rbj_highshelf, rbj_lowshelf, rbj_peak
from ..functional.geq import AccurateGEQ, octave_bands, third_octave_bands
from . import config_fields as cf
from .base import as_real_tensor
from .filters import Biquad, _FilterModule, check_fs_arg

__all__ = ["PEQ", "GEQ"]


class PEQ(Biquad):
    """Parametric EQ: low shelf, K peaks and high shelf in cascade (one SOS product).

    Parameters
    ----------
    freq : array_like
        (K + 2,) frequencies in Hz [low-shelf cutoff, K peak centres, high-shelf cutoff]
        for a 1 x 1 module, or (N, K + 2) for a diagonal N x N module (one EQ per channel).
    gain_db : array_like, default 0
        Gains in dB, broadcast to the shape of ``freq``.
    q : array_like, default 1/sqrt(2)
        Quality factors (> 0), broadcast to the shape of ``freq``.
    fs : float, default 48000
    learnable : bool, default True
    freq_range, q_range, gain_range_db : (float, float), optional
        Intervals of the smooth mappings, as in :class:`Biquad`.

    Notes
    -----
    Sections are RBJ second-order shelves and peaks (:mod:`flamo.functional.biquads`), so
    every pole is strictly inside the unit circle for any raw parameter value.
    """

    _freq_ndim = (1, 2)
    config_fields = {"freq": cf.Tensor((1, 2)), "gain_db": cf.Tensor((0, 1, 2)), "q": cf.Tensor((0, 1, 2)),
                     "fs": cf.Number(), "learnable": cf.Bool(), "freq_range": cf.Range(nullable=True),
                     "q_range": cf.Range(nullable=True), "gain_range_db": cf.Range(nullable=True)}

    def __init__(self, freq, gain_db=0.0, q=2 ** -0.5, fs=48000.0, learnable=True, freq_range=None,
                 q_range=None, gain_range_db=None):
        freq_t = as_real_tensor(freq, "freq", "PEQ", ndim=(1, 2))
        if freq_t.shape[-1] < 2:
            raise ValueError(f"PEQ: freq needs at least 2 bands (low shelf, high shelf) in its last "
                             f"dimension, got shape {tuple(freq_t.shape)}")
        for name, value in (("gain_db", gain_db), ("q", q)):
            t = torch.as_tensor(value)
            if t.ndim and t.shape[-1] not in (1, freq_t.shape[-1]):
                raise ValueError(f"PEQ: {name} has {t.shape[-1]} bands, freq has {freq_t.shape[-1]}")
        super().__init__("peak", freq_t, q=q, gain_db=gain_db, fs=fs, learnable=learnable,
                         freq_range=freq_range, q_range=q_range, gain_range_db=gain_range_db)
        self.diagonal = freq_t.ndim == 2

    @property
    def shape(self):
        n = self.raw_freq.shape[-2] if self.diagonal else 1
        return (n, n)

    @property
    def bands(self) -> int:
        """K + 2: number of sections."""
        return self.raw_freq.shape[-1]

    @property
    def sos(self):
        """(..., K + 2, 6) or (..., N, K + 2, 6) sections, float64."""
        f, q, g = self.freq, self.q, self.gain_db
        low = rbj_lowshelf(f[..., :1], q[..., :1], g[..., :1], self.fs)
        peaks = rbj_peak(f[..., 1:-1], q[..., 1:-1], g[..., 1:-1], self.fs)
        high = rbj_highshelf(f[..., -1:], q[..., -1:], g[..., -1:], self.fs)
        return torch.cat([low, peaks, high], dim=-2)

    def structured_response(self, points):
        return self._sos_response(self.sos, points)

    def config(self):
        """{"freq" (Hz), "gain_db" (dB), "q", "fs" (Hz), ranges, "learnable"}."""
        cfg = super().config()
        cfg["type"] = "PEQ"
        del cfg["kind"]
        return cfg

    def extra_repr(self):
        return f"bands={self.bands}, fs={self.fs:g}, " + _FilterModule.extra_repr(self)


#: Most bands a config may give: the GEQ design costs grow with the square of the bands.
MAX_CONFIG_BANDS = 256
#: Config field of band centres: a named set or a list in Hz.
CENTRES_FIELD = cf.AnyOf(cf.Choice(("octave", "third_octave")), cf.Tensor(1, max_len=MAX_CONFIG_BANDS))


def resolve_centres(owner, centres):
    """'octave' | 'third_octave' | list of Hz -> list of Hz."""
    if isinstance(centres, str):
        table = {"octave": octave_bands, "third_octave": third_octave_bands}
        if centres not in table:
            raise ValueError(f"{owner}: centres must be 'octave', 'third_octave' or a list of Hz, "
                             f"got {centres!r}")
        return table[centres]()
    return as_real_tensor(centres, "centres", owner, ndim=1).tolist()


class GEQ(_FilterModule):
    """Graphic EQ: command gains per band -> accurate cascade of band filters.

    The band filter gains follow from the command gains by the closed-form least squares of
    Valimaki & Liski, "Accurate cascade graphic equalizer", IEEE SPL 24(2), 2017 (see
    :class:`flamo.functional.AccurateGEQ`), differentiable with respect to the command gains.

    Parameters
    ----------
    command_db : array_like
        (B,) command gains in dB for a 1 x 1 module, (N, B) for a diagonal N x N module.
    centres : "octave" | "third_octave" | array_like, default "octave"
        Band centres: the 10 octaves 31.25 Hz .. 16 kHz, the 28 third octaves 31.25 Hz ..
        16 kHz, or a list in Hz (increasing, inside (0, fs/2)).
    fs : float, default 48000
    learnable : bool, default True
        Command gains (dB, identity mapping) as parameters.
    c, design_gain_db, offset : see :class:`flamo.functional.AccurateGEQ`.
        Defaults c = 0.3, 17 dB and no broadband offset, the published design.

    Notes
    -----
    Measured accuracy (tests/test_eq.py, 200 random +/-12 dB targets, fs = 48 kHz, octave):
    max band error below 1 dB, as in the paper.
    """

    config_fields = {"command_db": cf.Tensor((1, 2), max_len=MAX_CONFIG_BANDS), "centres": CENTRES_FIELD,
                     "fs": cf.Number(), "learnable": cf.Bool(), "c": cf.Number(),
                     "design_gain_db": cf.Number(), "offset": cf.Bool()}

    def __init__(self, command_db, centres="octave", fs=48000.0, learnable=True, c=0.3,
                 design_gain_db=17.0, offset=False):
        super().__init__()
        self.fs = check_fs_arg("GEQ", fs)
        self.centres = resolve_centres("GEQ", centres)
        gains = as_real_tensor(command_db, "command_db", "GEQ", ndim=(1, 2))
        if gains.shape[-1] != len(self.centres):
            raise ValueError(f"GEQ: command_db has {gains.shape[-1]} bands but there are "
                             f"{len(self.centres)} centre frequencies")
        self.design = AccurateGEQ(self.centres, self.fs, c=c, design_gain_db=design_gain_db,
                                  offset=offset)
        self.diagonal = gains.ndim == 2
        self._init_parameter("raw_command", gains, None, learnable)

    @property
    def shape(self):
        n = self.raw_command.shape[-2] if self.diagonal else 1
        return (n, n)

    @property
    def command_db(self):
        return self.raw_command

    @property
    def sos(self):
        """(..., B, 6) or (..., N, B, 6) sections in the parameter dtype."""
        return self.design.sections(self.raw_command)

    def structured_response(self, points):
        return self._sos_response(self.sos, points)

    def config(self):
        """{"command_db" (dB), "centres" (Hz), "fs" (Hz), design settings, "learnable"}."""
        d = self.design
        return {"type": "GEQ", "command_db": self.raw_command.detach().cpu().tolist(),
                "centres": list(self.centres), "fs": self.fs,
                "dtype": str(self.raw_command.dtype).removeprefix("torch."),
                "learnable": isinstance(self.raw_command, nn.Parameter), "c": d.c,
                "design_gain_db": d.design_gain_db, "offset": d.offset}

    def extra_repr(self):
        return f"bands={len(self.centres)}, fs={self.fs:g}, " + super().extra_repr()
