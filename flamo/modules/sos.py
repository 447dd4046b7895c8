"""Cascades of second-order sections (biquads)."""

from __future__ import annotations

import torch

from ..functional.mappings import register_mapping
from ..functional.sos import reflection_to_sections, sections_to_reflection, sos_poles, sos_response
from ..response import Response
from ..timedomain import realization as td
from . import config_fields as cf
from .._common import as_real_tensor
from .base import DSPModule

__all__ = ["SOS", "insert_a0", "cascade_response"]


@register_mapping
def insert_a0(raw: torch.Tensor) -> torch.Tensor:
    """Map normalized coefficients (..., K, 5) [b0 b1 b2 a1 a2] to sections (..., K, 6)
    with a0 = 1 (the default mapping of :class:`SOS`)."""
    one = torch.ones_like(raw[..., :1])
    return torch.cat([raw[..., :3], one, raw[..., 3:]], dim=-1)


def cascade_response(sos: torch.Tensor, points, diagonal: bool) -> Response:
    """Response of biquad cascades: (..., K, 6) as a 1 x 1 module, or (..., N, K, 6) as a
    diagonal N x N module (one cascade per channel)."""
    if diagonal:
        return Response(sos_response(sos, points), True)  # (..., M, N)
    return Response(sos_response(sos.unsqueeze(-3), points).unsqueeze(-1), False)


class SOS(DSPModule):
    """Cascade of K biquads: 1 x 1 from (K, 6), or diagonal N x N from (N, K, 6).

    Parameters
    ----------
    sos : array_like
        (K, 6) or (N, K, 6) sections in scipy.signal's layout [b0 b1 b2 a0 a1 a2].
        Each section is normalized by its a0 (which must be nonzero); the learnable raw
        parameter holds the five normalized coefficients [b0 b1 b2 a1 a2].
    mapping : callable, optional
        Raw (..., K, 5) -> sections (..., K, 6), replacing the parametrization chosen by
        ``stable``. A custom mapping receives the raw tensor as given (no inverse is
        applied).
    learnable : bool, default True
    check_stability : bool, default True
        Raise ValueError at construction when a pole lies on or outside the unit circle.
        Recorded in :meth:`config`, so a preset is checked as the module was: saving a
        module built with the check whose poles have since left the circle is refused with
        the reason.
    stable : bool, optional
        Parametrize the denominators by reflection coefficients
        (:func:`flamo.functional.reflection_to_sections`), so that every raw value, whatever
        gradient descent does, gives poles strictly inside radius ``max_pole_radius``; the
        initial poles must lie inside it. False: the raw parameter is the five normalized
        coefficients [b0 b1 b2 a1 a2] (:func:`insert_a0`), which a step can move anywhere.
        Default: ``learnable`` (a fixed filter needs no parametrization).
    max_pole_radius : float, default :data:`MAX_POLE_RADIUS`
        Bound of the stable parametrization, in (0, 1).
    """

    #: Default pole-radius bound of the stable parametrization: below 1 so that a saturated
    #: reflection coefficient (tanh rounding to 1) still leaves the pole inside the unit
    #: circle; a decay of 60 dB in 6.9e5 samples (14 s at 48 kHz).
    MAX_POLE_RADIUS = 0.99999

    config_fields = {"sos": cf.Tensor((2, 3)), "learnable": cf.Bool(), "check_stability": cf.Bool(),
                     "stable": cf.Bool(), "max_pole_radius": cf.Number()}

    def __init__(self, sos, mapping=None, learnable=True, check_stability=True, stable=None,
                 max_pole_radius=MAX_POLE_RADIUS):
        super().__init__()
        value = as_real_tensor(sos, "sos", "SOS", ndim=(2, 3))
        if value.shape[-1] != 6:
            raise ValueError(f"SOS: sos must have 6 columns [b0 b1 b2 a0 a1 a2], got shape "
                             f"{tuple(value.shape)}")
        if value.shape[-2] == 0 or value.numel() == 0:
            raise ValueError(f"SOS: sos needs at least one section (and channel), got shape "
                             f"{tuple(value.shape)}")
        if (value[..., 3] == 0).any():
            raise ValueError("SOS: a0 (column 3) must be nonzero in every section")
        if check_stability:
            radius = sos_poles(value).abs().max().item()
            if not radius < 1:  # fails closed: a NaN radius (overflowing coefficients) is refused
                what = (f"max pole radius {radius:.6g} >= 1" if radius == radius else
                        "poles not computable (coefficients too large)")
                raise ValueError(f"SOS: unstable section, {what} (pass check_stability=False to "
                                 f"allow it)")
        stable = bool(learnable) if stable is None else stable
        if not isinstance(stable, bool):
            raise TypeError(f"SOS: stable must be True, False or None, got {stable!r}")
        if isinstance(max_pole_radius, bool) or not 0 < float(max_pole_radius) < 1:
            raise ValueError(f"SOS: max_pole_radius must lie in (0, 1), got {max_pole_radius!r}")
        self.diagonal = value.ndim == 3
        self.mapping = mapping
        self.check_stability = bool(check_stability)
        self.stable = stable and mapping is None
        self.max_pole_radius = float(max_pole_radius)
        if self.stable:
            try:
                raw = sections_to_reflection(value, self.max_pole_radius)
            except ValueError as err:
                raise ValueError(f"SOS: {err}; the stable parametrization needs every initial pole "
                                 f"inside that radius (pass stable=False for coefficients)") from None
        else:
            normalized = value / value[..., 3:4]
            raw = torch.cat([normalized[..., :3], normalized[..., 4:]], dim=-1)
        self._init_parameter("raw", raw, None, learnable)

    @property
    def shape(self):
        n = self.raw.shape[-3] if self.diagonal else 1
        return (n, n)

    @property
    def sos(self) -> torch.Tensor:
        """Mapped sections, (K, 6) or (N, K, 6), a0 = 1."""
        if self.mapping is not None:
            return self.mapping(self.raw)
        if self.stable:
            return reflection_to_sections(self.raw, self.max_pole_radius)
        return insert_a0(self.raw)

    def config(self):
        """{"sos": a0-normalized sections, "learnable", "check_stability", "stable",
        "max_pole_radius"} (built-in parametrizations only)."""
        if self.mapping is not None:
            raise ValueError(f"SOS.config: a custom mapping ({self.mapping!r}) cannot be saved")
        cfg = self._value_config("sos", self.sos, None)
        del cfg["mapping"]
        cfg.update(check_stability=self.check_stability, stable=self.stable,
                   max_pole_radius=self.max_pole_radius)
        return cfg

    def structured_response(self, points):
        return cascade_response(self.sos, points, self.diagonal)

    def realize(self, fs=None):
        """The cascade(s), :class:`~flamo.timedomain.realization.SOSBank`."""
        sos = self.sos
        return td.SOSBank(sos if self.diagonal else sos.unsqueeze(0))
