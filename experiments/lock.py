"""Exclusive per-folder locks that say who holds them.

A lock is an ``fcntl.flock`` on a small file. The operating system releases it when its
holder exits in any way (SIGKILL included), so a lock can never outlive its process. The
file records the holder (pid, host, start time, command) for the error message of a second
run, and is emptied on a clean release: a non-empty file that can be locked is the trace of
a holder that died, which :func:`exclusive_lock` reports with a warning and takes over.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import socket
import warnings
from pathlib import Path

__all__ = ["LockHeldError", "StaleLockWarning", "exclusive_lock"]


class LockHeldError(RuntimeError):
    """Another live process holds the lock."""


class StaleLockWarning(RuntimeWarning):
    """A lock left by a process that died was taken over."""


def _describe(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, started "
            f"{holder.get('start_time_utc', '?')}, command: {holder.get('command', '?')}")


def _read_holder(fh) -> dict | None:
    fh.seek(0)
    text = fh.read()
    if not text.strip():
        return None
    try:
        holder = json.loads(text)
    except ValueError:
        return {"command": f"(unreadable lock file content {text[:80]!r})"}
    return holder if isinstance(holder, dict) else {"command": repr(holder)[:80]}


@contextlib.contextmanager
def exclusive_lock(path, command: str, what: str = "this folder", wait: bool = False):
    """Hold an exclusive lock on ``path`` (created if needed) for the ``with`` block.

    Parameters
    ----------
    path : str or PathLike
        The lock file.
    command : str
        What the holder runs, recorded for the message a second process gets.
    what : str
        What the lock protects, for messages (e.g. "results/chaining").
    wait : bool
        Block until the lock is free instead of raising (for short critical sections).

    Raises
    ------
    LockHeldError
        If a live process holds the lock; the message names its pid, host, start time and
        command.

    Warns
    -----
    StaleLockWarning
        If the file names a holder that died without releasing it (the lock is taken over).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = _read_holder(fh) or {}
            raise LockHeldError(f"{what} is locked by another run: {_describe(holder)} "
                                f"(lock file {path})") from None
        stale = _read_holder(fh)
        if stale is not None:
            warnings.warn(f"{what}: taking over the lock of a run that died without releasing "
                          f"it: {_describe(stale)} (lock file {path})", StaleLockWarning,
                          stacklevel=3)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
              "start_time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(me) + "\n")
        fh.flush()
        try:
            yield me
        finally:
            fh.seek(0)
            fh.truncate()  # a clean release leaves an empty file
            fh.flush()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()
