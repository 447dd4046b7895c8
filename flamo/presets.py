"""Save and load modules and systems as JSON presets (parameters in physical units).

A preset is ``{"format": "flamo-preset/1", "module": module.config()}``. What
:func:`save_preset` writes, :func:`load_preset` reads back: saving rebuilds the module from
the JSON text first and refuses, with the reason, a module whose preset would not load (an
``SOS`` built with ``check_stability=True`` whose poles training moved outside the circle,
non-finite parameters, a mapping without inverse). Loading checks every field before
anything is built (see :func:`flamo.from_config`) and reports any malformed preset as a
ValueError or TypeError naming the file and the field's path.
"""

from __future__ import annotations

import json
from pathlib import Path

from .atomic import atomic_write
from .modules.base import DSPModule, from_config
from .modules.config_fields import with_context

__all__ = ["save_preset", "load_preset", "read_json"]

FORMAT = "flamo-preset/1"


def _reject_constant(name):
    raise ValueError(f"non-finite number {name} (only finite numbers are accepted)")


def _unique_keys(pairs):
    """object_pairs_hook: a JSON object with a repeated key is an error, not "last wins"."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r} in a JSON object")
        out[key] = value
    return out


def read_json(path, owner: str):
    """The JSON data in the UTF-8 file ``path``, strictly: a repeated key in an object, a
    non-finite number (NaN, Infinity) or nesting deep enough to exhaust the parser is an
    error, as is anything that is not JSON. Only data is read; nothing in the file runs.

    Raises
    ------
    ValueError
        Naming ``owner`` and the file.
    """
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"), object_pairs_hook=_unique_keys,
                          parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError(f"{owner}: {path}: JSON nested too deep") from None
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{owner}: {path} is not valid JSON: {err}") from err


def save_preset(module: DSPModule, path) -> Path:
    """Write ``module.config()`` as JSON to ``path`` atomically (temporary file, fsync, rename).

    Values are written as decimal text of the parameters' own precision, so a float32 or
    float64 module is rebuilt with identical values.

    Raises
    ------
    ValueError
        If the preset would not load back (the reason is in the message); nothing is
        written then.
    """
    path = Path(path)
    try:
        text = json.dumps({"format": FORMAT, "module": module.config()}, indent=1, allow_nan=False)
    except ValueError as err:
        raise ValueError(f"save_preset: {path} not written: the module has non-finite "
                         f"parameter values ({err})") from err
    try:
        from_config(json.loads(text)["module"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"save_preset: {path} not written: the preset would not load back: {err}") from err
    return atomic_write(path, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))


def load_preset(path) -> DSPModule:
    """Rebuild the module saved by :func:`save_preset`.

    Raises
    ------
    ValueError, TypeError
        For a file that is not a valid preset: not UTF-8 JSON, duplicate keys, non-finite
        numbers, nesting too deep, wrong format tag, or any field :func:`flamo.from_config`
        rejects; the message names the file and the field's path.
    """
    path = Path(path)
    data = read_json(path, "load_preset")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"load_preset: {path} is not a flamo preset (expected format {FORMAT!r})")
    if set(data) != {"format", "module"}:
        raise ValueError(f"load_preset: {path}: a preset holds exactly the keys 'format' and 'module', "
                         f"got {sorted(data)}")
    try:
        return from_config(data["module"])
    except (TypeError, ValueError) as err:
        raise with_context(err, f"load_preset: {path}") from err
