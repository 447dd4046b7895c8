"""The time-domain twin of every system: exact rendering, streaming and the time backend.

Every module with an exact difference equation returns it from ``module.realize(fs)`` as a
tree of :mod:`flamo.timedomain.realization` nodes built from its own parameters; the
consumers are :func:`render` (differentiable filtering of a signal), :class:`Stream`
(stateful block processing, bitwise equal to one render) and
``module.response(grid, method="time")``.
"""

from . import realization
from .realization import Realization
from .render import render
from .stream import Stream

__all__ = ["Realization", "realization", "render", "Stream"]
