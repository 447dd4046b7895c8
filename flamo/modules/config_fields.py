"""Typed fields of module configs: what :func:`flamo.from_config` accepts, checked first.

Each module class lists its config fields (``config_fields = {name: Field}``, the keys its
``config()`` writes besides "type" and "dtype"). Before a constructor runs, every field is
checked for its JSON type (booleans are booleans, integers integers, tensors rectangular
nested lists of finite numbers of an allowed number of dimensions) and converted; errors
name the field by its path in the preset (``parts[2].feedback.delays``). The constructor
then checks ranges, with its error prefixed by the module's path.

Allocation is bounded by the data a config holds: a tensor is built only from the numbers
written in it, and sizes that no data backs are capped (documented per field).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..functional.mappings import identity, mapping_from_config

__all__ = ["Field", "Bool", "Int", "Number", "Choice", "Range", "Tensor", "Mapping", "Module",
           "Parts", "AnyOf", "BuildContext", "DTYPES", "join", "with_context"]

#: dtype names a config may give.
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def join(path: str, key) -> str:
    """Path of ``key`` (a field name or a list index) inside ``path``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def with_context(err: Exception, prefix: str) -> Exception:
    """A plain TypeError (for a TypeError) or ValueError carrying ``prefix: err``, to raise
    ``from err`` (subclasses may need other constructor arguments)."""
    kind = TypeError if isinstance(err, TypeError) else ValueError
    return kind(f"{prefix}: {err}" if prefix else str(err))


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class BuildContext:
    """What converting a field may need: the config's dtype and the module builder
    ``build(cfg, path)`` for nested modules."""

    dtype: torch.dtype
    build: Callable[[Any, str], Any]


class Field:
    """A config field. ``convert(value, path, ctx)`` checks the JSON value and returns the
    constructor argument; ``nullable`` allows ``null`` (passed on as None)."""

    expects = "a value"

    def __init__(self, nullable: bool = False):
        self.nullable = nullable

    def convert(self, value, path: str, ctx: BuildContext):
        if value is None:
            if self.nullable:
                return None
            raise TypeError(f"{path}: must be {self.expects}, got null")
        return self._convert(value, path, ctx)

    def _convert(self, value, path, ctx):
        raise NotImplementedError

    def accepts(self, value) -> bool:
        """Whether ``value`` has this field's JSON type (used by :class:`AnyOf`)."""
        return True


class Bool(Field):
    expects = "true or false"

    def _convert(self, value, path, ctx):
        if not isinstance(value, bool):
            raise TypeError(f"{path}: must be true or false, got {_short(value)}")
        return value


class Int(Field):
    """An integer in [low, high] (``high`` caps sizes that no data in the config backs)."""

    expects = "an integer"

    def __init__(self, low: int | None = None, high: int | None = None, nullable: bool = False):
        super().__init__(nullable)
        self.low, self.high = low, high

    def _convert(self, value, path, ctx):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{path}: must be an integer, got {_short(value)}")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ValueError(f"{path}: must lie in [{self.low}, {self.high}], got {value}")
        return value


class Number(Field):
    expects = "a finite number"

    def _convert(self, value, path, ctx):
        if not _is_number(value):
            raise TypeError(f"{path}: must be a number, got {_short(value)}")
        if not math.isfinite(value):
            raise ValueError(f"{path}: must be finite, got {value}")
        return float(value)

    def accepts(self, value):
        return _is_number(value)


class Choice(Field):
    expects = "a string"

    def __init__(self, choices, nullable: bool = False):
        super().__init__(nullable)
        self.choices = tuple(choices)
        self.expects = f"one of {self.choices}"

    def _convert(self, value, path, ctx):
        if not isinstance(value, str):
            raise TypeError(f"{path}: must be one of {self.choices}, got {_short(value)}")
        if value not in self.choices:
            raise ValueError(f"{path}: must be one of {self.choices}, got {_short(value)}")
        return value

    def accepts(self, value):
        return isinstance(value, str)


class Range(Field):
    """An interval ``[low, high]`` of finite numbers with low < high, as a tuple."""

    expects = "[low, high]"

    def _convert(self, value, path, ctx):
        if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(map(_is_number, value)):
            raise TypeError(f"{path}: must be [low, high], two numbers, got {_short(value)}")
        low, high = (float(v) for v in value)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"{path}: must be finite with low < high, got {_short(value)}")
        return (low, high)


def _shape(value, path: str, max_ndim: int) -> tuple[int, ...]:
    """Shape of a number or rectangular nested list of finite numbers, at most ``max_ndim``
    deep (so the recursion is bounded), with errors naming the offending element."""
    if _is_number(value):
        if not math.isfinite(value):
            raise ValueError(f"{path}: values must be finite, got {value}")
        return ()
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{path}: must be a number or nested lists of numbers, got {_short(value)}")
    if max_ndim == 0:
        raise ValueError(f"{path}: nested deeper than the field allows")
    shapes = [_shape(v, join(path, i), max_ndim - 1) for i, v in enumerate(value)]
    for i, s in enumerate(shapes):
        if s != shapes[0]:
            raise ValueError(f"{join(path, i)}: ragged nested lists: shape {s}, but "
                             f"{join(path, 0)} has shape {shapes[0]}")
    return (len(value), *(shapes[0] if shapes else ()))


class Tensor(Field):
    """A tensor of the config's dtype from a number (0-d) or nested lists.

    Parameters
    ----------
    ndim : int or tuple of int
        Allowed numbers of dimensions.
    max_len : int, optional
        Cap on the length of the last dimension (for sizes whose cost grows faster than
        the data, e.g. GEQ bands).
    """

    expects = "a number or nested lists of numbers"

    def __init__(self, ndim, nullable: bool = False, max_len: int | None = None):
        super().__init__(nullable)
        self.ndim = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        self.max_len = max_len

    def _convert(self, value, path, ctx):
        shape = _shape(value, path, max(self.ndim))
        if len(shape) not in self.ndim:
            raise ValueError(f"{path}: must have {' or '.join(map(str, self.ndim))} dimensions, "
                             f"got shape {shape}")
        if self.max_len is not None and shape and shape[-1] > self.max_len:
            raise ValueError(f"{path}: at most {self.max_len} entries in the last dimension, got {shape[-1]}")
        return torch.tensor(value, dtype=ctx.dtype)

    def accepts(self, value):
        return isinstance(value, (list, tuple)) or _is_number(value)


class Mapping(Field):
    """``null`` or ``{"type": registered mapping, **numeric parameters}``.

    Configs hold mapped (physical) values, so the mapping must be invertible
    (``inverse``) or the identity: a module is rebuilt from its values through the inverse.
    """

    expects = "null or a mapping {'type': ...}"

    def __init__(self):
        super().__init__(nullable=True)

    def _convert(self, value, path, ctx):
        try:
            mapping = mapping_from_config(value)
        except (TypeError, ValueError) as err:
            raise with_context(err, path) from err
        name = value["type"]
        if mapping is not identity and not hasattr(mapping, "inverse"):
            raise ValueError(f"{path}: mapping {name!r} has no inverse, so the values in this config "
                             f"cannot be turned back into parameters")
        return mapping


class Module(Field):
    """A nested module config."""

    expects = "a module config {'type': ...}"

    def _convert(self, value, path, ctx):
        return ctx.build(value, path)


class Parts(Field):
    """``[[name, module config], ...]`` with unique string names, in signal order."""

    expects = "a list of [name, module config] pairs"

    def _convert(self, value, path, ctx):
        if not isinstance(value, (list, tuple)) or not value:
            raise TypeError(f"{path}: must be a non-empty list of [name, module config] pairs, got "
                            f"{_short(value)}")
        parts, first = OrderedDict(), {}
        for i, item in enumerate(value):
            where = join(path, i)
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise TypeError(f"{where}: must be a [name, module config] pair, got {_short(item)}")
            name, cfg = item
            if not isinstance(name, str):
                raise TypeError(f"{join(where, 0)}: a part name must be a string, got {_short(name)}")
            if name in first:
                raise ValueError(f"{join(where, 0)}: duplicate part name {name!r} (also {first[name]})")
            first[name] = join(where, 0)
            parts[name] = ctx.build(cfg, where)
        return parts


class AnyOf(Field):
    """The first of ``fields`` whose JSON type matches the value."""

    def __init__(self, *fields, nullable: bool = False):
        super().__init__(nullable)
        self.fields = fields
        self.expects = " or ".join(f.expects for f in fields)

    def _convert(self, value, path, ctx):
        for field in self.fields:
            if field.accepts(value):
                return field.convert(value, path, ctx)
        raise TypeError(f"{path}: must be {self.expects}, got {_short(value)}")
