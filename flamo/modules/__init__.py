"""nn.Module wrappers: learnable parameters + mapping -> a functional response."""

from .allpass_matrix import AllpassFDNMatrix
from .attenuation import (GEQAttenuation, HomogeneousAttenuation, OnePoleAttenuation,
                          ProportionalAttenuation, ShelfAttenuation)
from .base import DSPModule, from_config
from .delay import Delay
from .delay_matrix import DelayMatrix
from .eq import GEQ, PEQ
from .filterbank import FilterBank
from .filters import SVF, Biquad
from .fir import FIR
from .fractional_delay import FractionalDelay
from .gain import Gain, Matrix
from .paraunitary import Paraunitary
from .sos import SOS, insert_a0
from .summary import describe
from .velvet import VelvetNoiseFilter, VelvetNoiseMatrix

__all__ = ["DSPModule", "from_config", "describe", "Gain", "Matrix", "Delay", "SOS", "insert_a0",
           "FIR", "FractionalDelay", "DelayMatrix", "Paraunitary", "Biquad", "SVF", "PEQ", "GEQ",
           "HomogeneousAttenuation", "OnePoleAttenuation", "ShelfAttenuation", "GEQAttenuation", "ProportionalAttenuation",
           "VelvetNoiseFilter", "VelvetNoiseMatrix", "FilterBank", "AllpassFDNMatrix"]
