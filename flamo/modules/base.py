"""The base class of every module and system."""

from __future__ import annotations

import inspect

import torch
from torch import nn

from .. import signal
from ..timedomain import backend
from ..functional.mappings import map_parameter, mapping_config, unmap_value
from .config_fields import DTYPES, BuildContext, Choice, join, with_context
from ..grid import Points, as_points
from ..response import Response, matmul

__all__ = ["DSPModule", "from_config", "MAX_CONFIG_DEPTH"]


class DSPModule(nn.Module):
    """A linear time-invariant block: a transfer matrix H(z) sampled at evaluation points.

    Subclasses implement :meth:`structured_response` and :attr:`shape`. Everything else, the
    dense response, responses at explicit points, the impulse response and filtering
    signals, follows from those.

    Shapes are frequency first, then (out, in): ``response(points)`` is (M, out, in) and a
    time signal is (T, channels).
    """

    #: True when the transfer matrix is diagonal (a filter per channel).
    diagonal = False
    #: Every public subclass by class name, so that presets can name their type.
    registry: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # base classes of a family set ``registered = False`` in their own body
        if not cls.__name__.startswith("_") and cls.__dict__.get("registered", True):
            DSPModule.registry[cls.__name__] = cls

    @property
    def shape(self) -> tuple[int, int]:
        """(out, in): numbers of output and input channels."""
        raise NotImplementedError

    def structured_response(self, points) -> Response:
        """The response in the internal form that systems compose (not for end users).

        Parameters
        ----------
        points : flamo.Grid or flamo.Points

        Returns
        -------
        flamo.response.Response
            Diagonal modules keep only their diagonal, and frequency-independent ones carry
            one point (M = 1) that broadcasts. :meth:`response` is the dense public form.
        """
        raise NotImplementedError

    def apply_to(self, rhs: Response, points) -> Response:
        """Response of this module in series after ``rhs`` (``self @ rhs``).

        Systems evaluate a Series from its input side with this method, so a block can
        use what precedes it (a Recursion solves for the incoming columns only).
        """
        return matmul(self.structured_response(points), rhs)

    # -- public evaluation -------------------------------------------------------------
    def response(self, points, method: str = "frequency") -> torch.Tensor:
        """Sampled transfer matrix.

        Parameters
        ----------
        points : flamo.Grid or flamo.Points
            Where to evaluate: the FFT grid, or any explicit points (see :meth:`probe`).
        method : {"frequency", "time", "auto"}
            "frequency": sample every module at the points and combine them (the default).
            "time" (a Grid only): the DFT of h[n] gamma^n, n < nfft, with h computed exactly
            by the recursion (:func:`flamo.render`); it differs from frequency sampling by
            the time aliasing that ``alias_decay_db`` bounds, and needs a time-domain
            realization of every part. "auto": the faster of the two for this system, size
            and device (:func:`flamo.timedomain.backend.choose_method`).

        Returns
        -------
        torch.Tensor
            (M, out, in) complex tensor in ``points.complex_dtype`` (leading batch dims
            first when parameters are batched).
        """
        method = self._method(points, method)
        if method == "time":
            return backend.time_response(self, points)
        points = as_points(points, f"{type(self).__name__}.response")
        data = self.structured_response(points).dense()
        return data.expand(*data.shape[:-3], points.M, *data.shape[-2:])

    def _method(self, points, method):
        if method not in backend.METHODS:
            raise ValueError(f"{type(self).__name__}: method must be one of {backend.METHODS}, "
                             f"got {method!r}")
        return backend.choose_method(self, points) if method == "auto" else method

    def probe(self, z, fs=None, dtype=None) -> torch.Tensor:
        """The transfer matrix at explicit points z: ``response(flamo.Points(z, fs, dtype))``.

        Parameters
        ----------
        z : array_like
            (M,) nonzero complex points, anywhere in the plane (e.g. a minibatch of random
            frequencies exp(1j omega) on the unit circle).
        fs : float, optional
            Sample rate in Hz, needed by modules whose parameters are in Hz.
        dtype : torch.dtype, optional
            Real dtype of the evaluation; default from z (see :class:`flamo.Points`).

        Returns
        -------
        torch.Tensor
            (M, out, in) complex tensor; equal to ``response(grid)`` at the points of a grid.

        Examples
        --------
        >>> import math, torch, flamo
        >>> z = torch.exp(1j * torch.tensor([0.0, math.pi / 2], dtype=torch.float64))
        >>> flamo.Delay([2.0]).probe(z)[:, 0, 0].real  # z^-2 at z = 1 and z = 1j
        tensor([ 1., -1.], dtype=torch.float64)
        >>> flamo.Biquad("lowpass", 1000.0).probe(z, fs=48000).shape
        torch.Size([2, 1, 1])
        """
        return self.response(Points(z, fs=fs, dtype=dtype))

    def impulse_response(self, grid, method: str = "frequency") -> torch.Tensor:
        """(nfft, out, in) real impulse response on a :class:`flamo.Grid`.

        ``method`` as in :meth:`response`: "frequency" gives the gamma-compensated inverse
        FFT of the sampled response (time-aliased, see flamo.signal), "time" the first nfft
        samples of the exact response by the recursion (no aliasing), "auto" the faster.
        """
        if self._method(grid, method) == "time":
            return backend.impulse_response_by_recursion(self, grid)
        return signal.irfft(self.response(grid), grid, dim=-3)

    def forward(self, x: torch.Tensor, grid) -> torch.Tensor:
        """Filter a time signal x (..., T, in) -> (..., nfft, out) on a :class:`flamo.Grid`;
        see flamo.signal.filter_signal."""
        return signal.filter_signal(self, x, grid)

    # -- time domain -----------------------------------------------------------------
    def realize(self, fs=None):
        """The module as a difference equation: a tree of
        :mod:`flamo.timedomain.realization` nodes built from its parameters (gradients
        flow), used by :func:`flamo.render`, :class:`flamo.Stream`, the time backend of
        :meth:`response` and :func:`flamo.export.to_faust`.

        Parameters
        ----------
        fs : float, optional
            Sample rate in Hz, for modules designed in Hz or seconds.

        Raises
        ------
        NotImplementedError
            For a module without an exact time-domain form. A new module adds one by
            overriding this method with the primitives of
            :mod:`flamo.timedomain.realization` (see docs/design.md, "Time domain").
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no time-domain realization: it cannot be rendered, "
            f"streamed or exported; implement {type(self).__name__}.realize(fs) with the "
            f"primitives of flamo.timedomain.realization")

    # -- presets ---------------------------------------------------------------------
    def config(self) -> dict:
        """Effective parameters in physical units as a plain JSON-able dict.

        ``{"type": class name, "dtype": "float32" | "float64", **constructor arguments}``,
        with tensors as nested lists of their mapped values (samples, linear gains, Hz, dB,
        ... as each module documents), so that ``from_config(module.config())`` rebuilds an
        equivalent module with the same dtype. The keys besides "type" and "dtype" are
        those of :attr:`config_fields`.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement config()")

    #: Typed fields of :meth:`config` (besides "type" and "dtype"), ``{name: Field}``
    #: from :mod:`flamo.modules.config_fields`; None: the class cannot be rebuilt.
    config_fields: dict | None = None

    @classmethod
    def from_fields(cls, **kwargs) -> "DSPModule":
        """Build from converted :attr:`config_fields` values (the constructor by default;
        overridden where fields need cross-checks or map differently onto arguments). A
        field is optional in a config when this method (or, for ``**kwargs``, the
        constructor) gives its argument a default."""
        return cls(**kwargs)

    def _value_config(self, key: str, value: torch.Tensor, mapping) -> dict:
        """Config entries for one mapped value: the value, its mapping, learnability."""
        if mapping is not None and not hasattr(mapping, "inverse"):
            raise ValueError(f"{type(self).__name__}.config: mapping {mapping!r} has no inverse, "
                             f"so the module cannot be rebuilt from its mapped values")
        return {"type": type(self).__name__, key: value.detach().cpu().tolist(),
                "dtype": str(value.dtype).removeprefix("torch."),
                "mapping": mapping_config(mapping), "learnable": isinstance(self.raw, nn.Parameter)}

    # -- parameters ------------------------------------------------------------------
    def _init_parameter(self, name: str, value: torch.Tensor, mapping, learnable: bool):
        """Store ``value`` as the raw tensor ``name`` (mapped value -> raw via the mapping's
        inverse when it has one), as a Parameter when learnable, else as a buffer. The raw
        tensor is the module's own copy (no autograd history, no memory shared with
        ``value``)."""
        raw = unmap_value(mapping, value).detach().clone()
        if learnable:
            self.register_parameter(name, nn.Parameter(raw))
        else:
            self.register_buffer(name, raw)

    def _mapped(self, name: str, mapping) -> torch.Tensor:
        return map_parameter(mapping, getattr(self, name))

    def summary(self) -> str:
        """Readable tree of the parts, shapes and parameter counts; see :func:`flamo.describe`."""
        from .summary import describe  # summary walks DSPModule children: import at call time
        return describe(self)

    def extra_repr(self) -> str:
        out, inp = self.shape
        return f"shape=({out}, {inp})" + (", diagonal" if self.diagonal else "")


#: Deepest nesting of modules inside modules that from_config builds.
MAX_CONFIG_DEPTH = 64


def from_config(cfg: dict) -> DSPModule:
    """Rebuild any module or system from its :meth:`DSPModule.config`.

    Every field is type-checked and converted before any module is built (see
    :mod:`flamo.modules.config_fields`), then the constructors check values.

    Raises
    ------
    TypeError, ValueError
        For any malformed config, naming the field by its path, e.g.
        ``parts[2].feedback.delays``: wrong JSON types (``"learnable": "no"``), unknown,
        missing or misspelled fields, unknown types and dtypes, ragged or non-finite
        tensors, duplicate part names, nesting deeper than :data:`MAX_CONFIG_DEPTH`,
        values a constructor rejects.
    """
    return _build(cfg, "", 0)


def _build(cfg, path: str, depth: int) -> DSPModule:
    where = path or "config"
    if depth > MAX_CONFIG_DEPTH:
        raise ValueError(f"{where}: modules nested deeper than {MAX_CONFIG_DEPTH} levels")
    if not isinstance(cfg, dict):
        raise TypeError(f"{where}: a module config must be a dict (JSON object) with a 'type', "
                        f"got {type(cfg).__name__}")
    name = cfg.get("type")
    if "type" not in cfg:
        raise ValueError(f"{where}: a module config needs a 'type' (one of {sorted(DSPModule.registry)})")
    if not isinstance(name, str) or name not in DSPModule.registry:
        raise ValueError(f"{join(path, 'type')}: unknown module type {name!r:.60}; known: "
                         f"{sorted(DSPModule.registry)}")
    cls = DSPModule.registry[name]
    fields = cls.config_fields
    if fields is None:
        raise ValueError(f"{where}: {name} declares no config_fields, so it cannot be rebuilt from a config")
    unknown = sorted(set(cfg) - set(fields) - {"type", "dtype"}, key=repr)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown} for {name}; expected some of "
                         f"{sorted(fields) + ['dtype']}")
    dtype = Choice(tuple(DTYPES)).convert(cfg.get("dtype", "float32"), join(path, "dtype"), None)
    signature = inspect.signature(cls.from_fields).parameters  # optional: an argument with a default
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values()):
        signature = inspect.signature(cls.__init__).parameters
    missing = [k for k in fields if k not in cfg and
               (k not in signature or signature[k].default is inspect.Parameter.empty)]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing} for {name}")
    ctx = BuildContext(DTYPES[dtype], lambda sub, sub_path: _build(sub, sub_path, depth + 1))
    kwargs = {k: fields[k].convert(cfg[k], join(path, k), ctx) for k in fields if k in cfg}
    try:
        return cls.from_fields(**kwargs)
    except (TypeError, ValueError) as err:
        raise with_context(err, path) from err
    except (RuntimeError, IndexError, ArithmeticError) as err:  # torch internals: still a bad value
        raise ValueError(f"{where}: {name} cannot be built from these values: {err}") from err
