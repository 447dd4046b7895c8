"""Process of one method: ``python -I worker.py {project,rivals} REPO_ROOT THREADS``.

Run with ``-I`` so that neither the current folder nor PYTHONPATH is on ``sys.path``. The
project side puts the repository first (this checkout's ``flamo``); the competitor side
appends it last, so that ``import flamo`` finds FLAMO 0.2.20 in the competitor environment's
site-packages while ``experiments.peers`` still comes from the repository. Each side checks
that ``flamo`` is the library it expects before it answers anything.
"""

import os
import signal
import sys
from pathlib import Path


def die_with_parent() -> None:
    """On Linux, have the kernel kill this worker when the process that started it ends, so
    that a run killed in the middle of a long call (SIGTERM, SIGKILL) leaves no worker
    computing on; elsewhere a worker ends at its next read of the closed request pipe."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    pr_set_pdeathsig = 1
    if ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL) != 0:
        return  # not fatal: the worker still ends when the request pipe closes
    if os.getppid() != parent:  # the parent ended before the request took effect
        os._exit(1)


def main(argv):
    die_with_parent()
    side, root, threads = argv[1], str(Path(argv[2]).resolve()), int(argv[3])
    if side == "project":
        sys.path.insert(0, root)
    elif side == "rivals":
        sys.path.append(root)
    else:
        raise SystemExit(f"worker: side must be 'project' or 'rivals', got {side!r}")
    import flamo

    ours = Path(flamo.__file__).resolve().parent == Path(root) / "flamo"
    if ours != (side == "project"):
        raise SystemExit(f"worker ({side}): imported the wrong flamo from {flamo.__file__}")
    if side == "project":
        from experiments.peers.project import ADAPTERS, PARITY
    else:
        from experiments.peers.rivals import ADAPTERS, PARITY
    from experiments.peers.protocol import serve

    serve(ADAPTERS, PARITY, threads)


if __name__ == "__main__":
    main(sys.argv)
