"""nn.Module wrappers: learnable parameters + mapping -> a functional response."""

from .attenuation import GEQAttenuation, HomogeneousAttenuation, OnePoleAttenuation, ShelfAttenuation
from .base import DSPModule, from_config
from .delay import Delay
from .eq import GEQ, PEQ
from .filters import SVF, Biquad
from .gain import Gain, Matrix
from .sos import SOS, insert_a0

__all__ = ["DSPModule", "from_config", "Gain", "Matrix", "Delay", "SOS", "insert_a0", "Biquad",
           "SVF", "PEQ", "GEQ", "HomogeneousAttenuation", "OnePoleAttenuation", "ShelfAttenuation",
           "GEQAttenuation"]
