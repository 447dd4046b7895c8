"""Reverberation toolkit: FDN builder, delay-length sets, decay conversions, modal and
echo-density analysis, stability diagnostics.

Import it explicitly (``import flamo.reverb``); ``import flamo`` does not load it.
"""

from .analysis import ModalDecomposition, echo_density, fdn_modes, loop_modes, modal_decomposition
from ..functional.attenuation import gain_to_t60, t60_to_gain
from .colorless import (COLORLESS_GAIN_PER_SAMPLE, PUBLISHED_INITS, LineScale, colorless_criteria,
                        colorless_fdn, line_outputs, published_colorless_fdn, upper_skew_expm)
from .delays import COLORLESS_FDN_DELAYS, coprime_delays, first_primes, prime_power_delays
from .fdn import FDNConfig, allpass_fdn, build_fdn, normalize_energy
from .gfdn import GFDNConfig, build_gfdn, coupled_matrix
from .structure import FDNStructure, fdn_structure
from .stability import (StabilityCallback, StabilityCertificate, certify_stable, find_recursions,
                        gain_before_instability, loop_eigenvalues, loop_gain)

__all__ = [
    "COLORLESS_FDN_DELAYS", "coprime_delays", "prime_power_delays", "first_primes",
    "t60_to_gain", "gain_to_t60",
    "FDNConfig", "build_fdn", "allpass_fdn", "normalize_energy", "GFDNConfig", "build_gfdn",
    "coupled_matrix", "FDNStructure", "fdn_structure",
    "ModalDecomposition", "fdn_modes", "loop_modes", "modal_decomposition", "echo_density",
    "COLORLESS_GAIN_PER_SAMPLE", "colorless_fdn", "line_outputs", "colorless_criteria",
    "PUBLISHED_INITS", "published_colorless_fdn", "upper_skew_expm", "LineScale",
    "find_recursions", "loop_gain", "loop_eigenvalues", "gain_before_instability", "certify_stable", "StabilityCertificate", "StabilityCallback",
]
