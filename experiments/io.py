"""Atomic file writers used by the runner and the experiments.

Every writer goes through :func:`flamo.atomic.atomic_write`: the output is
written to a temporary file in the destination directory, fsynced and moved
into place with :func:`os.replace`, so an interrupted run never leaves a
half-written file behind: readers see either the previous file or the
complete new one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from flamo.atomic import atomic_write  # noqa: E402  (the one atomic, fsynced writer)

__all__ = [
    "atomic_write",
    "write_text",
    "write_json",
    "write_csv",
    "save_figure",
    "to_jsonable",
]


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 text to ``path``."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def to_jsonable(obj: Any) -> Any:
    """``json`` fallback: convert numpy/torch/pathlib objects to plain Python."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if hasattr(obj, "tolist"):  # e.g. torch tensors
        return obj.tolist()
    return str(obj)  # e.g. torch.dtype, torch.device


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as JSON (sorted keys, indent 2, numpy scalars allowed)."""
    text = json.dumps(obj, sort_keys=True, indent=2, default=to_jsonable) + "\n"
    return write_text(path, text)


def write_csv(path: str | os.PathLike, df) -> Path:
    """Atomically write a pandas DataFrame as CSV without the index."""
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


def save_figure(path: str | os.PathLike, fig, dpi: int = 120) -> Path:
    """Atomically save a matplotlib figure as PNG and close it."""
    try:
        return atomic_write(
            path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
        )
    finally:
        plt.close(fig)
