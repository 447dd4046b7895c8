"""Hyperconditioning: a network outputs the parameters of any flamo system.

A system's raw parameters (the unconstrained tensors before each module's mapping) are
listed by :func:`parameter_shapes`. A network predicts them for a batch, either as a dict or
as a flat vector (:func:`unflatten`), and :func:`batched_response` evaluates the system once
for the whole batch with ``torch.func.functional_call``: every parameter carries a leading
batch dim, and the modules broadcast over leading dims, so B different systems are sampled
in one call (FLAMO paper, Fig. 3; Nercessian et al., ICASSP 2021; Lee et al., TASLP 2022).
The mappings stay in charge of validity (e.g. a stable peak filter), exactly as in direct
optimization.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

__all__ = ["raw_parameters", "parameter_shapes", "flatten", "unflatten", "batched_call",
           "batched_response", "ParameterHead"]


def raw_parameters(system: nn.Module, learnable_only: bool = True) -> "OrderedDict[str, torch.Tensor]":
    """{dotted name: tensor} of the system's raw parameters (buffers too if not ``learnable_only``)."""
    out = OrderedDict((n, p) for n, p in system.named_parameters() if p.requires_grad)
    if not learnable_only:
        out.update(system.named_buffers())
    return out


def parameter_shapes(system: nn.Module, learnable_only: bool = True) -> "OrderedDict[str, torch.Size]":
    """{dotted name: shape} of :func:`raw_parameters`, in a fixed order (the flat layout)."""
    return OrderedDict((n, t.shape) for n, t in raw_parameters(system, learnable_only).items())


def flatten(params: dict, shapes: dict | None = None) -> torch.Tensor:
    """Concatenate a dict of ``(..., *shape)`` tensors into (..., P) in the order of ``shapes``
    (default: the dict order)."""
    names = list(shapes) if shapes is not None else list(params)
    first = params[names[0]]
    lead = first.shape[:first.ndim - len(shapes[names[0]])] if shapes is not None else ()
    return torch.cat([params[n].reshape(*lead, -1) for n in names], dim=-1)


def unflatten(vector: torch.Tensor, shapes: dict) -> "OrderedDict[str, torch.Tensor]":
    """Split (..., P) into ``{name: (..., *shape)}``; P must equal the total size of ``shapes``."""
    sizes = [math.prod(s) for s in shapes.values()]
    if vector.shape[-1] != sum(sizes):
        raise ValueError(f"unflatten: vector has {vector.shape[-1]} entries in its last dim, "
                         f"the shapes need {sum(sizes)}")
    lead = vector.shape[:-1]
    parts = torch.split(vector, sizes, dim=-1)
    return OrderedDict((n, p.reshape(*lead, *s)) for (n, s), p in zip(shapes.items(), parts))


class _Call(nn.Module):
    """forward(*args) = fn(inner, *args), so functional_call can swap the inner parameters."""

    def __init__(self, inner, fn):
        super().__init__()
        self.inner, self.fn = inner, fn

    def forward(self, *args):
        return self.fn(self.inner, *args)


def batched_call(system: nn.Module, params: dict, fn, *args):
    """``fn(system, *args)`` with the system's tensors replaced by ``params``.

    Parameters
    ----------
    system : nn.Module
    params : dict[str, torch.Tensor]
        Some or all names of :func:`raw_parameters` with a leading batch dim ``(B, *shape)``;
        names not given keep their current (unbatched) values and broadcast.
    fn : callable
        e.g. ``lambda s, g: s.response(g)``.
    """
    unknown = set(params) - set(dict(system.named_parameters())) - set(dict(system.named_buffers()))
    if unknown:
        raise ValueError(f"batched_call: unknown parameter names {sorted(unknown)}; known: "
                         f"{list(parameter_shapes(system, False))}")
    prefixed = {f"inner.{n}": v for n, v in params.items()}
    return torch.func.functional_call(_Call(system, fn), prefixed, args, strict=False)


def batched_response(system: nn.Module, params: dict, grid) -> torch.Tensor:
    """(B, M, out, in) responses of B systems that differ by ``params`` (see :func:`batched_call`)."""
    return batched_call(system, params, lambda s, g: s.response(g), grid)


class ParameterHead(nn.Module):
    """A linear layer whose output is the raw-parameter dict of ``system`` for each batch item.

    Parameters
    ----------
    in_features : int
        Width of the features feeding the head.
    system : nn.Module
        Template system; only its parameter names and shapes are used.
    init_from_system : bool, default True
        Scale the initial weights by 1e-2 and set the bias to the system's current raw
        parameters, so an untrained network predicts (nearly) the template system.
    """

    def __init__(self, in_features: int, system: nn.Module, init_from_system: bool = True):
        super().__init__()
        self.shapes = parameter_shapes(system)
        total = sum(math.prod(s) for s in self.shapes.values())
        self.linear = nn.Linear(in_features, total)
        if init_from_system:
            with torch.no_grad():
                self.linear.weight.mul_(1e-2)
                self.linear.bias.copy_(flatten(raw_parameters(system)).detach())

    def forward(self, features: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        """(B, in_features) -> ``{name: (B, *shape)}``."""
        return unflatten(self.linear(features), self.shapes)
