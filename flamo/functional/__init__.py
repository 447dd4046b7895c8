"""Pure torch functions: frequency responses, designs and parameter mappings. No state."""

from .delays import delay_response
from .fir import allpass_response, fir_response, lagrange_taps, thiran_coefficients
from .mappings import Sigmoid, Softplus, identity, map_parameter, unmap_value
from .matrices import Circulant, circulant, hadamard, householder, skew_expm
from .sos import sos_poles, sos_response

__all__ = [
    "delay_response", "fir_response", "lagrange_taps", "thiran_coefficients",
    "allpass_response", "circulant", "Circulant", "sos_response", "sos_poles", "skew_expm", "householder", "hadamard",
    "identity", "Sigmoid", "Softplus", "map_parameter", "unmap_value",
]
