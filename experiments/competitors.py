"""The library against its real peers, on the same systems: one matrix of time, memory and accuracy.

Peers: FLAMO 0.2.20 (the reference frequency-sampling library), the time-domain filter
libraries that claim to beat frequency sampling for low-order filters (philtorch, Yu &
Fazekas 2025; torchlpc, Yu et al., DAFx 2024), dasp-pytorch (frequency sampling of biquads),
scipy, and this project's own baselines. The competitors run in their own environment,
built by ``scripts/setup_competitors.sh`` (FLAMO's import name is also ``flamo``); every
method runs in a process of its own (:mod:`experiments.peers`), and every case is built by
every method from the same numbers (:mod:`experiments.peers.systems`).

For each case and method, in this order:

1. **Equivalence** before any timing: the method's output against the float64 ground truth
   (numpy/scipy only) of the system it realized, and its gradient against central finite
   differences of the float64 ground-truth loss along ``fd_directions`` random directions of
   its own parameters. A method whose output error exceeds ``equivalence_db`` is not timed.
2. **Timing** in ``rounds`` rounds; in each round every method of the case runs its timed
   calls in turn (the order rotates per round), so all see the same machine state. Per call:
   the output without autograd (fwd) and the output + loss + backward (fwd+bwd; for the
   colorless workload the whole Adam step). Reported: medians over all rounds.
3. **Peak memory**: resident-set high-water mark of one call above the resident memory
   before it.

Workloads (see :mod:`experiments.peers.systems`): the FDN (N x nfft), the FDN with a GEQ per
line in both arrangements, the 8-biquad cascade (1 and 64 channels, 0.25-8 s at 48 kHz), one
colorless-FDN training step, and time to target (benchopt-style: loss against wall time of
an 8-biquad fit to a Butterworth and ``fit_targets`` random stable targets, the loss computed
afterwards in float64 outside the timed region). Metric and loss parity: the project's
multi-resolution STFT loss against auraloss, its Schroeder EDC and T20/T30 against pyrato
on measured RIRs.

This is a timing experiment (``TIMING = True``): it must not run next to other work. Cases
a method cannot run here (memory, time limit) are recorded as skipped with the reason; a
missing competitor environment skips the competitors' rows, never silently. Cases and fit
targets not started within ``run_budget_s`` of the run are recorded as skipped (run budget),
so that a run on a shared machine ends in time with what it measured; the cases run from
the cheapest (:func:`cost`), so a cut run misses the largest sizes, not whole workloads. Every finished case
and fit target is kept in ``ctx.resume_dir``: an interrupted run resumes with the next one,
and so does the next run after one that the budget cut (the folder is kept, and the budget is
not part of the resume key), so the matrix fills up over several budgeted runs of one commit.
"""

from __future__ import annotations

import glob
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.colorless_common import TrialStore
from experiments.peers import systems
from experiments.peers.pool import (ROOT, Pool, WorkerDied, WorkerError, WorkerTimeout,
                                    competitor_python, side_of)

DESCRIPTION = ("extension: the library vs FLAMO 0.2.20, philtorch, dasp, torchlpc, scipy and the baselines "
               "on the same systems (time, memory, accuracy, time to target, metric parity)")
TIMING = True

#: The methods of each workload, in table order (project first).
METHODS = {
    "fdn": ["library", "library-time", "library-generic", "baselines-block-fdn", "FLAMO"],
    "fdn_geq": ["library", "library-time", "library-generic", "FLAMO"],
    "cascade": ["library", "library-time", "baselines-sosfilt-scipy", "baselines-sosfilt-torch",
                "FLAMO-SOSFilter", "FLAMO-Biquad", "dasp", "philtorch-ssm", "philtorch-diag_ssm", "torchlpc",
                "scipy"],
    "colorless": ["library", "library-generic", "FLAMO"],
    "fit": ["library", "baselines-sosfilt-scipy", "baselines-sosfilt-torch", "FLAMO-SOSFilter", "dasp",
            "philtorch-ssm", "philtorch-diag_ssm", "torchlpc"],
}
#: Peak working set of a frequency-sampling FDN call, in units of one complex64 (M, N, N)
#: tensor, per (workload, method) (measured at N = 16, nfft = 2^17, forward + backward, with
#: some margin; used to skip cases that cannot fit in the memory available here).
LOOP_TENSORS = {("fdn", "library"): 2.5, ("fdn", "library-generic"): 5.0, ("fdn", "FLAMO"): 5.0,
                ("fdn_geq", "library"): 4.5, ("fdn_geq", "library-generic"): 5.0, ("fdn_geq", "FLAMO"): 16.0,
                ("colorless", "library"): 2.5, ("colorless", "library-generic"): 6.0,
                ("colorless", "FLAMO"): 5.0}


@dataclass
class Config:
    fdn_sizes: list = field(default_factory=lambda: [6, 16, 64])
    fdn_nffts: list = field(default_factory=lambda: [2 ** 15, 2 ** 17])
    geq_sizes: list = field(default_factory=lambda: [6, 16])
    geq_nffts: list = field(default_factory=lambda: [2 ** 15, 2 ** 17])
    arrangements: list = field(default_factory=lambda: ["forward", "feedback"])
    cascade_channels: list = field(default_factory=lambda: [1, 64])
    cascade_lengths_s: list = field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0, 4.0, 8.0])
    colorless_sizes: list = field(default_factory=lambda: [6])
    colorless_nffts: list = field(default_factory=lambda: [2 ** 15, 2 ** 17])
    fit_targets: int = 20  # random stable targets, besides the Butterworth
    fit_nfft: int = 2 ** 12
    fit_steps: int = 1500
    fit_lr: float = 1e-2
    fit_threshold_db2: float = 1.0  # fixed before any run: the loss that counts as "reached"
    rounds: int = 3
    repeats: int = 3  # timed calls per mode and round (fewer when a call is long, round_budget_s)
    round_budget_s: float = 60.0
    threads: int = 1
    fd_directions: int = 3
    fd_step: float = 1e-5  # relative step of the finite differences
    equivalence_db: float = -40.0  # output error above this: not the same system, not timed
    call_timeout_s: float = 1500.0
    #: seconds of the run after which no case or fit target starts (None: no limit); the
    #: whole matrix takes longer than this on the shared 2-core machine. A run that skipped
    #: work keeps its finished cases, and the next run of the same commit and config (any
    #: budget) continues with the next ones.
    run_budget_s: float | None = field(default=2700.0, metadata={"budget": True})
    memory_fraction: float = 0.7  # of the memory available when a case starts
    process_per_method: bool = True  # False: one process per side (quick smoke only, cheaper)
    rir_dir: str = "data/rirs"  # every *.wav below it (relative: to the repository)
    parity_fft_sizes: list = field(default_factory=lambda: [512, 1024, 2048])
    parity_seconds: float = 1.0
    parity_mrstft_rtol: float = 1e-3  # fixed before any run, for zero-padded signals
    parity_edc_atol_db: float = 1e-6
    parity_t60_rtol: float = 1e-3

    @classmethod
    def quick(cls):
        """Tiny sizes, every adapter once (seconds to a minute)."""
        return cls(fdn_sizes=[4], fdn_nffts=[2 ** 14], geq_sizes=[4], geq_nffts=[2 ** 14],
                   cascade_channels=[1, 4], cascade_lengths_s=[0.05], colorless_nffts=[2 ** 13],
                   fit_targets=1, fit_steps=10, rounds=1, repeats=1, fd_directions=1,
                   rir_dir="data/rirs", parity_seconds=0.25, process_per_method=False, run_budget_s=None)


# -- cases ------------------------------------------------------------------------------
def _pow2(n):
    return f"2^{int(math.log2(n))}" if n & (n - 1) == 0 else str(n)


def case_label(case) -> str:
    w = case["workload"]
    if w in ("fdn", "colorless"):
        return f"N={case['n']}, nfft={_pow2(case['nfft'])}"
    if w == "fdn_geq":
        return f"{case['arrangement']}, N={case['n']}, nfft={_pow2(case['nfft'])}"
    if w == "cascade":
        return f"{case['channels']} ch, {case['length'] / systems.FS:g} s"
    return str(case.get("target"))


def cases(cfg: Config, seed: int) -> list:
    out = [dict(workload="fdn", n=n, nfft=f) for f in cfg.fdn_nffts for n in cfg.fdn_sizes]
    out += [dict(workload="fdn_geq", n=n, nfft=f, arrangement=a)
            for a in cfg.arrangements for f in cfg.geq_nffts for n in cfg.geq_sizes]
    out += [dict(workload="cascade", channels=c, length=int(round(s * systems.FS)))
            for c in cfg.cascade_channels for s in cfg.cascade_lengths_s]
    out += [dict(workload="colorless", n=n, nfft=f) for f in cfg.colorless_nffts for n in cfg.colorless_sizes]
    for c in out:
        c["seed"] = seed
    return sorted(out, key=cost)  # stable: a run cut by its budget misses the largest cases


def cost(case) -> float:
    """Rough seconds of a case's timed calls, all methods together, to run the cases from the
    cheapest: 8e-5 s per sample and channel of the cascade, 1e-6 s per nfft N^2 of a loop
    (x10 with a GEQ per line). The two rates are the sums over the methods of the fwd and
    fwd+bwd medians of the run committed in 0b32fed (the cases it finished: both within a
    factor of 2 of these); only the order matters."""
    if case["workload"] == "cascade":
        return 8e-5 * case["length"] * case["channels"]
    return 1e-6 * case["nfft"] * case["n"] ** 2 * (10 if case["workload"] == "fdn_geq" else 1)


def _size(case):
    """The x axis of the figures: samples (nfft or signal length)."""
    return case.get("nfft", case.get("length"))


def estimated_bytes(method, case) -> float:
    """Working set of a frequency-sampling FDN call (0 when not modelled: small)."""
    factor = LOOP_TENSORS.get((case["workload"], method))
    return 0.0 if factor is None else factor * (case["nfft"] // 2 + 1) * case["n"] ** 2 * 8


def available_bytes() -> float:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return 1024.0 * int(line.split()[1])
    return math.inf


# -- equivalence ---------------------------------------------------------------------------
def _load_physical(path, count):
    data = np.load(path)
    out = [dict() for _ in range(count)]
    for key in data.files:
        j, name = key.split(":", 1)
        out[int(j)][name] = data[key]
    return out


def check(worker, case, nums, info, cfg, scratch, rng) -> dict:
    """Output error against the float64 truth and gradient error against float64 finite
    differences of the truth loss, for the system the method built."""
    worker.call("output", path=str(scratch / "out.npy"), timeout_s=cfg.call_timeout_s)
    estimate = np.load(scratch / "out.npy")
    raw, grad = [], []
    if info["differentiable"]:
        worker.call("gradient", path=str(scratch / "grad.npz"), timeout_s=cfg.call_timeout_s)
        g = np.load(scratch / "grad.npz")
        n = len([k for k in g.files if k.startswith("raw")])
        raw, grad = [g[f"raw{i}"] for i in range(n)], [g[f"grad{i}"] for i in range(n)]
    flat = np.concatenate([r.ravel() for r in raw]) if raw else np.zeros(0)
    k = cfg.fd_directions if flat.size else 0
    V = rng.normal(size=(k, flat.size))
    V /= np.linalg.norm(V, axis=1, keepdims=True) if k else 1
    eps = cfg.fd_step * max(1.0, float(np.sqrt(np.mean(flat ** 2)))) if flat.size else 0.0
    candidates = [flat] + [flat + s * eps * v for v in V for s in (1.0, -1.0)]
    shapes = [r.shape for r in raw]
    arrays = {"count": len(candidates), "n": len(raw)}
    for j, cand in enumerate(candidates):
        parts = np.split(cand, np.cumsum([int(np.prod(s)) for s in shapes])[:-1]) if raw else []
        for i, (part, shape) in enumerate(zip(parts, shapes)):
            arrays[f"r{j}_{i}"] = part.reshape(shape)
    np.savez(scratch / "raws.npz", **arrays)
    worker.call("realize", raws=str(scratch / "raws.npz"), path=str(scratch / "phys.npz"),
                timeout_s=cfg.call_timeout_s)
    physical = _load_physical(scratch / "phys.npz", len(candidates))
    truth = systems.truth(case, physical[0])
    error = systems.relative_error(estimate, truth)
    out = {"output_error": error, "output_error_db": 20 * math.log10(max(error, 1e-300)),
           "gradient_error": math.nan}
    if k:
        losses = [systems.loss(case, systems.truth(case, p), p, nums) for p in physical[1:]]
        fd = (np.array(losses[0::2]) - np.array(losses[1::2])) / (2 * eps)
        analytic = V @ np.concatenate([g.ravel() for g in grad])
        out["gradient_error"] = float(np.linalg.norm(analytic - fd) / np.linalg.norm(fd))
    return out


# -- one case -----------------------------------------------------------------------------
def _failure(exc) -> str:
    kind = {WorkerTimeout: "skipped: time limit", WorkerDied: "failed: worker died",
            WorkerError: "failed"}[type(exc)]
    first = str(exc).split("\n", 1)[0]
    return f"{kind} ({first})"


def case_row(method, case, status="ok") -> dict:
    """The identifying columns of a method's row for a case."""
    return {"method": method, "workload": case["workload"], "case": case_label(case), "size": _size(case),
            **{k: case.get(k) for k in ("n", "nfft", "channels", "length", "arrangement")}, "status": status}


def run_case(case, pool, cfg, ctx, scratch, have_rivals) -> list:
    nums = systems.numbers(case)
    npath = scratch / "numbers.npz"
    np.savez(npath, **nums)
    rows, live, built, check_s = {}, [], [], {}
    budget = cfg.memory_fraction * available_bytes()
    for method in METHODS[case["workload"]]:
        row = rows[method] = case_row(method, case)
        if side_of(method) == "rivals" and not have_rivals:
            row["status"] = "skipped: competitor environment missing (scripts/setup_competitors.sh)"
            continue
        need = estimated_bytes(method, case)
        if need > budget:
            row["status"] = (f"skipped: memory (needs ~{need / 2**30:.1f} GiB, "
                             f"{budget / 2**30:.1f} GiB usable here)")
            continue
        worker = pool[method]
        try:
            built.append(method)
            info = worker.call("build", case=case, numbers=str(npath),
                               timeout_s=cfg.call_timeout_s)
            row.update(package=info["package"], version=info["version"], notes=info["notes"],
                       n_params=info["n_params"], build_s=info["build_s"])
            t0 = time.perf_counter()
            row.update(check(worker, case, nums, info, cfg, scratch,
                             np.random.default_rng([ctx.seed, len(rows)])))
            check_s[method] = time.perf_counter() - t0
        except (WorkerError, WorkerTimeout, WorkerDied) as exc:
            row["status"] = _failure(exc)
            ctx.log(f"{case_label(case)} {method}: {exc}")
            continue
        if row["output_error_db"] > cfg.equivalence_db:
            row["status"] = (f"not equivalent: output error {row['output_error_db']:.1f} dB > "
                             f"{cfg.equivalence_db:g} dB")
            continue
        live.append(method)
    samples = {m: {"fwd": [], "fwdbwd": []} for m in live}
    peaks = {m: {"fwd": 0.0, "fwdbwd": 0.0} for m in live}
    # (warm-up calls, timed calls) per round; the check already ran forward and backward,
    # which is warm-up enough for calls of seconds
    plan = {m: (0 if check_s[m] > 5.0 else 1, cfg.repeats) for m in live}
    loads = []
    for r in range(cfg.rounds):
        loads.append(os.getloadavg()[0])
        order = live[r % len(live):] + live[:r % len(live)] if live else []
        for method in order:
            if rows[method]["status"] != "ok":
                continue
            warmup, repeats = plan[method]
            try:
                res = pool[method].call("time", modes=["fwd", "fwdbwd"], warmup=warmup, repeats=repeats,
                                        budget_s=cfg.round_budget_s, expected_s=check_s[method],
                                        timeout_s=cfg.call_timeout_s)
            except (WorkerError, WorkerTimeout, WorkerDied) as exc:
                rows[method]["status"] = _failure(exc)
                ctx.log(f"{case_label(case)} {method}: {exc}")
                continue
            for mode, t in res["times"].items():
                samples[method][mode] += t
                peaks[method][mode] = max(peaks[method][mode], res["peak_bytes"][mode])
            per_call = sum(statistics.median(t) for t in res["times"].values())
            plan[method] = (1 if per_call < 1.0 else 0, res["repeats"])
    for method in live:
        row = rows[method]
        for mode in ("fwd", "fwdbwd"):
            t = samples[method][mode]
            row[f"time_{mode}_s"] = statistics.median(t) if t else math.nan
            row[f"spread_{mode}"] = (float(np.subtract(*np.percentile(t, [75, 25])) / np.median(t))
                                     if len(t) > 1 else math.nan)
            row[f"peak_{mode}_bytes"] = peaks[method][mode] if t else math.nan
        row["samples"] = len(samples[method]["fwdbwd"]) or len(samples[method]["fwd"])
        row["load_1min"] = max(loads) if loads else math.nan
    for method in built:
        try:
            if pool[method].alive:
                pool[method].call("release", timeout_s=60)
        except (WorkerError, WorkerTimeout, WorkerDied):
            pass
    for row in rows.values():
        ctx.log(f"{row['case']:>28} {row['method']:<24} {row['status'][:60]:<12} "
                f"fwd+bwd {row.get('time_fwdbwd_s', math.nan):.4g} s, "
                f"err {row.get('output_error_db', math.nan):.1f} dB, grad {row.get('gradient_error', math.nan):.2g}")
    return list(rows.values())


# -- time to target ---------------------------------------------------------------------------
#: The place of the time-to-target fits among the cases by :func:`cost` (rough seconds of
#: one target: 8 methods x fit_steps steps): after the FDNs of N <= 16, the GEQ FDNs of
#: N = 6 and the 64-channel cascade of 0.25 s, before the longer 64-channel cascades, the
#: GEQ FDNs of N = 16 and the FDNs of N = 64.
FIT_COST = 100.0


def fit_methods(have_rivals) -> list:
    return [m for m in METHODS["fit"] if have_rivals or side_of(m) == "project"]


def run_fit(cfg, pool, ctx, scratch, methods, ti, target) -> dict:
    """Every method's fit to one target: {"curves": rows of the loss against wall time,
    "summary": a row per method}."""
    curves, summary = [], []
    case = dict(workload="fit", nfft=cfg.fit_nfft, target=target, seed=ctx.seed)
    nums = systems.numbers(case)
    np.savez(scratch / "numbers.npz", **nums)
    for method in methods[ti % len(methods):] + methods[:ti % len(methods)]:
        row = {"method": method, "target": str(target), "status": "ok"}
        try:
            worker = pool[method]
            info = worker.call("build", case=case, numbers=str(scratch / "numbers.npz"),
                               timeout_s=cfg.call_timeout_s)
            worker.call("fit", steps=cfg.fit_steps, lr=cfg.fit_lr, log_at=list(range(cfg.fit_steps + 1)),
                        path=str(scratch / "fit.npz"), timeout_s=cfg.call_timeout_s)
            worker.call("release", timeout_s=60)
        except (WorkerError, WorkerTimeout, WorkerDied) as exc:
            row["status"] = _failure(exc)
            summary.append(row)
            ctx.log(f"fit {target} {method}: {exc}")
            continue
        data = np.load(scratch / "fit.npz")
        clock = np.concatenate([[0.0], data["clock"]])
        steps = sorted(int(k[1:]) for k in data.files if k.startswith("s"))
        losses = np.array([systems.fit_true_loss(data[f"s{s}"], nums["target_mag"], cfg.fit_nfft)
                           for s in steps])
        losses[~np.isfinite(losses)] = np.inf
        for s, loss in zip(steps, losses):
            curves.append({"method": method, "target": str(target), "step": s,
                           "wall_s": float(clock[min(s, len(clock) - 1)]), "loss_db2": float(loss)})
        hit = np.flatnonzero(losses <= cfg.fit_threshold_db2)
        row.update(version=info["version"], steps_run=len(data["clock"]),
                   time_per_step_s=float(np.median(np.diff(clock))) if len(clock) > 1 else math.nan,
                   initial_loss_db2=float(losses[0]), final_loss_db2=float(losses[-1]),
                   own_initial_loss_db2=float(data["own_loss"][0]) if len(data["own_loss"]) else math.nan,
                   reached=bool(hit.size),
                   steps_to_target=int(steps[hit[0]]) if hit.size else -1,
                   time_to_target_s=float(clock[steps[hit[0]]]) if hit.size else math.nan)
        if not np.isfinite(losses[-1]):
            row["status"] = "diverged (non-finite parameters or loss)"
        summary.append(row)
    return {"curves": curves, "summary": summary}


# -- metric parity ----------------------------------------------------------------------------
def _rirs(cfg, ctx):
    root = Path(cfg.rir_dir) if Path(cfg.rir_dir).is_absolute() else ROOT / cfg.rir_dir
    files = sorted(glob.glob(str(root / "**" / "*.wav"), recursive=True))
    if not files:
        raise ValueError(f"competitors: rir_dir holds no *.wav files: {root}")
    import soundfile

    out = []
    for f in files:
        h, fs = soundfile.read(f, dtype="float64", always_2d=True)
        h = h[:, 0]
        onset = int(np.argmax(np.abs(h)))
        out.append((os.path.relpath(f, root), h[onset:], fs))
    return out


def run_parity(cfg, pool, ctx, scratch, have_rivals):
    if not have_rivals:
        return pd.DataFrame([{"metric": "all", "status": "skipped: competitor environment missing"}])
    rirs = _rirs(cfg, ctx)
    rng = np.random.default_rng([ctx.seed, 7])
    rows = []
    # multi-resolution STFT: pairs (a measured RIR and the next one), -60 dB noise added so
    # that every STFT bin lies far above both libraries' eps floors; "padded": n_fft/2 zeros
    # at both ends, so reflect (auraloss) and zero (project) padding see the same samples.
    length = int(cfg.parity_seconds * 48000)
    sigs = []
    for name, h, fs in rirs:
        h = np.resize(h, length) if len(h) < length else h[:length]
        sigs.append((name, h / np.abs(h).max()))
    half = max(cfg.parity_fft_sizes) // 2
    for padded in (False, True):
        pred, target, names = [], [], []
        for (na, a), (nb, b) in zip(sigs, sigs[1:] + sigs[:1]):
            a = a + 1e-3 * rng.normal(size=a.shape)
            b = b + 1e-3 * rng.normal(size=b.shape)
            if padded:
                a, b = np.pad(a, half), np.pad(b, half)
            pred.append(a), target.append(b), names.append(f"{na} vs {nb}")
        np.savez(scratch / "mrstft.npz", pred=np.array(pred), target=np.array(target))
        result = {}
        for side, method in (("project", "library"), ("peer", "FLAMO")):
            pool[method].call("parity", fn="mrstft", data=str(scratch / "mrstft.npz"),
                              path=str(scratch / "p.npz"), kwargs={"fft_sizes": cfg.parity_fft_sizes})
            result[side] = np.load(scratch / "p.npz")["loss"]
        for name, p, q in zip(names, result["project"], result["peer"]):
            rel = abs(p - q) / abs(q)
            rows.append({"metric": "multi-resolution STFT loss", "peer": "auraloss",
                         "signal": name + (" (zero-padded)" if padded else ""),
                         "project": p, "peer_value": q, "difference": rel, "difference_unit": "relative",
                         "tolerance": cfg.parity_mrstft_rtol if padded else math.nan,
                         "verdict": ("pass" if rel <= cfg.parity_mrstft_rtol else "fail") if padded
                         else "documented difference (auraloss pads frames by reflection, the "
                              "project with zeros)"})
    # Schroeder EDC and T20 / T30 on every RIR
    ranges = [(-5.0, -25.0), (-5.0, -35.0)]
    for (name, h, fs) in rirs:
        np.savez(scratch / "edc.npz", h0=h)
        res = {}
        for side, method in (("project", "library"), ("peer", "FLAMO")):
            pool[method].call("parity", fn="edc", data=str(scratch / "edc.npz"), path=str(scratch / "p.npz"),
                              kwargs={"fs": fs, "ranges": ranges})
            res[side] = dict(np.load(scratch / "p.npz"))
        e1, e2 = res["project"]["edc0"], res["peer"]["edc0"]
        valid = e2 > -100
        rows.append({"metric": "Schroeder EDC (dB, above -100 dB)", "peer": "pyrato", "signal": name,
                     "project": math.nan, "peer_value": math.nan,
                     "difference": float(np.max(np.abs(e1[valid] - e2[valid]))), "difference_unit": "dB",
                     "tolerance": cfg.parity_edc_atol_db})
        for (hi, lo), p, q in zip(ranges, res["project"]["t60_0"], res["peer"]["t60_0"]):
            rows.append({"metric": f"T{int(hi - lo)} (s)", "peer": "pyrato", "signal": name, "project": p,
                         "peer_value": q, "difference": abs(p - q) / abs(q), "difference_unit": "relative",
                         "tolerance": cfg.parity_t60_rtol})
        for row in rows[-3:]:
            row["verdict"] = "pass" if row["difference"] <= row["tolerance"] else "fail"
    return pd.DataFrame(rows)


# -- the run ----------------------------------------------------------------------------------
def competitor_versions(pool, have_rivals) -> dict:
    if not have_rivals:
        return {"competitor_environment": "missing"}
    import subprocess

    code = ("import importlib.metadata as m, json; print(json.dumps({d: m.version(d) for d in "
            "['flamo', 'philtorch', 'dasp-pytorch', 'torchlpc', 'auraloss', 'pyrato', 'pyfar', "
            "'torch', 'numpy', 'scipy']}))")
    out = subprocess.run([str(competitor_python()), "-I", "-c", code], capture_output=True, text=True,
                         check=True).stdout
    import json

    return {"competitor_environment": str(competitor_python().parent.parent),
            "competitor_versions": json.loads(out)}


def run(cfg: Config, ctx) -> None:
    have_rivals = competitor_python().exists()
    if not have_rivals:
        ctx.log(f"competitor environment not found at {competitor_python()}: competitors are "
                f"recorded as skipped (build it with scripts/setup_competitors.sh)")
    t_start, load_start = time.perf_counter(), os.getloadavg()
    with (tempfile.TemporaryDirectory(prefix="competitors-") as tmp,
          Pool(cfg.threads, Path(tmp), per_method=cfg.process_per_method) as pool):
        scratch = Path(tmp)
        pool.start(m for m in dict.fromkeys(sum(METHODS.values(), []))  # imports overlap
                   if have_rivals or side_of(m) == "project")
        ctx.provenance(**competitor_versions(pool, have_rivals))
        store = TrialStore(ctx.resume_dir) if ctx.resume_dir else None

        def over_budget():
            return cfg.run_budget_s is not None and time.perf_counter() - t_start > cfg.run_budget_s

        parity = run_parity(cfg, pool, ctx, scratch, have_rivals)  # cheap: first, always
        # the cases and the fit targets, from the cheapest (stable sort: fits in target order)
        fit_targets = ["butterworth"] + list(range(cfg.fit_targets))
        work = sorted([(cost(c), "case", i, c) for i, c in enumerate(cases(cfg, ctx.seed))]
                      + [(FIT_COST, "fit", i, t) for i, t in enumerate(fit_targets)], key=lambda w: w[0])
        rows, curves, fits, skipped = [], [], [], []
        for _, kind, i, item in ctx.progress(work, desc="cases and fits"):
            done = store.load(kind, i) if store else None
            if done is None and over_budget():
                skipped.append(case_label(item) if kind == "case" else f"fit target {item}")
                done = ([case_row(m, item, "skipped: run budget") for m in METHODS[item["workload"]]]
                        if kind == "case" else {"curves": [], "summary": [
                            {"method": m, "target": str(item), "status": "skipped: run budget"}
                            for m in fit_methods(have_rivals)]})
            elif done is None:
                done = (run_case(item, pool, cfg, ctx, scratch, have_rivals) if kind == "case" else
                        run_fit(cfg, pool, ctx, scratch, fit_methods(have_rivals), i, item))
                if store:
                    store.save(done, kind, i)
            if kind == "case":
                rows += done
            else:
                curves += done["curves"]
                fits += done["summary"]
        table, curves, fits = pd.DataFrame(rows), pd.DataFrame(curves), pd.DataFrame(fits)
        ctx.provenance(run_budget_s=cfg.run_budget_s, skipped_run_budget=skipped)
        if skipped and store:
            ctx.keep_resume_dir(f"{len(skipped)} cases and fit targets skipped by the run budget")
    load_end = os.getloadavg()
    table["device"] = "cpu"
    table["threads"] = cfg.threads
    ctx.write_csv(table, "competitors.csv")
    ratios = library_ratios(table)
    ctx.write_csv(ratios, "ratios.csv")
    ctx.write_csv(curves, "fit_curves.csv")
    ctx.write_csv(fits, "fit_summary.csv")
    ctx.write_csv(parity, "parity.csv")
    ctx.write_text(matrix_markdown(table, fits, cfg), "matrix.md")
    plot_times(table, ctx)
    plot_fit(curves, cfg, ctx)
    wall = time.perf_counter() - t_start
    ctx.provenance(load_average_start=list(load_start), load_average_end=list(load_end),
                   cpu_count=os.cpu_count())
    headline(table, ratios, fits, parity, cfg, ctx, load_start, load_end, wall)


# -- reduction --------------------------------------------------------------------------------
def library_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """t_library / t_method for every case and mode (< 1: the library is faster)."""
    ok = table[table.status == "ok"]
    out = []
    for (workload, case), part in ok.groupby(["workload", "case"], sort=False):
        lib = part[part.method == "library"]
        if lib.empty:
            continue
        for _, r in part[part.method != "library"].iterrows():
            for mode in ("fwd", "fwdbwd"):
                out.append({"workload": workload, "case": case, "size": r["size"], "method": r["method"],
                            "mode": mode, "library_s": float(lib[f"time_{mode}_s"].iloc[0]),
                            "method_s": r[f"time_{mode}_s"],
                            "library_over_method": float(lib[f"time_{mode}_s"].iloc[0]) / r[f"time_{mode}_s"]})
    return pd.DataFrame(out)


def _ms(t):
    return "-" if t is None or not np.isfinite(t) else (f"{t * 1e3:.3g} ms" if t < 1 else f"{t:.3g} s")


def matrix_markdown(table, fits, cfg) -> str:
    """The benchmark matrix as one markdown table (fwd+bwd time per method and case, the
    library's time divided by the method's in parentheses), plus the time-to-target line."""
    methods = [m for w in METHODS for m in METHODS[w] if w != "fit"]
    methods = list(dict.fromkeys(methods))
    present = [m for m in methods if m in set(table.method)]
    lines = ["| workload | case | " + " | ".join(present) + " |", "|---|---|" + "---|" * len(present)]
    for (workload, case), part in table.groupby(["workload", "case"], sort=False):
        by = {r["method"]: r for _, r in part.iterrows()}
        lib = by.get("library")
        cells = []
        for m in present:
            r = by.get(m)
            if r is None:
                cells.append("")
            elif r["status"] != "ok":
                cells.append(r["status"].split(" (")[0].split(":")[0])
            else:
                t = r["time_fwdbwd_s"] if np.isfinite(r.get("time_fwdbwd_s", np.nan)) else r["time_fwd_s"]
                mode = "" if np.isfinite(r.get("time_fwdbwd_s", np.nan)) else " fwd"
                cell = _ms(t) + mode
                if m != "library" and lib is not None and lib["status"] == "ok":
                    lt = lib["time_fwdbwd_s"] if mode == "" else lib["time_fwd_s"]
                    cell += f" ({lt / t:.2g})"
                cells.append(cell)
        lines.append(f"| {workload} | {case} | " + " | ".join(cells) + " |")
    if len(fits) and "time_to_target_s" in fits:
        parts = []
        for m, g in fits.groupby("method", sort=False):
            reached = g[g.get("reached", False) == True]  # noqa: E712
            med = reached.time_to_target_s.median() if len(reached) else math.nan
            parts.append(f"{m} {_ms(med)} ({len(reached)}/{len(g)})")
        lines += ["", f"Time to target (loss <= {cfg.fit_threshold_db2:g} dB^2, median over the targets "
                      f"reached, reached/all): " + "; ".join(parts) + "."]
    return "\n".join(lines) + "\n"


COLOURS = {m: c for m, c in zip(
    ["library", "library-time", "library-generic", "baselines-block-fdn", "baselines-sosfilt-scipy",
     "baselines-sosfilt-torch", "FLAMO", "FLAMO-SOSFilter", "FLAMO-Biquad", "dasp", "philtorch-ssm",
     "philtorch-diag_ssm", "torchlpc", "scipy"],
    ["black", "teal", "grey", "tab:olive", "tab:brown", "tab:pink", "tab:red", "tab:red", "salmon",
     "tab:green", "tab:blue", "tab:cyan", "tab:purple", "tab:orange"])}


def plot_times(table, ctx):
    import matplotlib.pyplot as plt

    ok = table[table.status == "ok"]
    panels = [("fdn", None, "n", "FDN"), ("fdn_geq", "forward", "n", "FDN + GEQ per line (forward path)"),
              ("fdn_geq", "feedback", "n", "FDN + GEQ after the matrix (feedback path)"),
              ("cascade", None, "channels", "8-biquad cascade"), ("colorless", None, "n", "colorless FDN step")]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5))
    styles = ["-", "--", ":", "-."]
    for ax, (workload, arrangement, key, title) in zip(axes, panels):
        part = ok[ok.workload == workload]
        if arrangement:
            part = part[part.arrangement == arrangement]
        groups = sorted(part[key].dropna().unique())
        for method, mpart in part.groupby("method", sort=False):
            for gi, g in enumerate(groups):
                sub = mpart[mpart[key] == g].sort_values("size")
                t = sub.time_fwdbwd_s.where(np.isfinite(sub.time_fwdbwd_s), sub.time_fwd_s)
                if len(sub):
                    ax.loglog(sub["size"], t, styles[gi % 4], marker="o", ms=3, color=COLOURS.get(method),
                              label=f"{method}, {key}={int(g)}")
        ax.set(title=title, xlabel="samples (nfft or signal length)", ylabel="time per step (s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=5, ncol=1)
    fig.suptitle("time per forward + backward step (scipy: forward only), 1 thread; colour = method, "
                 "line style = N or channels", fontsize=9)
    fig.tight_layout()
    ctx.save_figure(fig, "time_per_step.png")


def plot_fit(curves, cfg, ctx):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    if len(curves):
        for method, part in curves.groupby("method", sort=False):
            t_max = part.wall_s.max()
            grid = np.geomspace(max(part.wall_s[part.wall_s > 0].min(), 1e-4), t_max, 200)
            per_target = []
            for _, tpart in part.groupby("target"):
                tpart = tpart.sort_values("wall_s")
                idx = np.searchsorted(tpart.wall_s.values, grid, side="right") - 1
                vals = np.where(idx >= 0, tpart.loss_db2.values[np.clip(idx, 0, None)], np.nan)
                per_target.append(np.minimum.accumulate(np.nan_to_num(vals, nan=np.inf)))
            q = np.nanpercentile(np.array(per_target), [25, 50, 75], axis=0)
            ax.loglog(grid, q[1], color=COLOURS.get(method), label=method)
            ax.fill_between(grid, q[0], q[2], color=COLOURS.get(method), alpha=0.12)
    ax.axhline(cfg.fit_threshold_db2, color="k", lw=0.8, ls=":")
    ax.set(xlabel="wall time (s)", ylabel="best log-magnitude loss so far (dB^2)",
           title="time to target: 8-biquad fit, median and quartiles over targets")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    ctx.save_figure(fig, "time_to_target.png")


def headline(table, ratios, fits, parity, cfg, ctx, load_start, load_end, wall):
    numbers = {"load_average_1min_start": round(load_start[0], 2), "load_average_1min_end": round(load_end[0], 2),
               "wall_time_s": round(wall, 1)}
    picks = {"fdn": ["N=16, nfft=2^17", "N=64, nfft=2^17"],
             "fdn_geq": ["forward, N=16, nfft=2^17", "feedback, N=16, nfft=2^17"],
             "cascade": ["1 ch, 1 s", "64 ch, 1 s", "1 ch, 8 s", "64 ch, 8 s"],
             "colorless": ["N=6, nfft=2^17"]}
    if len(ratios):
        # fwd+bwd ratios; forward only for the methods without a backward pass (scipy)
        fb = ratios[(ratios["mode"] == "fwdbwd") & np.isfinite(ratios.library_over_method)]
        fwd_only = ratios[(ratios["mode"] == "fwd") & ~ratios.method.isin(fb.method)]
        fb = pd.concat([fb, fwd_only.assign(method=fwd_only.method + " (fwd)")])
        for workload, labels in picks.items():
            for label in labels:
                for _, r in fb[(fb.workload == workload) & (fb.case == label)].iterrows():
                    key = f"{workload} {label}: library / {r['method']}"
                    numbers[key] = round(float(r.library_over_method), 3)
        if ctx.quick:  # the quick sizes are none of the picks: give the first case of each
            for workload, part in fb.groupby("workload", sort=False):
                first = part.case.iloc[0]
                for _, r in part[part.case == first].iterrows():
                    numbers[f"{workload} {first}: library / {r['method']}"] = round(float(r.library_over_method), 3)
    if len(fits) and "reached" in fits:
        for m, g in fits.groupby("method", sort=False):
            reached = g[g.reached == True]  # noqa: E712
            numbers[f"time to target: {m}, median s"] = (
                round(float(reached.time_to_target_s.median()), 3) if len(reached) else "not reached")
            numbers[f"time to target: {m}, targets reached"] = f"{len(reached)}/{len(g)}"
    if len(parity) and "verdict" in parity:
        judged = parity[parity.verdict.isin(["pass", "fail"])]
        numbers["parity checks passed"] = f"{int((judged.verdict == 'pass').sum())}/{len(judged)}"
    numbers["methods not ok"] = int((table.status != "ok").sum())
    ctx.headline(**numbers)
