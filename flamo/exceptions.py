"""Warning classes of the library.

Input that is legal but suspicious (a result that may be inaccurate, a setting beyond what the
dtype can carry, a training that stalls) gets ``warnings.warn`` with one of these classes,
never a print, so that it can be filtered precisely::

    warnings.filterwarnings("ignore", category=flamo.exceptions.LoopResolutionWarning)

or turned into an error (``"error"``) in a test suite. All derive from :class:`FlamoWarning`.
"""

from __future__ import annotations

import sys
import warnings

__all__ = ["FlamoWarning", "LoopResolutionWarning", "UnstableLoopWarning", "PrecisionWarning",
           "DelayWrapWarning", "StalledParameterWarning", "warn"]

# Frames of these packages are skipped when a warning names the line that caused it.
_INTERNAL_PACKAGES = ("flamo", "torch")


def warn(message: str, category: type) -> None:
    """``warnings.warn(message, category)`` attributed to the first caller outside flamo (and
    torch, whose ``nn.Module.__call__`` sits between a user and a module), so that the
    warning names the user's line and the default filter shows it once per line."""
    frame, level = sys._getframe(1), 2  # stacklevel 1 would name this function
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in _INTERNAL_PACKAGES:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


class FlamoWarning(UserWarning):
    """Base class of every warning the library emits."""


class LoopResolutionWarning(FlamoWarning):
    """The grid does not resolve a feedback loop: a pole of the loop lies so close to the
    circle of evaluation that the phase of det(I - F B) jumps by more than pi / 2 between
    neighbouring bins, so poles outside the circle cannot be counted, and the impulse response
    wraps around with little attenuation (see :func:`flamo.functional.winding_number`)."""


class UnstableLoopWarning(FlamoWarning):
    """A feedback loop has poles outside the circle of evaluation and was evaluated anyway
    (``Recursion(..., on_unstable="warn")``): the result is the response of its anti-causal,
    time-wrapped twin, not of the system."""


class PrecisionWarning(FlamoWarning):
    """A setting asks for more than the dtype can carry: an ``alias_decay_db`` whose
    compensation gamma^-n amplifies the rounding noise above the tolerance of
    :func:`flamo.aliasing.max_alias_decay_db`, or a :class:`flamo.GEQ` command outside the
    range where its design is accurate."""


class DelayWrapWarning(FlamoWarning):
    """A delay length outside [0, nfft) on a :class:`flamo.Grid`: frequency sampling wraps it
    modulo nfft (a delay of nfft + 10 samples shows up at n = 10)."""


class StalledParameterWarning(FlamoWarning):
    """Training: entries of a parameter that were moving have had a gradient of exactly zero
    at every one of many consecutive steps since, so the optimizer cannot move them: a
    bounded mapping (:class:`flamo.functional.Interval`, a sigmoid) saturated at its bound."""
