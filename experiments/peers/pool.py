"""The orchestrator's side of the harness: one worker process per method.

A :class:`Pool` starts each method's process on first use (:mod:`experiments.peers.worker`
under the project's interpreter or the competitor environment's) and keeps it for the whole
run, so a method pays its imports once and every timing of it comes from the same process.
Requests that run past ``timeout_s`` kill the worker (it is restarted on the next request)
and raise :class:`WorkerTimeout`; a worker that dies (e.g. killed for memory) raises
:class:`WorkerDied` with the end of its stderr.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().with_name("worker.py")
#: project methods (this environment); every other method runs in the competitor environment
PROJECT_METHODS = ("library", "library-time", "library-generic", "baselines-block-fdn",
                   "baselines-sosfilt-scipy", "baselines-sosfilt-torch")
RIVAL_METHODS = ("FLAMO", "FLAMO-SOSFilter", "FLAMO-Biquad", "dasp", "philtorch-ssm",
                 "philtorch-diag_ssm", "torchlpc", "scipy")


class WorkerError(RuntimeError):
    """The worker answered with an exception (the adapter or the library raised)."""


class WorkerTimeout(RuntimeError):
    """A request ran past its time limit; the worker was killed."""


class WorkerDied(RuntimeError):
    """The worker process ended without answering."""


def competitor_python() -> Path:
    """Interpreter of the competitor environment ($FLAMO_COMPETITORS_VENV or
    .venv-competitors in the repository, built by scripts/setup_competitors.sh)."""
    venv = Path(os.environ.get("FLAMO_COMPETITORS_VENV", ROOT / ".venv-competitors"))
    if not venv.is_absolute():
        venv = ROOT / venv
    return venv / "bin" / "python"


def side_of(method: str) -> str:
    if method in PROJECT_METHODS:
        return "project"
    if method in RIVAL_METHODS:
        return "rivals"
    raise ValueError(f"unknown method {method!r}; known: {PROJECT_METHODS + RIVAL_METHODS}")


class Worker:
    """One method's process; :meth:`call` sends a request and returns the reply dict."""

    def __init__(self, method: str, threads: int, scratch: Path):
        self.method, self.side = method, side_of(method)
        python = sys.executable if self.side == "project" else str(competitor_python())
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), MPLBACKEND="Agg")
        self.log = tempfile.NamedTemporaryFile("w+", prefix=f"{method}-", suffix=".log", dir=scratch,
                                               delete=False)
        self.proc = subprocess.Popen([python, "-I", str(WORKER), self.side, str(ROOT), str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, cwd=scratch, env=env)

    def stderr_tail(self, chars=3000) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-chars:]

    def call(self, op: str, timeout_s: float | None = None, **kwargs) -> dict:
        self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        if not ready:
            self.kill()
            raise WorkerTimeout(f"{self.method}: {op} ran past {timeout_s:g} s")
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise WorkerDied(f"{self.method}: worker ended (exit status {code}"
                             f"{', killed: likely out of memory' if code == -9 else ''}) during {op}; "
                             f"stderr:\n{self.stderr_tail()}")
        reply = json.loads(line)
        if not reply.pop("ok"):
            raise WorkerError(f"{self.method}: {op}: {reply['error']}\n{reply['traceback']}")
        return reply

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self):
        if self.alive:
            self.proc.kill()
            self.proc.wait()

    def ask_to_quit(self):
        if self.alive:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
            except OSError:
                pass

    def close(self):
        self.ask_to_quit()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()
        self.log.close()


class Handle:
    """One method's view of a worker: every request names the method."""

    def __init__(self, worker: Worker, method: str):
        self.worker, self.method = worker, method

    def call(self, op: str, timeout_s: float | None = None, **kwargs) -> dict:
        return self.worker.call(op, timeout_s=timeout_s, method=self.method, **kwargs)

    @property
    def alive(self) -> bool:
        return self.worker.alive


class Pool:
    """The workers of one run, started lazily: one per method, or with ``per_method=False``
    one per side (project, competitors), which serves every method of its side (cheaper to
    start, for correctness checks; timings always use one process per method)."""

    def __init__(self, threads: int, scratch: Path, per_method: bool = True):
        self.threads, self.scratch, self.per_method = threads, Path(scratch), per_method
        self.workers: dict[str, Worker] = {}

    def __getitem__(self, method: str) -> "Handle":
        key = method if self.per_method else side_of(method)
        worker = self.workers.get(key)
        if worker is None or not worker.alive:
            if worker is not None:
                worker.close()
            worker = self.workers[key] = Worker(method, self.threads, self.scratch)
        return Handle(worker, method)

    def start(self, methods):
        """Start the workers of ``methods`` at once, so their imports overlap."""
        for method in methods:
            self[method]

    def close(self):
        for worker in self.workers.values():  # ask them all first: they exit in parallel
            worker.ask_to_quit()
        for worker in self.workers.values():
            worker.close()
        self.workers.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
