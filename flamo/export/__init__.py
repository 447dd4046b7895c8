"""Export a system to other languages: :func:`to_faust`."""

from .faust import to_faust

__all__ = ["to_faust"]
