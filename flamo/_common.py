"""Helpers shared across the library's files (private module: not part of the API).

``as_real_tensor`` is the one place where values given by users become tensors, with the
library's one dtype rule; ``seeded_generator`` is the one source of seeded random draws.
"""

from __future__ import annotations

import torch

__all__ = ["as_real_tensor", "seeded_generator"]


def as_real_tensor(value, name: str, owner: str, ndim=None, dtype=None) -> torch.Tensor:
    """Convert ``value`` to a finite real floating tensor, with errors naming the argument.

    The dtype rule: a tensor keeps its floating dtype and its autograd history (no copy);
    anything else goes through ``torch.as_tensor``, as in torch itself: numpy arrays keep
    their dtype (float64 stays float64), Python numbers and lists take the default dtype
    (float32); integer values become the default floating dtype. ``dtype`` overrides: a
    non-tensor is read directly in it (a Python float exactly, for float64) and a tensor is
    cast to it.

    Parameters
    ----------
    value : array_like
    name, owner : str
        Argument and function or module names used in error messages.
    ndim : int or tuple of int, optional
        Allowed numbers of dimensions.
    dtype : torch.dtype, optional
        Floating dtype of the result.

    Raises
    ------
    TypeError
        For values that are not array-like, complex or boolean.
    ValueError
        For a number of dimensions outside ``ndim``, non-finite values or a meta-device
        tensor (no data).
    """
    if isinstance(value, torch.Tensor):
        t = value
    else:
        try:
            t = torch.as_tensor(value) if dtype is None else torch.as_tensor(value, dtype=dtype)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{owner}: {name} must be real array-like, got "
                            f"{type(value).__name__}") from err
    if t.device.type == "meta":
        raise ValueError(f"{owner}: {name} is a meta-device tensor (a shape without data); pass a "
                         f"tensor with values (e.g. on the cpu)")
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{owner}: {name} must be real, got dtype {t.dtype}")
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if t.ndim not in allowed:
            raise ValueError(f"{owner}: {name} must have {' or '.join(map(str, allowed))} "
                             f"dimensions, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{owner}: {name} must be finite, got non-finite values")
    return t


def seeded_generator(seed) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (an int), or freshly seeded for None."""
    gen = torch.Generator()
    if seed is not None:
        gen.manual_seed(int(seed))
    else:
        gen.seed()
    return gen
