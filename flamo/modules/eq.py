"""Equalizers: parametric (shelves + peaks) and graphic (accurate cascade GEQ)."""

from __future__ import annotations

import torch
from torch import nn

from ..functional.biquads import rbj_highshelf, rbj_lowshelf, rbj_peak
from ..exceptions import PrecisionWarning, warn
from ..functional.geq import AccurateGEQ, octave_bands, third_octave_bands
from ..functional.mappings import Interval
from . import config_fields as cf
from .._common import as_real_tensor
from .filters import Biquad, FilterModule, check_below_nyquist

__all__ = ["PEQ", "GEQ"]


class PEQ(Biquad):
    """Parametric EQ: low shelf, K peaks and high shelf in cascade (one SOS product).

    Parameters
    ----------
    freq : array_like
        (K + 2,) frequencies in Hz [low-shelf cutoff, K peak centres, high-shelf cutoff]
        for a 1 x 1 module, or (N, K + 2) for a diagonal N x N module (one EQ per channel).
    q : array_like, default 1/sqrt(2)
        Quality factors (> 0), broadcast to the shape of ``freq``.
    gain_db : array_like, default 0
        Gains in dB, broadcast to the shape of ``freq``.
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
                     "learnable": cf.Bool(), "freq_range": cf.Range(nullable=True),
                     "q_range": cf.Range(nullable=True), "gain_range_db": cf.Range(nullable=True)}

    def __init__(self, freq, q=2 ** -0.5, gain_db=0.0, learnable=True, freq_range=None,
                 q_range=None, gain_range_db=None):
        freq_t = as_real_tensor(freq, "freq", "PEQ", ndim=(1, 2))
        if freq_t.shape[-1] < 2:
            raise ValueError(f"PEQ: freq needs at least 2 bands (low shelf, high shelf) in its last "
                             f"dimension, got shape {tuple(freq_t.shape)}")
        for name, value in (("q", q), ("gain_db", gain_db)):
            t = torch.as_tensor(value)
            if t.ndim and t.shape[-1] not in (1, freq_t.shape[-1]):
                raise ValueError(f"PEQ: {name} has {t.shape[-1]} bands, freq has {freq_t.shape[-1]}")
        super().__init__("peak", freq_t, q=q, gain_db=gain_db, learnable=learnable,
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

    def sos_at(self, fs):
        """(..., K + 2, 6) or (..., N, K + 2, 6) sections at ``fs`` Hz, float64."""
        f, q, g = self.freq, self.q, self.gain_db
        check_below_nyquist("PEQ", "freq", f, fs)
        low = rbj_lowshelf(f[..., :1], q[..., :1], g[..., :1], fs)
        peaks = rbj_peak(f[..., 1:-1], q[..., 1:-1], g[..., 1:-1], fs)
        high = rbj_highshelf(f[..., -1:], q[..., -1:], g[..., -1:], fs)
        return torch.cat([low, peaks, high], dim=-2)

    def config(self):
        """{"freq" (Hz), "q", "gain_db" (dB), ranges, "learnable"}."""
        cfg = super().config()
        cfg["type"] = "PEQ"
        del cfg["kind"]
        return cfg

    def extra_repr(self):
        return f"bands={self.bands}, " + FilterModule.extra_repr(self)


#: Most bands a config may give: the GEQ design costs grow with the square of the bands.
MAX_CONFIG_BANDS = 256
#: Config field of band centres: a named set or a list in Hz.
CENTRES_FIELD = cf.AnyOf(cf.Choice(("octave", "third_octave")), cf.Tensor(1, max_len=MAX_CONFIG_BANDS))


def resolve_centres(owner, centres):
    """'octave' | 'third_octave' | list of Hz -> list of Hz (positive and increasing)."""
    if isinstance(centres, str):
        table = {"octave": octave_bands, "third_octave": third_octave_bands}
        if centres not in table:
            raise ValueError(f"{owner}: centres must be 'octave', 'third_octave' or a list of Hz, "
                             f"got {centres!r}")
        return table[centres]()
    f = as_real_tensor(centres, "centres", owner, ndim=1)
    if f.numel() < 2 or (f <= 0).any() or (f.diff() <= 0).any():
        raise ValueError(f"{owner}: centres must be >= 2 increasing frequencies > 0 Hz, got "
                         f"{f.tolist()}")
    return f.tolist()


class BandDesigns:
    """The band-EQ design (:class:`~flamo.functional.AccurateGEQ` or
    :class:`~flamo.functional.ProportionalEQ`) of one band layout at each sample rate an
    evaluation asks for, built once per rate (the design depends on the bands in radians).

    Parameters
    ----------
    centres : list of float
        Band centres in Hz.
    design : type, default AccurateGEQ
        Called as ``design(centres, fs, **settings)``.
    **settings
        Keyword arguments of the design (AccurateGEQ: ``c``, ``design_gain_db``, ``offset``).
    """

    def __init__(self, centres, design=AccurateGEQ, **settings):
        self.centres, self.design, self.settings = list(centres), design, settings
        self._designs = {}

    def __call__(self, fs: float):
        fs = float(fs)
        if fs not in self._designs:
            self._designs[fs] = self.design(self.centres, fs, **self.settings)
        return self._designs[fs]


class GEQ(FilterModule):
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
        16 kHz, or a list in Hz (increasing, below the Nyquist frequency of the evaluations).
    learnable : bool, default True
        Command gains as parameters (through the mapping of ``command_range_db``).
    c, design_gain_db, offset : see :class:`flamo.functional.AccurateGEQ`.
        Defaults c = 0.3, 17 dB and no broadband offset, the published design.
    command_range_db : (float, float) or None, default :data:`COMMAND_RANGE_DB`
        Open interval of the command gains (dB): the raw parameter is mapped onto it by
        :class:`flamo.functional.Interval`, so gradient descent cannot leave it, and initial
        commands must lie inside. None: the identity mapping (unbounded), with a
        :class:`flamo.exceptions.PrecisionWarning` at construction for commands outside
        :data:`COMMAND_RANGE_DB`.

    Notes
    -----
    Measured accuracy (tests/test_eq.py, 200 random +/-12 dB targets, fs = 48 kHz, octave):
    max band error below 1 dB, as in the paper. The default range +/-40 dB is where the
    float32 design stays within 0.2 dB of the float64 design at alternating +/-X dB commands
    (the worst pattern; tests/test_numerics.py); at +/-60 dB it is 2.6 dB off, at +/-80 dB
    14.5 dB, and the design's interaction matrix overflows near +/-90 dB. Alternating
    commands beyond +/-12 dB are far from what the cascade can follow in any dtype.
    """

    #: Default open interval of the command gains in dB (see the Notes).
    COMMAND_RANGE_DB = (-40.0, 40.0)

    config_fields = {"command_db": cf.Tensor((1, 2), max_len=MAX_CONFIG_BANDS), "centres": CENTRES_FIELD,
                     "learnable": cf.Bool(), "c": cf.Number(),
                     "design_gain_db": cf.Number(), "offset": cf.Bool(),
                     "command_range_db": cf.Range(nullable=True)}

    def __init__(self, command_db, centres="octave", learnable=True, c=0.3, design_gain_db=17.0,
                 offset=False, command_range_db=COMMAND_RANGE_DB):
        super().__init__()
        self.centres = resolve_centres("GEQ", centres)
        gains = as_real_tensor(command_db, "command_db", "GEQ", ndim=(1, 2))
        if gains.shape[-1] != len(self.centres):
            raise ValueError(f"GEQ: command_db has {gains.shape[-1]} bands but there are "
                             f"{len(self.centres)} centre frequencies")
        if not 0 < c < 1:
            raise ValueError(f"GEQ: c must lie in (0, 1), got {c}")
        self.designs = BandDesigns(self.centres, c=float(c), design_gain_db=float(design_gain_db),
                                  offset=bool(offset))
        self.diagonal = gains.ndim == 2
        low, high = self.COMMAND_RANGE_DB if command_range_db is None else command_range_db
        outside = (gains < low) | (gains > high)
        if command_range_db is None:
            self.mapping = None
            if outside.any():
                warn(f"GEQ: command gains in [{gains.min().item():g}, {gains.max().item():g}] dB lie "
                     f"outside {self.COMMAND_RANGE_DB} dB, where the design loses accuracy (float32: "
                     f"2.6 dB off at +/-60 dB, NaN near +/-90 dB)", PrecisionWarning)
        else:
            if outside.any():
                raise ValueError(f"GEQ: command_db must lie in command_range_db = ({low:g}, {high:g}) dB, "
                                 f"got [{gains.min().item():g}, {gains.max().item():g}]; widen the "
                                 f"range or pass command_range_db=None (unbounded)")
            self.mapping = Interval(low, high)
        self.command_range_db = None if command_range_db is None else (float(low), float(high))
        self._init_parameter("raw_command", gains, self.mapping, learnable)

    @property
    def shape(self):
        n = self.raw_command.shape[-2] if self.diagonal else 1
        return (n, n)

    @property
    def command_db(self):
        """Mapped command gains in dB, (B,) or (N, B)."""
        return self._mapped("raw_command", self.mapping)

    def sos_at(self, fs):
        """(..., B, 6) or (..., N, B, 6) sections at ``fs`` Hz in the parameter dtype."""
        return self.designs(fs).sections(self.command_db)

    def config(self):
        """{"command_db" (dB), "centres" (Hz), design settings, "learnable", "command_range_db"}."""
        command = self.command_db
        return {"type": "GEQ", "command_db": command.detach().cpu().tolist(),
                "centres": list(self.centres),
                "dtype": str(command.dtype).removeprefix("torch."),
                "learnable": isinstance(self.raw_command, nn.Parameter), **self.designs.settings,
                "command_range_db": None if self.command_range_db is None else list(self.command_range_db)}

    def extra_repr(self):
        return f"bands={len(self.centres)}, " + super().extra_repr()
