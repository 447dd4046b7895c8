"""Time-domain baselines for benchmarking a frequency-sampling library.

Differentiable reference implementations on plain tensors:

* :func:`lfilter`, :func:`sosfilt` -- recursive IIR filtering with an
  adjoint-filter backward pass (:mod:`baselines.iir`);
* :func:`fdn_naive`, :func:`fdn_block`, :func:`fdn_impulse_response` --
  time-domain feedback delay networks (:mod:`baselines.fdn`).

This package depends only on torch, numpy and scipy.  The core library
(``flamo``) never imports ``baselines``; the dependency goes one way only
(benchmarks and tests compare the library against these baselines).
"""

from .fdn import fdn_block, fdn_impulse_response, fdn_naive
from .iir import lfilter, sosfilt

__all__ = ["lfilter", "sosfilt", "fdn_naive", "fdn_block", "fdn_impulse_response"]
