"""Speed comparison: frequency sampling vs time-domain block FDN vs recursive IIR filtering.

For the same FDN (same delays, matrix, gains) and the same 8-biquad cascade, measure the
time of one gradient step (impulse response of length L, loss = squared error to a fixed
target, backward to every parameter) and its peak memory, as a function of the IR length
L (0.25 s to 8 s at 48 kHz) and of the number of delay lines N, and the IR error of each
method against a float64 time-domain ground truth.

Methods
-------
- ``frequency_sampling``: the library (flamo); nfft = the next power of two >= L, the FDN
  sampled at radius 1/gamma with ``alias_decay_db``.
- ``time_block`` (FDN): ``baselines.fdn_block``, blocks of m_min samples.
- ``time_library``: the library's time-domain twin, ``impulse_response(grid,
  method="time")`` (``flamo.render`` of an impulse: exact recursion, adjoint backward), on
  the same grid.
- ``auto``: the library's ``impulse_response(grid, method="auto")``, which picks one of
  the two library methods by its cost model.
- ``iir_scipy`` / ``iir_torch`` (SOS cascade): ``baselines.sosfilt`` with its scipy (CPU)
  and pure-torch backends; the backward pass is an IIR filter run backward in time.

Peak memory is ``ru_maxrss`` on CPU, where every configuration runs in a fresh child
process (``isolate``) so that the peak belongs to it alone, and
``torch.cuda.max_memory_allocated`` on GPU (reset per configuration, so no isolation is
needed). Times are medians over ``repeats`` steps after one warm-up step, with ``threads``
torch threads and denormal floats flushed to zero. The float64 ground truth is computed on
the CPU. Configurations whose dense loop would exceed the memory budget
(``memory_budget_gb`` on CPU, half the GPU's memory on CUDA; frequency sampling stores
(M, N, N) complex loop matrices) are recorded as skipped, not run.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import resource
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

DESCRIPTION = ("extension: speed and memory of a gradient step, frequency sampling vs time-domain FDN "
               "vs recursive IIR")
TIMING = True  # measures speed: never under a parallel executor (experiments.registry.timing)


@dataclass
class Config:
    fs: int = 48000
    lengths_s: list = field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0, 4.0, 8.0])
    fdn_sizes: list = field(default_factory=lambda: [4, 8, 16, 32, 64])
    t60_s: float = 1.0
    delay_range_s: tuple = (0.01, 0.05)  # delay lengths drawn from this range (seconds)
    sos_sections: int = 8
    alias_decay_db: float = 60.0
    repeats: int = 3
    threads: int = 1
    memory_budget_gb: float = 6.0  # CPU only; on CUDA half of the device memory
    headline_n: int = 16  # FDN size quoted in the headline ratios
    isolate: bool = True  # one fresh process per configuration (clean peak memory)

    @classmethod
    def quick(cls):
        """CI smoke sizes, in-process (peak memory then includes earlier configurations)."""
        return cls(lengths_s=[0.25, 1.0], fdn_sizes=[4], repeats=1, headline_n=4, isolate=False)


# --------------------------------------------------------------------------------------
# workloads (built identically in every child from the seed)
# --------------------------------------------------------------------------------------
def fdn_system(n, cfg, seed, dtype):
    """The task's FDN from :func:`flamo.reverb.build_fdn`: N sorted integer delays drawn
    from ``delay_range_s``, a free feedback matrix initialized to a random orthogonal A,
    b ~ N(0, 1), c ~ N(0, 1) / N, and a learnable :class:`flamo.HomogeneousAttenuation` of
    ``t60_s``; every value learnable except the delays. The same draws for every dtype."""
    import scipy.stats
    import torch

    from flamo.reverb import build_fdn

    rng = np.random.default_rng(seed + n)
    lo, hi = (int(s * cfg.fs) for s in cfg.delay_range_s)
    m = np.sort(rng.choice(np.arange(lo, hi), size=n, replace=False))
    A = scipy.stats.ortho_group.rvs(n, random_state=seed + n) if n > 1 else np.ones((1, 1))
    b, c = rng.normal(size=n), rng.normal(size=n) / n
    return build_fdn(delays=m, matrix="free", matrix_init=A, input_gains=b, output_gains=c,
                     t60=cfg.t60_s, learnable_attenuation=True,
                     dtype=getattr(torch, dtype))


def sos_parameters(cfg, seed):
    """A stable (K, 6) cascade: pole radii in [0.9, 0.999], a0 = 1."""
    rng = np.random.default_rng(seed)
    k = cfg.sos_sections
    r, theta = rng.uniform(0.9, 0.999, k), rng.uniform(0.01, math.pi - 0.01, k)
    zr, zt = rng.uniform(0.5, 1.0, k), rng.uniform(0, math.pi, k)
    b = np.stack([np.ones(k), -2 * zr * np.cos(zt), zr**2], axis=1)
    a = np.stack([np.ones(k), -2 * r * np.cos(theta), r**2], axis=1)
    return np.concatenate([b, a], axis=1)


def _ground_truth(task, cfg):
    """float64 IR of the task's system, computed in the time domain."""
    import scipy.signal
    import torch

    from baselines import render

    length = int(task["length_s"] * cfg.fs)
    if task["system"] == "fdn":
        with torch.no_grad():
            return render(fdn_system(task["n"], cfg, task["seed"], "float64"), length,
                          fs=cfg.fs).numpy()
    x = np.zeros(length)
    x[0] = 1
    return scipy.signal.sosfilt(sos_parameters(cfg, task["seed"]), x)


#: The library's methods: name in the CSV -> ``method`` of ``impulse_response``.
LIBRARY_METHODS = {"frequency_sampling": "frequency", "time_library": "time", "auto": "auto"}


def _step_function(task, cfg, device):
    """Build the task's system on ``device`` and return (step() -> IR tensor, parameters)."""
    import torch

    import flamo
    from baselines import fdn_block, sosfilt
    from flamo.reverb import fdn_structure

    length = int(task["length_s"] * cfg.fs)
    f32 = dict(dtype=torch.float32, device=device)
    method = task["method"]
    if task["system"] == "fdn":
        system = fdn_system(task["n"], cfg, task["seed"], "float32").to(device)
        if method in LIBRARY_METHODS:
            grid = flamo.Grid(nfft=2 ** math.ceil(math.log2(length)), fs=cfg.fs,
                              alias_decay_db=cfg.alias_decay_db, device=device)
            how = LIBRARY_METHODS[method]
            return ((lambda: system.impulse_response(grid, method=how)[:length, 0, 0]),
                    list(system.parameters()))
        fdn = fdn_structure(system, fs=cfg.fs)  # the same numbers as plain leaves for the baseline
        with torch.no_grad():
            values = (fdn.A, fdn.b[:, 0], fdn.c[0], fdn.gains)
        params = [v.detach().to(**f32).clone().requires_grad_(True) for v in values]
        m = fdn.m
        x = torch.zeros(length, **f32)
        x[0] = 1
        return (lambda: fdn_block(x, m, params[0], params[1], params[2], 0.0, g=params[3])), params
    sos = sos_parameters(cfg, task["seed"])
    if method in LIBRARY_METHODS:
        module = flamo.SOS(torch.as_tensor(sos, **f32)).to(device)
        grid = flamo.Grid(nfft=2 ** math.ceil(math.log2(length)), fs=cfg.fs, device=device)
        how = LIBRARY_METHODS[method]
        return ((lambda: module.impulse_response(grid, method=how)[:length, 0, 0]),
                list(module.parameters()))
    coeffs = torch.as_tensor(sos, **f32).requires_grad_(True)
    x = torch.zeros(length, **f32)
    x[0] = 1
    backend = "scipy" if method == "iir_scipy" else "torch"
    return (lambda: sosfilt(coeffs, x, backend=backend)), [coeffs]


def _current_rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def measure(task, cfg):
    """Run in a fresh child process: peak memory, median step time, IR error."""
    import torch

    torch.set_num_threads(cfg.threads)
    # Decaying IRs reach denormal floats, which slow scipy's float32 IIR loops many times;
    # flushing them to zero (CPU flag, also seen by scipy in this thread) is fair to all.
    torch.set_flush_denormal(True)
    torch.manual_seed(task["seed"])
    device = torch.device(task["device"])
    cuda = device.type == "cuda"
    step, params = _step_function(task, cfg, device)
    target = torch.zeros(int(task["length_s"] * cfg.fs), device=device)

    def gradient_step():
        for p in params:
            p.grad = None
        ir = step()
        loss = ((ir - target) ** 2).sum()
        loss.backward()
        if cuda:
            torch.cuda.synchronize()
        return ir

    rss0 = _current_rss_bytes()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    ir = gradient_step()  # first step: warm-up and peak memory
    if cuda:
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0)
    times = []
    for _ in range(cfg.repeats):
        t0 = time.perf_counter()
        gradient_step()
        times.append(time.perf_counter() - t0)
    truth = _ground_truth(task, cfg)
    est = ir.detach().double().cpu().numpy()
    err = np.linalg.norm(est - truth) / np.linalg.norm(truth)
    return {"step_time_s": statistics.median(times), "peak_memory_bytes": peak,
            "ir_error_db": 20 * math.log10(max(err, 1e-300))}


def _estimated_bytes(task, cfg):
    """Working set of a frequency-sampling FDN step: about 1.5 complex64 (M, N, N) loop
    tensors (the LU factors are kept for the backward; measured peak: 1.2 at N = 64)."""
    if task["method"] != "frequency_sampling" or task["system"] != "fdn":
        return 0
    nfft = 2 ** math.ceil(math.log2(task["length_s"] * cfg.fs))
    return 1.5 * (nfft // 2 + 1) * task["n"] ** 2 * 8


def tasks_for(cfg, device, seed):
    tasks = []
    for length in cfg.lengths_s:
        for n in cfg.fdn_sizes:
            for method in ("frequency_sampling", "time_library", "auto", "time_block"):
                tasks.append(dict(system="fdn", n=n, length_s=length, method=method))
        for method in ("frequency_sampling", "time_library", "auto", "iir_scipy", "iir_torch"):
            if method == "iir_scipy" and device != "cpu":
                continue
            tasks.append(dict(system="sos", n=1, length_s=length, method=method))
    for t in tasks:
        t.update(device=device, seed=seed)
    return tasks


def run(cfg, ctx):
    import torch

    device = str(ctx.device)
    cuda = ctx.device.type == "cuda"
    budget = (torch.cuda.get_device_properties(ctx.device).total_memory / 2 if cuda
              else cfg.memory_budget_gb * 2**30)
    rows = []
    spawn = mp.get_context("spawn")
    for task in ctx.progress(tasks_for(cfg, device, ctx.seed), desc="configurations"):
        row = dict(task)
        if _estimated_bytes(task, cfg) > budget:
            row.update(status="skipped: memory budget", step_time_s=np.nan,
                       peak_memory_bytes=np.nan, ir_error_db=np.nan)
        elif cfg.isolate and not cuda:
            with spawn.Pool(1) as pool:  # a fresh process per configuration
                row.update(pool.apply(measure, (task, cfg)), status="ok")
        else:
            row.update(measure(task, cfg), status="ok")
        rows.append(row)
        ctx.log(f"{task['system']} N={task['n']} L={task['length_s']} s {task['method']}: "
                f"{row['step_time_s']:.4g} s")
    df = pd.DataFrame(rows)
    df["length_samples"] = (df["length_s"] * cfg.fs).astype(int)
    df["threads"] = cfg.threads
    ctx.write_csv(df, "speed_comparison.csv")
    _plot(df, ctx)
    _headline(df, cfg, ctx)


_STYLES = {"frequency_sampling": ("-", "frequency sampling (library)"),
           "time_library": ((0, (5, 1, 1, 1, 1, 1)), "time domain (library, method='time')"),
           "auto": ((0, (1, 1)), "library, method='auto'"),
           "time_block": ("--", "time-domain block FDN"),
           "iir_scipy": (":", "recursive IIR, scipy"),
           "iir_torch": ("-.", "recursive IIR, torch")}


def _plot(df, ctx):
    """2 x 2 panels; colour = FDN size N, line style = method; the legends sit below the
    panels so that no curve is hidden."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, NullLocator

    ok = df[df.status == "ok"]
    sizes = sorted(ok[ok.system == "fdn"].n.unique())
    colour = {n: plt.cm.viridis(i / max(1, len(sizes) - 1)) for i, n in enumerate(sizes)}
    sos_colour = "tab:red"
    fig, axes = plt.subplots(2, 2, figsize=(13, 10))
    t_fdn, mem, t_sos, err = axes.flat
    for (n, method), part in ok[ok.system == "fdn"].groupby(["n", "method"]):
        kw = dict(ls=_STYLES[method][0], color=colour[n], marker="o", ms=4)
        t_fdn.loglog(part.length_s, part.step_time_s, **kw)
        mem.loglog(part.length_s, part.peak_memory_bytes / 2**20, **kw)
        err.semilogx(part.length_s, part.ir_error_db, **kw)
    for method, part in ok[ok.system == "sos"].groupby("method"):
        kw = dict(ls=_STYLES[method][0], color=sos_colour, marker="s", ms=5)
        t_sos.loglog(part.length_s, part.step_time_s, **kw)
        err.semilogx(part.length_s, part.ir_error_db, **kw)
    t_fdn.set(title="FDN: time per gradient step", ylabel="time (s)")
    mem.set(title="FDN: peak memory of a step", ylabel="memory (MiB)")
    t_sos.set(title="8-biquad cascade: time per gradient step", ylabel="time (s)")
    err.set(title="float32 IR error vs float64 time-domain truth",
            ylabel="relative L2 error (dB)")
    lengths = sorted(ok.length_s.unique())
    for ax in axes.flat:
        ax.set_xlabel("IR length (s)")
        ax.xaxis.set_major_locator(FixedLocator(lengths))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{v:g}" for v in lengths])
        ax.grid(True, which="both", alpha=0.3)
    colours = [Line2D([], [], color=colour[n], marker="o", label=f"FDN, N = {n}") for n in sizes]
    colours.append(Line2D([], [], color=sos_colour, marker="s", label="8-biquad cascade"))
    methods = sorted(set(ok.method), key=list(_STYLES).index)
    styles = [Line2D([], [], color="k", ls=_STYLES[m][0], label=_STYLES[m][1]) for m in methods]
    fig.legend(handles=colours, loc="lower left", bbox_to_anchor=(0.06, 0.0), ncol=3,
               fontsize=10, title="colour: system", title_fontsize=10, frameon=False)
    fig.legend(handles=styles, loc="lower right", bbox_to_anchor=(0.98, 0.0), ncol=2,
               fontsize=10, title="line style: method", title_fontsize=10, frameon=False)
    fig.suptitle(f"Gradient step (impulse response + squared-error loss + backward), "
                 f"device {ctx.device}", fontsize=12)
    fig.tight_layout(rect=(0, 0.1, 1, 0.97))
    ctx.save_figure(fig, "speed_comparison.png")


def _headline(df, cfg, ctx):
    ok = df[df.status == "ok"].set_index(["system", "n", "length_s", "method"])["step_time_s"]
    numbers = {}
    for length in (1.0, 8.0):
        try:
            numbers[f"fdn_N{cfg.headline_n}_{length:g}s_fs_over_block"] = \
                ok[("fdn", cfg.headline_n, length, "frequency_sampling")] / ok[("fdn", cfg.headline_n, length, "time_block")]
        except KeyError:
            pass
        for ours in ("time_library", "auto"):
            try:
                numbers[f"fdn_N{cfg.headline_n}_{length:g}s_{ours}_over_block"] = \
                    ok[("fdn", cfg.headline_n, length, ours)] / ok[("fdn", cfg.headline_n, length, "time_block")]
                numbers[f"sos_{length:g}s_{ours}_over_fs"] = \
                    ok[("sos", 1, length, ours)] / ok[("sos", 1, length, "frequency_sampling")]
            except KeyError:
                pass
        for iir in ("iir_scipy", "iir_torch"):
            try:
                numbers[f"sos_{length:g}s_fs_over_{iir}"] = \
                    ok[("sos", 1, length, "frequency_sampling")] / ok[("sos", 1, length, iir)]
            except KeyError:
                pass
    ctx.headline(**{k: round(float(v), 4) for k, v in numbers.items()})
