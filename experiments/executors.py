"""Where tasks run: in this process, on local Dask workers, or on any Dask cluster.

An executor runs :func:`experiments.tasks.execute_task` on a list of task specs and yields
``(index, outcome)`` as each finishes, in any order; :func:`experiments.tasks.run_tasks`
stores the outcomes. :class:`SerialExecutor` (the default) needs nothing installed;
:class:`DaskExecutor` needs Dask distributed (``pip install -e ".[cluster]"``) and either
starts ``workers`` local worker processes or connects to a running scheduler.
"""

from __future__ import annotations

import importlib.util
import logging
import traceback
from typing import Iterator

from experiments.tasks import execute_task

__all__ = ["SerialExecutor", "DaskExecutor", "make_executor"]


class SerialExecutor:
    """Every task in this process, one after the other (the default)."""

    parallel = False

    def run(self, specs: list[dict]) -> Iterator[tuple[int, dict]]:
        for i, spec in enumerate(specs):
            yield i, execute_task(spec)

    def describe(self) -> dict:
        """What ``meta.json`` records about the executor."""
        return {"kind": "serial", "workers": 1}

    def close(self) -> None:
        pass


class DaskExecutor:
    """Tasks on Dask workers: ``workers`` local processes, or the cluster at ``scheduler``.

    Parameters
    ----------
    workers : int, optional
        Start a local cluster of this many worker processes with one thread each (closed by
        :meth:`close`).
    scheduler : str, optional
        Address of a running scheduler (``tcp://HOST:PORT``). Its workers must run from a
        checkout of the same code, with the repository root on ``sys.path`` (start them
        there with ``python -m dask worker ADDRESS --nthreads 1``).

    Notes
    -----
    Dask reschedules the tasks of a worker that dies; a task that raises is reported, not
    retried. The cluster starts on the first :meth:`run`, so building an executor is cheap.
    """

    parallel = True

    def __init__(self, workers: int | None = None, scheduler: str | None = None):
        if (workers is None) == (scheduler is None):
            raise ValueError(f"give exactly one of workers and scheduler, got workers={workers!r}, "
                             f"scheduler={scheduler!r}")
        if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        if scheduler is not None and (not isinstance(scheduler, str) or "://" not in scheduler):
            raise ValueError(f"scheduler must be an address like 'tcp://HOST:PORT', got {scheduler!r}")
        if importlib.util.find_spec("distributed") is None:
            raise RuntimeError("--workers and --scheduler need Dask distributed, which is not "
                               "installed: pip install -e \".[cluster]\"")
        self.workers, self.scheduler = workers, scheduler
        self._client = self._cluster = None

    def _connect(self):
        if self._client is not None:
            return self._client
        from distributed import Client, LocalCluster

        if self.workers is not None:
            # one thread per worker process; Dask sets OMP/MKL/OPENBLAS_NUM_THREADS=1 in them
            self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None, silence_logs=logging.ERROR)
            self._client = Client(self._cluster)
        else:
            self._client = Client(self.scheduler, timeout=30)
        return self._client

    def run(self, specs: list[dict]) -> Iterator[tuple[int, dict]]:
        if not specs:
            return
        from distributed import as_completed

        client = self._connect()
        futures = [client.submit(execute_task, spec, key=f"{spec['experiment']}-{spec['digest']}",
                                 pure=False, retries=0) for spec in specs]
        index = {future.key: i for i, future in enumerate(futures)}
        try:
            for future in as_completed(futures):
                i = index[future.key]
                if future.status == "finished":
                    outcome = future.result()
                elif future.status == "error":  # Dask could not run it (e.g. KilledWorker)
                    exc = future.exception()
                    tb = "".join(traceback.format_exception(type(exc), exc, future.traceback()))
                    outcome = {"error": f"{type(exc).__name__}: {exc}", "traceback": tb, "worker": None}
                else:
                    outcome = {"error": f"the scheduler reports the task {future.status}", "worker": None}
                future.release()
                yield i, outcome
        finally:
            client.cancel([f for f in futures if not f.done()])

    def describe(self) -> dict:
        """What ``meta.json`` records: the kind, the worker count (at the last run) and the
        scheduler address for a remote cluster."""
        if self.workers is not None:
            return {"kind": "dask-local", "workers": self.workers}
        n = len(self._client.scheduler_info().get("workers", {})) if self._client is not None else None
        return {"kind": "dask", "scheduler": self.scheduler, "workers": n}

    def close(self) -> None:
        """Disconnect, and stop the local cluster if this executor started one."""
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None


def make_executor(workers: int | None = None, scheduler: str | None = None):
    """The executor for the command line's ``--workers N`` / ``--scheduler ADDRESS``
    (serial when neither is given)."""
    if workers is None and scheduler is None:
        return SerialExecutor()
    return DaskExecutor(workers=workers, scheduler=scheduler)
