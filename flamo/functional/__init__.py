"""Pure torch functions: frequency responses, designs and parameter mappings. No state."""

from .biquads import (BIQUAD_KINDS, LogSigmoid, biquad, first_order_highshelf, first_order_lowshelf,
                      rbj_allpass, rbj_bandpass, rbj_highpass, rbj_highshelf, rbj_lowpass,
                      rbj_lowshelf, rbj_notch, rbj_peak, svf, svf_mixing)
from .decay import (gain_to_t60, geq_attenuation, onepole_attenuation, shelf_attenuation,
                    t60_to_gain, t60_to_gain_db)
from .delays import delay_response
from .fir import allpass_response, fir_response, lagrange_taps, thiran_coefficients
from .geq import AccurateGEQ, octave_bands, orfanidis_peak, third_octave_bands
from .mappings import Sigmoid, Softplus, identity, map_parameter, unmap_value
from .matrices import Circulant, circulant, hadamard, householder, skew_expm
from .sos import sos_poles, sos_response

__all__ = [
    "delay_response", "fir_response", "lagrange_taps", "thiran_coefficients",
    "allpass_response", "circulant", "Circulant", "sos_response", "sos_poles", "skew_expm", "householder", "hadamard",
    "identity", "Sigmoid", "Softplus", "map_parameter", "unmap_value",
    "BIQUAD_KINDS", "biquad", "rbj_lowpass", "rbj_highpass", "rbj_bandpass", "rbj_notch",
    "rbj_allpass", "rbj_peak", "rbj_lowshelf", "rbj_highshelf", "first_order_lowshelf",
    "first_order_highshelf", "svf", "svf_mixing", "LogSigmoid", "AccurateGEQ", "octave_bands",
    "third_octave_bands", "orfanidis_peak", "t60_to_gain", "gain_to_t60", "t60_to_gain_db",
    "onepole_attenuation", "shelf_attenuation", "geq_attenuation",
]
