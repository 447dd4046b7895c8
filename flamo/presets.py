"""Save and load modules and systems as JSON presets (parameters in physical units)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .modules.base import DSPModule, from_config

__all__ = ["save_preset", "load_preset"]

FORMAT = "flamo-preset/1"


def save_preset(module: DSPModule, path) -> Path:
    """Write ``module.config()`` as JSON to ``path`` atomically (temporary file, then rename).

    Values are written as decimal text of the parameters' own precision, so a float32 or
    float64 module is rebuilt with identical values.
    """
    path = Path(path)
    text = json.dumps({"format": FORMAT, "module": module.config()}, indent=1)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def load_preset(path) -> DSPModule:
    """Rebuild the module saved by :func:`save_preset`."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"load_preset: {path} is not a flamo preset (expected format {FORMAT!r})")
    return from_config(data["module"])
