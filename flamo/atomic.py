"""Durable atomic file writes: a temporary file in the destination folder, fsync, rename.

Readers see either the previous file or the complete new one, never a partial write, and
after :func:`atomic_write` returns the new content survives a power loss: the file is
fsynced before the rename and the folder (which holds the rename) after it. A process
killed mid-write leaves only a hidden ``.NAME.*.tmp`` file next to the target, which
:func:`remove_stale_temps` deletes.
"""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["atomic_write", "fsync_dir", "remove_stale_temps"]

# mkstemp creates files with mode 0600; give the final file the usual mode.
_UMASK = os.umask(0)
os.umask(_UMASK)


def fsync_dir(folder) -> None:
    """Flush a folder's entries (renames, new files) to disk; a no-op where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a directory
        pass
    finally:
        os.close(fd)


def atomic_write(path, writer: Callable[[Path], None]) -> Path:
    """Write ``path`` atomically and durably.

    Parameters
    ----------
    path : str or PathLike
        Destination file. Its parent folder is created if needed.
    writer : callable
        ``writer(tmp_path)`` writes the complete content to ``tmp_path``.

    Returns
    -------
    Path
        The destination path.

    Notes
    -----
    If ``writer`` raises (or the process is interrupted), the temporary file is removed
    and the previous content of ``path`` (if any) is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        writer(tmp)
        with open(tmp, "rb+") as fh:  # the bytes reach the disk before the rename
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def remove_stale_temps(path) -> list[Path]:
    """Delete the temporary files that killed :func:`atomic_write` calls left for ``path``.

    Call it only where no other process writes ``path`` at the same time (the caller
    holds a lock, or is the only writer of that file). Returns the removed files.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed
