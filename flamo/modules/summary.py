"""A readable tree of a system: its parts, their shapes and their parameter counts."""

from __future__ import annotations

from torch import nn

__all__ = ["describe"]


def _parts(module: nn.Module):
    """Named children that are flamo modules (systems and modules), in registration order."""
    from .base import DSPModule
    return [(name, child) for name, child in module.named_children() if isinstance(child, DSPModule)]


def _line(name, module) -> str:
    out, inp = module.shape
    shape = f"{out} x {inp}" + (", diagonal" if module.diagonal else "")
    learnable = sum(p.numel() for p in module.parameters())
    fixed = sum(b.numel() for b in module.buffers())
    label = f"{name}: " if name is not None else ""
    return (f"{label}{type(module).__name__} ({shape}) · {learnable} learnable"
            + (f", {fixed} fixed" if fixed else ""))


def describe(module: nn.Module) -> str:
    """Tree of a module or system: each part's name, type, (out x in) shape, whether it is
    diagonal, and how many learnable parameter values (and fixed buffer values) it holds,
    its parts included.

    Parameters
    ----------
    module : flamo.modules.DSPModule
        A module or a system (Series, Parallel, Recursion, ...).

    Returns
    -------
    str
        One line per part, children indented under their parent, e.g.::

            Series (1 x 1) · 42 learnable, 6 fixed
            ├─ b: Gain (6 x 1) · 6 learnable
            ├─ loop: Recursion (6 x 6) · 30 learnable, 6 fixed
            │  ├─ forward_path: Delay (6 x 6, diagonal) · 0 learnable, 6 fixed
            │  └─ feedback_path: Matrix (6 x 6) · 36 learnable
            └─ c: Gain (1 x 6) · 6 learnable
    """
    from .base import DSPModule
    if not isinstance(module, DSPModule):
        raise TypeError(f"describe: module must be a flamo module or system, got {type(module).__name__}")
    lines = [_line(None, module)]

    def walk(parent, prefix):
        parts = _parts(parent)
        for i, (name, child) in enumerate(parts):
            last = i == len(parts) - 1
            lines.append(prefix + ("└─ " if last else "├─ ") + _line(name, child))
            walk(child, prefix + ("   " if last else "│  "))

    walk(module, "")
    return "\n".join(lines)
