"""The worker side of the harness: one method's process, driven by JSON lines on stdin.

Every method runs in a process of its own (:mod:`experiments.peers.worker`), so its imports,
caches and memory never meet another's, and the competitor environment (where ``flamo`` is
FLAMO 0.2.20) never meets the project's. The orchestrator (:mod:`experiments.peers.pool`)
sends one request per line and reads one JSON reply per line; arrays travel through .npz
files in a folder both sides see. Library output to stdout is redirected to stderr, so
nothing but replies reaches the orchestrator.

An *adapter* (one class per method, in :mod:`experiments.peers.project` and
:mod:`experiments.peers.rivals`) builds the case's system from its numbers in float32 and
provides

- ``params()``: the trainable leaf tensors, in a fixed order;
- ``forward()``: the output in the case's canonical layout (a torch tensor);
- ``loss(output)``: the scalar the method differentiates (default: mean squared error to
  the case's target);
- ``realize(raw)``: the physical numbers (float64 numpy) that raw parameter values (a list
  of float64 arrays shaped like ``params()``) stand for, computed with the method's own
  mappings and designs in float64; the orchestrator feeds them to the ground truth;
- optionally ``optimizer``: then a whole training step (zero_grad, forward, loss, backward
  and the optimizer's update; the colorless workload) is timed in place of forward +
  backward;
- ``version`` and ``notes`` (how the system was built, what is not the documented default).

Timing: before every timed call each parameter is changed in place (``p.add_(0)``, which
bumps its version counter as an optimizer step does), because FLAMO memoizes responses by
parameter version; the same is done for every method. ``fwd`` is the output under
``torch.no_grad()``; ``fwdbwd`` is forward with autograd, the loss and ``backward()``.
Peak memory is the resident-set high-water mark of one forward + backward above the
resident memory before it (Linux ``/proc/self/clear_refs``).
"""

from __future__ import annotations

import gc
import json
import math
import os
import sys
import time
import traceback

import numpy as np
import torch

from benchmarks.workloads import host_peak_bytes

from . import systems

__all__ = ["Adapter", "serve"]


class Adapter:
    """Base of every method's adapter (see the module docstring for the contract)."""

    #: the package under test and its version, e.g. ("flamo", "0.2.20")
    package = "?"
    version = "?"
    notes = ""
    #: False for methods without a backward pass (scipy)
    differentiable = True

    def __init__(self, case: dict, nums: dict):
        self.case, self.nums = case, nums
        self.fit = case["workload"] == "fit"
        target = nums["target_mag"] if self.fit else nums.get("target")
        if target is not None:
            self._target = torch.as_tensor(target, dtype=torch.float32)

    def params(self) -> list:
        raise NotImplementedError

    def forward(self) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, output: torch.Tensor) -> torch.Tensor:
        """Mean squared error to the case's target; the fit workload's log-magnitude loss."""
        if self.fit:
            return systems.fit_loss(output, self._target, torch)
        return ((output - self._target) ** 2).mean()

    def realize(self, raw: list) -> dict:
        raise NotImplementedError

    def theta(self) -> torch.Tensor:
        """The (8, 5) parameters of the fit workload (systems.fit_sos), for its snapshots."""
        return self.params()[0]

    optimizer = None


def _bump(params):
    with torch.no_grad():
        for p in params:
            p.add_(0.0)


def _fwd(adapter):
    _bump(adapter.params())
    with torch.no_grad():
        return adapter.forward()


def _fwdbwd(adapter):
    params = adapter.params()
    if adapter.optimizer is None:
        _bump(params)
        for p in params:
            p.grad = None
    else:  # a training step: the update itself changes the parameters
        adapter.optimizer.zero_grad(set_to_none=True)
    loss = adapter.loss(adapter.forward())
    loss.backward()
    if adapter.optimizer is not None:
        adapter.optimizer.step()
    return loss


def _as_numpy(t) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


class _Server:
    def __init__(self, adapters: dict, parity: dict):
        self.adapters, self.parity = adapters, parity
        self.built = {}  # method -> its adapter for the current case

    def adapter(self, req) -> Adapter:
        if req["method"] not in self.built:
            raise ValueError(f"method {req['method']!r} has no system built in this worker")
        return self.built[req["method"]]

    def op_build(self, req):
        self.op_release(req)
        nums = dict(np.load(req["numbers"]))
        method, workload = req["method"], req["case"]["workload"]
        if workload not in self.adapters.get(method, {}):
            raise ValueError(f"no adapter for method {method!r} on workload {workload!r}; "
                             f"this side has {sorted(self.adapters)}")
        torch.manual_seed(0)
        t0 = time.perf_counter()
        a = self.built[method] = self.adapters[method][workload](req["case"], nums)
        return {"build_s": time.perf_counter() - t0, "package": a.package, "version": a.version,
                "notes": a.notes, "differentiable": a.differentiable,
                "n_params": int(sum(p.numel() for p in a.params())) if a.differentiable else 0}

    def op_release(self, req):
        self.built.pop(req["method"], None)
        gc.collect()
        return {}

    def op_output(self, req):
        out = _fwd(self.adapter(req))
        np.save(req["path"], _as_numpy(out))
        return {"shape": list(out.shape), "dtype": str(out.dtype)}

    def op_gradient(self, req):
        a = self.adapter(req)
        params = a.params()
        raw = [_as_numpy(p) for p in params]
        for p in params:
            p.grad = None
        loss = a.loss(a.forward())
        loss.backward()
        grads = [_as_numpy(p.grad) if p.grad is not None else np.zeros(p.shape) for p in params]
        np.savez(req["path"], **{f"raw{i}": r for i, r in enumerate(raw)},
                 **{f"grad{i}": g for i, g in enumerate(grads)})
        return {"loss": float(loss), "n": len(params)}

    def op_realize(self, req):
        data = np.load(req["raws"])
        count = int(data["count"])
        out = {}
        for j in range(count):
            raw = [data[f"r{j}_{i}"] for i in range(int(data["n"]))]
            for key, value in self.adapter(req).realize(raw).items():
                out[f"{j}:{key}"] = np.asarray(value)
        np.savez(req["path"], **out)
        return {"count": count}

    def op_time(self, req):
        """``repeats`` timed calls per mode after ``warmup`` untimed ones; with ``budget_s``
        the number of timed calls drops (to 1 at least) so that the round takes about that
        long, judged from the warm-up (or, without one, from ``expected_s``: the seconds of
        one call of every mode). The first timed call of each mode also gives its peak memory."""
        a = self.adapter(req)
        modes = [m for m in req["modes"] if m == "fwd" or a.differentiable]
        calls = {"fwd": lambda: _fwd(a), "fwdbwd": lambda: _fwdbwd(a)}
        per_call = 0.0 if req.get("warmup", 1) else req.get("expected_s", 0.0)
        for m in modes:
            for _ in range(req.get("warmup", 1)):
                t0 = time.perf_counter()
                calls[m]()
                per_call += (time.perf_counter() - t0) / req["warmup"]
        repeats = req["repeats"]
        if req.get("budget_s") and per_call > 0:
            repeats = max(1, min(repeats, int(req["budget_s"] // per_call)))
        times = {m: [] for m in modes}
        peak = {}
        def timed(m):
            t0 = time.perf_counter()
            calls[m]()
            times[m].append(time.perf_counter() - t0)

        for i in range(repeats):  # the modes alternate, so both see the same machine state
            for m in modes:
                if i == 0:
                    peak[m] = host_peak_bytes(lambda: timed(m))
                else:
                    timed(m)
        return {"times": times, "peak_bytes": peak, "repeats": repeats}

    def op_fit(self, req):
        """Time to target: ``steps`` Adam steps of the fit workload; returns the cumulative
        wall time at every step and the parameters at the logged steps (the loss is computed
        afterwards by the orchestrator in float64, outside the timed region)."""
        a = self.adapter(req)
        opt = torch.optim.Adam(a.params(), lr=req["lr"])
        log_at = set(req["log_at"])
        elapsed, clock, snaps, own = 0.0, [], {}, []
        for step in range(req["steps"] + 1):
            if step in log_at:
                snaps[f"s{step}"] = a.theta().detach().double().numpy().copy()
            if step == req["steps"]:
                break
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = a.loss(a.forward())
            loss.backward()
            opt.step()
            elapsed += time.perf_counter() - t0
            clock.append(elapsed)
            own.append(float(loss))
            if not math.isfinite(own[-1]):
                snaps[f"s{step + 1}"] = a.theta().detach().double().numpy().copy()
                break
        np.savez(req["path"], clock=np.asarray(clock), own_loss=np.asarray(own), **snaps)
        return {"steps_run": len(clock)}

    def op_parity(self, req):
        """A metric of this side's library on arrays from a file (metric and loss parity)."""
        out = self.parity[req["fn"]](dict(np.load(req["data"])), **req.get("kwargs", {}))
        np.savez(req["path"], **out)
        return {}

    def op_ping(self, req):
        import importlib.metadata

        import flamo  # this side's flamo: the project's, or FLAMO in the competitor environment

        return {"pid": os.getpid(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                "flamo": importlib.metadata.version("flamo"), "flamo_file": flamo.__file__}


def serve(adapters: dict, parity: dict, threads: int = 1) -> None:
    """Answer requests from stdin until ``{"op": "quit"}`` or end of input."""
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the libraries print goes to stderr
    sys.stdout = sys.stderr
    torch.set_num_threads(threads)
    # Decaying outputs reach denormal floats, which slow recursive filters many times;
    # flushing them to zero is fair to every method.
    torch.set_flush_denormal(True)
    server = _Server(adapters, parity)
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "quit":
            break
        try:
            result = {"ok": True, **getattr(server, "op_" + req["op"])(req)}
        except Exception as exc:  # reported to the orchestrator, which records it
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc()}
        reply.write(json.dumps(result) + "\n")
