"""Time-domain baselines for benchmarking a frequency-sampling library.

Differentiable reference implementations:

* :func:`lfilter`, :func:`sosfilt` -- recursive IIR filtering on plain tensors, with an
  adjoint-filter backward pass (scipy backend) or a block state-space recursion of the
  whole cascade (torch backend) (:mod:`baselines.iir`);
* :func:`fdn_block`, :func:`fdn_impulse_response` -- the block time-domain feedback delay
  network, the FDN baseline (:mod:`baselines.fdn`); :func:`fdn_naive` is a
  sample-by-sample loop kept as a test reference only, never used by benchmarks;
* :func:`render` -- render the impulse response of a system built with ``flamo`` (an FDN
  read by :func:`flamo.reverb.fdn_structure`, with any attenuation it supports, or an SOS
  module) in the time domain, keeping the autograd graph to the module parameters, so
  that every comparison runs the same system (:mod:`baselines.convert`).

Signals are time first, (T,) or (..., T, C), as in ``flamo`` (:mod:`flamo.signal`).
This package depends on torch, numpy, scipy and on ``flamo`` for that layout's helpers and
for the conversions.
The core library (``flamo``) never imports ``baselines``; the dependency goes one way only
(benchmarks and tests compare the library against these baselines).
"""

from .convert import render
from .fdn import fdn_block, fdn_impulse_response, fdn_naive
from .iir import lfilter, sosfilt

__all__ = ["lfilter", "sosfilt", "fdn_naive", "fdn_block", "fdn_impulse_response",
           "render"]
