"""flamo: differentiable linear time-invariant audio systems by frequency sampling.

Every module is a transfer matrix H(z) sampled on a :class:`Grid` (the points of the FFT) or
at any explicit :class:`Points`; systems combine modules
in series, in parallel and in feedback loops, and torch autograd supplies the gradients.
After Dal Santo, De Bortoli, Prawda, Schlecht, Valimaki, "FLAMO: An open-source library for
frequency-domain differentiable audio processing", ICASSP 2025.
"""

from . import aliasing, exceptions, excitations, functional, signal, timedomain
from .aliasing import recommend_alias_decay_db
from .grid import Grid, Points
from .modules import (FIR, GEQ, PEQ, SOS, SVF, AllpassFDNMatrix, Biquad, Delay, DelayMatrix,
                      DSPModule, FilterBank, FractionalDelay, Gain, GEQAttenuation,
                      HomogeneousAttenuation, Matrix, OnePoleAttenuation, Paraunitary,
                      ProportionalAttenuation, ShelfAttenuation, VelvetNoiseFilter, VelvetNoiseMatrix, describe, from_config)
from .presets import load_preset, save_preset
from .system import Parallel, Recursion, Series
from .timedomain import Stream, render

__version__ = "0.1.0"

__all__ = ["Grid", "Points", "DSPModule", "Gain", "Matrix", "Delay", "SOS", "Series", "Parallel",
           "Recursion", "FIR", "FractionalDelay", "DelayMatrix", "Paraunitary", "Biquad", "SVF",
           "PEQ", "GEQ", "HomogeneousAttenuation", "OnePoleAttenuation", "ShelfAttenuation",
           "GEQAttenuation", "ProportionalAttenuation", "VelvetNoiseFilter", "VelvetNoiseMatrix", "FilterBank", "AllpassFDNMatrix",
           "describe", "from_config", "save_preset", "load_preset", "render", "Stream",
           "functional", "signal", "excitations", "aliasing", "exceptions", "timedomain",
           "recommend_alias_decay_db",
           "__version__"]
