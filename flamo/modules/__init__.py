"""nn.Module wrappers: learnable parameters + mapping -> a functional response."""

from .base import DSPModule, from_config
from .delay import Delay
from .gain import Gain, Matrix
from .sos import SOS, insert_a0

__all__ = ["DSPModule", "from_config", "Gain", "Matrix", "Delay", "SOS", "insert_a0"]
