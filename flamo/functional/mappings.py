"""Mappings from unconstrained (raw) parameters to the values a module uses.

A module stores each parameter unconstrained and passes it through a callable ``mapping``
before use, so that an optimizer can move freely while the module stays valid (a gain
below 1, an orthogonal matrix, ...). The same hook lets a neural network supply the values
(hyperconditioning). Mappings are plain functions or small classes, never lambdas, so
systems stay picklable. A mapping that defines ``inverse(value)`` lets a module be built
from a physical value; for a mapping without ``inverse`` the initial tensor is the raw
parameter.
"""

from __future__ import annotations

import math

import torch

__all__ = ["identity", "Interval", "LogInterval", "LowerBound", "map_parameter", "unmap_value", "register_mapping",
           "mapping_config", "mapping_from_config"]

#: Mappings that presets can name, by name: functions and classes with ``config()``.
MAPPINGS = {}


def register_mapping(obj):
    """Make a mapping function or class nameable in presets (usable as a decorator)."""
    MAPPINGS[obj.__name__] = obj
    return obj


@register_mapping
def identity(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` unchanged (the default mapping)."""
    return x


@register_mapping
class Interval:
    """Map R onto the open interval (low, high): low + (high - low) * sigmoid(x).

    (Named for what it maps onto; it is not ``torch.nn.Sigmoid``, which maps onto (0, 1).)

    Smooth everywhere, so the gradient never vanishes abruptly as a clamp's would.
    """

    def __init__(self, low: float = 0.0, high: float = 1.0):
        if not low < high:
            raise ValueError(f"Interval: need low < high, got low={low}, high={high}")
        self.low, self.high = float(low), float(high)

    def __call__(self, x):
        return self.low + (self.high - self.low) * torch.sigmoid(x)

    def inverse(self, y):
        """Raw values that map onto ``y`` in [low, high]; the bounds themselves (what a
        saturated mapping returns, e.g. in a saved trained module) are stepped inside by the
        dtype's epsilon, where the logit is finite."""
        y = torch.as_tensor(y)
        if not ((y >= self.low) & (y <= self.high)).all():
            raise ValueError(f"Interval.inverse: values must lie in ({self.low}, {self.high}), "
                             f"got range [{y.min().item():g}, {y.max().item():g}]")
        u = (y - self.low) / (self.high - self.low)
        eps = torch.finfo(u.dtype).eps
        u = u.clamp(eps, 1 - eps)
        return torch.log(u) - torch.log1p(-u)

    def config(self):
        return {"type": "Interval", "low": self.low, "high": self.high}

    def __repr__(self):
        return f"Interval(low={self.low:g}, high={self.high:g})"


@register_mapping
class LowerBound:
    """Map R onto (low, inf): low + log(1 + exp(x)) (the softplus shifted to ``low``)."""

    def __init__(self, low: float = 0.0):
        self.low = float(low)

    def __call__(self, x):
        return self.low + torch.nn.functional.softplus(x)

    def inverse(self, y):
        y = torch.as_tensor(y)
        if not (y > self.low).all():
            raise ValueError(f"LowerBound.inverse: values must be > {self.low}, "
                             f"got min {y.min().item():g}")
        v = y - self.low
        return v + torch.log(-torch.expm1(-v))  # log(exp(v) - 1), stable for large v

    def config(self):
        return {"type": "LowerBound", "low": self.low}

    def __repr__(self):
        return f"LowerBound(low={self.low:g})"


@register_mapping
class LogInterval:
    """Map R onto (low, high) uniformly in log scale: low * (high / low)^sigmoid(x).

    Used for frequencies (an octave is the same raw distance everywhere) and other
    positive scale parameters. Smooth, no clamps; the bounds are never reached in exact
    arithmetic, so pass bounds with a margin when float32 rounding matters.
    """

    def __init__(self, low: float, high: float):
        if not 0 < low < high:
            raise ValueError(f"LogInterval: need 0 < low < high, got low={low}, high={high}")
        self.low, self.high = float(low), float(high)

    def __call__(self, x):
        lo, span = math.log(self.low), math.log(self.high / self.low)
        return torch.exp(lo + span * torch.sigmoid(x))

    def inverse(self, y):
        y = torch.as_tensor(y)
        if not ((y > self.low) & (y < self.high)).all():
            raise ValueError(f"LogInterval.inverse: values must lie in ({self.low:g}, {self.high:g}), "
                             f"got range [{y.min().item():g}, {y.max().item():g}]")
        u = (torch.log(y) - math.log(self.low)) / math.log(self.high / self.low)
        return torch.log(u) - torch.log1p(-u)

    def config(self):
        return {"type": "LogInterval", "low": self.low, "high": self.high}

    def __repr__(self):
        return f"LogInterval(low={self.low:g}, high={self.high:g})"


def map_parameter(mapping, raw: torch.Tensor) -> torch.Tensor:
    """Apply ``mapping`` (None means identity) to a raw parameter."""
    return raw if mapping is None else mapping(raw)


def unmap_value(mapping, value: torch.Tensor) -> torch.Tensor:
    """Raw parameter that ``mapping`` sends to ``value`` (the value itself without inverse)."""
    if mapping is None or not hasattr(mapping, "inverse"):
        return value
    return mapping.inverse(value)


def mapping_config(mapping):
    """JSON-able description of a mapping: None, {"type": name} or the object's config()."""
    if mapping is None:
        return None
    if hasattr(mapping, "config"):
        return mapping.config()
    name = getattr(mapping, "__name__", None)
    if MAPPINGS.get(name) is mapping:
        return {"type": name}
    raise ValueError(f"mapping {mapping!r} cannot be saved in a preset: use a registered mapping "
                     f"({sorted(MAPPINGS)}) or give it config() and register_mapping")


def mapping_from_config(cfg):
    """Inverse of :func:`mapping_config`: None, or ``{"type": registered name, **params}``.

    Raises
    ------
    TypeError, ValueError
        For anything but a registered name with finite numeric parameters (functions
        take none), or parameters the mapping's constructor rejects.
    """
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        raise TypeError(f"mapping config must be None or a dict {{'type': ...}}, got {type(cfg).__name__}")
    name = cfg.get("type")
    if not isinstance(name, str) or name not in MAPPINGS:
        raise ValueError(f"unknown mapping {name!r:.60} in preset; known: {sorted(MAPPINGS)}")
    params = {k: v for k, v in cfg.items() if k != "type"}
    for key, v in params.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise TypeError(f"mapping {name!r}: parameter {key!r} must be a finite number, got {v!r:.60}")
    obj = MAPPINGS[name]
    if not isinstance(obj, type):
        if params:
            raise ValueError(f"mapping {name!r} takes no parameters, got {sorted(params)}")
        return obj
    try:
        return obj(**params)
    except TypeError as err:  # unexpected or missing keyword
        raise TypeError(f"mapping {name!r}: {err}") from err
