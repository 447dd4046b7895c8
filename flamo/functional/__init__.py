"""Pure torch functions: frequency responses, designs, parameter mappings and the loop solve.

Response functions (:func:`sos_response`, :func:`fir_response`, :func:`allpass_response`,
:func:`delay_response`) take the parameters and where to evaluate them: a
:class:`flamo.Grid`, a :class:`flamo.Points` or a 1-D tensor of complex points z (like
``worN`` in scipy.signal.freqz). They share one shape convention, that of
:class:`flamo.response.Response`: parameters (..., N, coefficients) of N channels give a
response (..., M, N), batch dims first, then the M points, then the channel axis; a single
filter without a channel axis ((K, 6) sections, (L,) taps) gives (M,).
"""

from .biquads import (BIQUAD_KINDS, biquad, first_order_highshelf, first_order_lowshelf,
                      rbj_allpass, rbj_bandpass, rbj_highpass, rbj_highshelf, rbj_lowpass,
                      proportional_peak, rbj_lowshelf, rbj_notch, rbj_peak, svf, svf_mixing)
from .attenuation import (gain_to_t60, geq_attenuation, onepole_attenuation,
                          proportional_attenuation, shelf_attenuation, t60_to_gain, t60_to_gain_db)
from .delays import delay_response
from .filterbank import band_edges, band_masks, butterworth_bandpass
from .fir import allpass_response, fir_response, lagrange_taps, thiran_coefficients
from .geq import AccurateGEQ, octave_bands, orfanidis_peak, third_octave_bands, unit_circle_db
from .proportional import ProportionalEQ
from .loop_solve import (MAX_PHASE_STEP, RANK_ONE_MIN_DIAGONAL, SINGULAR_PIVOT_FACTOR,
                         IdentityPlusRankOne, LoopDeterminant, diagonal_loop_solve, lu_determinant,
                         singular_pivot_threshold, winding_number)
from .mappings import Interval, LogInterval, LowerBound, identity, map_parameter, unmap_value
from .matrices import (BlockRotation, Circulant, block_rotation, circulant, hadamard, householder,
                       skew_expm)
from .sos import reflection_to_sections, sections_to_reflection, sos_poles, sos_response
from .velvet import velvet_pulses

__all__ = [
    "delay_response", "fir_response", "lagrange_taps", "thiran_coefficients",
    "allpass_response", "circulant", "Circulant", "block_rotation", "BlockRotation", "sos_response", "sos_poles", "skew_expm",
    "reflection_to_sections", "sections_to_reflection",
    "householder", "hadamard", "diagonal_loop_solve", "IdentityPlusRankOne", "LoopDeterminant",
    "lu_determinant", "singular_pivot_threshold", "SINGULAR_PIVOT_FACTOR", "winding_number",
    "MAX_PHASE_STEP", "RANK_ONE_MIN_DIAGONAL",
    "identity", "Interval", "LogInterval", "LowerBound", "map_parameter", "unmap_value",
    "BIQUAD_KINDS", "biquad", "rbj_lowpass", "rbj_highpass", "rbj_bandpass", "rbj_notch",
    "rbj_allpass", "rbj_peak", "rbj_lowshelf", "rbj_highshelf", "first_order_lowshelf",
    "first_order_highshelf", "proportional_peak", "ProportionalEQ", "svf", "svf_mixing", "AccurateGEQ", "octave_bands",
    "third_octave_bands", "orfanidis_peak", "unit_circle_db", "t60_to_gain", "gain_to_t60",
    "t60_to_gain_db", "onepole_attenuation", "shelf_attenuation", "geq_attenuation",
    "proportional_attenuation",
    "velvet_pulses", "band_edges", "band_masks", "butterworth_bandpass",
]
