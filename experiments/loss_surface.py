"""Loss landscapes of a delay length and of a biquad centre frequency, and their accuracy
under perturbation.

Frequency-sampled losses (complex MSE, magnitude MSE in dB on the grid) versus time-domain
losses (MSE of the impulse response, multi-resolution STFT, the averaged-power metric of Dal
Santo et al., Asilomar 2024) as one parameter sweeps around its target value, plus a 2-D
surface (centre frequency x gain). Counts the local minima of every 1-D profile.
Perturbation runs (as the reference library's loss-surface tool): each 1-D sweep repeated
``n_runs`` times with a second parameter of the model drawn at random (the delay case: the
lowpass cutoff; the centre-frequency case: the peak gain), the target unchanged; the
accuracy of a loss is the fraction of runs whose arg-min falls within ``tolerance_steps``
grid steps of the target value. The sweeps use flamo.optim.surface (batched
functional_call); each runs case's SurfaceConfig is written as JSON next to the results
and is what its tasks carry (a JSON round trip on every run).
The filters are flamo.Biquad ("lowpass" after the delay, Q = 1/sqrt(2), the 2nd-order
Butterworth; "peak" for the second case): RBJ cookbook designs whose centre frequency
(LogInterval), gain (Interval) and Q are swept or perturbed through their raw parameters,
converted from Hz and dB by the module's own mappings, as is the delay length (Interval).

AveragePower's published settings (Hann 1024 / hop 256, 64 x 64 smoothing at stride 4) need
T >= 16128 samples; the impulse responses here are nfft = 4096 samples (1024 quick), so it
runs at a quarter of the published sizes (256 / 64, 16 x 16, stride 4; ``ap_*`` settings).

Tasks (:mod:`experiments.tasks`): one per case (delay, centre frequency, the 2-D surface,
the two runs cases) and loss, each holding only the settings of its case.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.signal
import torch

import flamo
from flamo.optim import losses
from flamo.optim.surface import (Axis, Perturbation, RunsResult, SurfaceConfig, SweepResult,
                                 local_minima, perturbation_runs, sweep)
from experiments.tasks import Task

DESCRIPTION = ("extension: loss landscapes of a delay length and a biquad centre frequency, "
               "frequency-sampled vs time-domain losses, accuracy under perturbation runs")


@dataclass
class Config:
    """Sweep settings (defaults = full run)."""

    fs: int = 48000  # sample rate [Hz]
    nfft: int = 2**12  # grid size (also the impulse-response length) [samples]
    delay_target: float = 200.0  # target delay [samples]
    delay_span: float = 60.0  # sweep +- span around the target [samples]
    lowpass_hz: float = 4000.0  # cutoff of the 2nd-order Butterworth lowpass after the delay [Hz]
    delay_points: int = 1201
    peak_f0: float = 1000.0  # target centre frequency [Hz]
    peak_gain_db: float = 12.0  # target gain [dB]
    peak_q: float = 4.0  # target quality factor
    freq_sweep_hz: tuple = (50.0, 16000.0)  # 1-D sweep range, log-spaced [Hz]
    freq_points: int = 600
    surface_freq_hz: tuple = (100.0, 10000.0)  # 2-D surface frequency axis, log-spaced [Hz]
    surface_gain_db: tuple = (-15.0, 15.0)  # 2-D surface gain axis [dB]
    surface_points: int = 80  # per axis of the 2-D surface
    stft_sizes: tuple = (128, 256, 512)
    ap_n_fft: int = 256  # AveragePower STFT frame [samples] (published: 1024)
    ap_hop: int = 64  # AveragePower hop [samples] (published: 256)
    ap_window: tuple = (16, 16)  # AveragePower smoothing window (bins, frames) (published: 64 x 64)
    ap_stride: tuple = (4, 4)  # AveragePower smoothing stride (published: 4 x 4)
    batch_size: int = 128
    n_runs: int = 8  # perturbation runs per 1-D case
    runs_seed: int = 0  # seed of the perturbation draws
    tolerance_steps: int = 0  # an accurate run's arg-min lies this many grid steps from the target at most
    lowpass_range_hz: tuple = (2000.0, 8000.0)  # perturbed lowpass cutoff (delay runs), log-uniform [Hz]
    peak_gain_range_db: tuple = (6.0, 18.0)  # perturbed peak gain (frequency runs), uniform [dB]

    @classmethod
    def quick(cls) -> "Config":
        return cls(nfft=2**10, delay_target=100.0, delay_span=20.0, delay_points=201,
                   freq_points=120, surface_points=20, stft_sizes=(64, 128), batch_size=128,
                   n_runs=3)


def _losses(cfg):
    """{name: (kind, loss_fn)}; kind says which output the loss compares."""
    def db(x):
        return 20 * torch.log10(x.abs() + 1e-8)

    # batched forms, (B, ...) pred -> (B,) losses; same definitions as flamo.optim.losses
    return {
        "complex MSE (freq.)": ("freq", lambda p, t: ((p - t).abs() ** 2).mean(-1)),
        "magnitude MSE dB (freq.)": ("freq", lambda p, t: ((db(p) - db(t)) ** 2).mean(-1)),
        "IR MSE (time)": ("time", lambda p, t: ((p - t) ** 2).mean((-2, -1))),
        "MR-STFT (time)": ("time", lambda p, t: losses.multi_resolution_stft_loss(
            p, t.expand_as(p), cfg.stft_sizes, per_item=True)[..., 0]),
        "AveragePower (time)": ("time", lambda p, t: losses.average_power(
            p, t.expand_as(p), cfg.ap_n_fft, cfg.ap_hop, tuple(cfg.ap_window), tuple(cfg.ap_stride),
            per_item=True)[..., 0]),
    }


#: The cases and the settings each one reads (besides COMMON), so that a changed setting
#: recomputes only the tasks of its case. A runs case sweeps the axis of its 1-D case.
CASES = {
    "delay": ("delay_target", "delay_span", "delay_points", "lowpass_hz"),
    "peak frequency": ("peak_f0", "peak_gain_db", "peak_q", "freq_sweep_hz", "freq_points"),
    "peak frequency x gain": ("peak_f0", "peak_gain_db", "peak_q", "surface_freq_hz", "surface_gain_db",
                              "surface_points"),
}
RUNS = {  # runs case: (1-D case, perturbation range setting, what is perturbed)
    "delay runs": ("delay", "lowpass_range_hz", "lowpass cutoff [Hz]"),
    "peak frequency runs": ("peak frequency", "peak_gain_range_db", "peak gain [dB]"),
}
COMMON = ("fs", "nfft", "stft_sizes", "ap_n_fft", "ap_hop", "ap_window", "ap_stride", "batch_size")


def _case(cfg, case):
    """(model, target system, axes) of one case; ``cfg`` needs the case's settings only."""
    if case == "delay":
        def system(learnable):
            lowpass = flamo.Biquad("lowpass", cfg.lowpass_hz, q=2 ** -0.5)
            return flamo.Series({"delay": flamo.Delay([cfg.delay_target], learnable=learnable),
                                 "lp": lowpass}).double()

        model = system(True)
        values = cfg.delay_target + np.linspace(-cfg.delay_span, cfg.delay_span, cfg.delay_points)
        return model, system(False), Axis("delay.raw[0]", values, mapping=model.delay.mapping,
                                          label="delay length [samples]")

    def peak():
        return flamo.Biquad("peak", cfg.peak_f0, q=cfg.peak_q, gain_db=cfg.peak_gain_db).double()

    target, model = peak(), peak()
    if case == "peak frequency":
        return model, target, Axis("raw_freq", np.geomspace(*cfg.freq_sweep_hz, cfg.freq_points),
                                   mapping=model.freq_mapping, label="centre frequency [Hz]")
    return model, target, [Axis("raw_freq", np.geomspace(*cfg.surface_freq_hz, cfg.surface_points),
                                mapping=model.freq_mapping, label="centre frequency [Hz]"),
                           Axis("raw_gain", np.linspace(*cfg.surface_gain_db, cfg.surface_points),
                                mapping=model.gain_mapping, label="gain [dB]")]


def _runs_config(cfg, case, loss) -> SurfaceConfig:
    """The SurfaceConfig of a runs case: the 1-D case's axis, its target, the perturbation."""
    base = RUNS[case][0]
    model, _, axis = _case(cfg, base)
    if base == "delay":
        perturbation = Perturbation("lp.raw_freq", *cfg.lowpass_range_hz, mapping=model.lp.freq_mapping,
                                    log=True)
        target = cfg.delay_target
    else:
        perturbation = Perturbation("raw_gain", *cfg.peak_gain_range_db, mapping=model.gain_mapping)
        target = cfg.peak_f0
    return SurfaceConfig(axis, target=(target,), perturbation=perturbation, n_runs=cfg.n_runs,
                         seed=cfg.runs_seed, tolerance=cfg.tolerance_steps,
                         batch_size=cfg.batch_size, name=loss)


def _case_settings(cfg, case):
    fields = CASES[case] if case in CASES else CASES[RUNS[case][0]] + (RUNS[case][1],)
    return {k: getattr(cfg, k) for k in COMMON + fields}


def tasks(cfg: Config) -> list[Task]:
    """One task per case and loss; a runs task carries its SurfaceConfig in JSON form."""
    out = [Task(f"{case}/{loss}", {"case": case, "loss": loss, "settings": _case_settings(cfg, case)})
           for case in CASES for loss in _losses(cfg)]
    out += [Task(f"{case}/{loss}", {"case": case, "loss": loss, "settings": _case_settings(cfg, case),
                                    "surface": _runs_config(cfg, case, loss).to_config()})
            for case in RUNS for loss in _losses(cfg)]
    return out


def run_task(params: dict, tctx) -> dict:
    """The loss of one case over its sweep grid, or the perturbation runs of a runs case."""
    cfg = SimpleNamespace(**params["settings"])
    case = params["case"]
    model, target, axes = _case(cfg, RUNS[case][0] if case in RUNS else case)
    grid = flamo.Grid(cfg.nfft, fs=cfg.fs, dtype=torch.float64)
    outputs = {"freq": lambda s: s.response(grid)[..., 0, 0],
               "time": lambda s: s.impulse_response(grid)[..., 0]}  # (..., nfft, 1), time first
    kind, fn = _losses(cfg)[params["loss"]]
    with torch.no_grad():
        reference = outputs[kind](target)
    if case in RUNS:
        runs = perturbation_runs(model, outputs[kind], fn, reference,
                                 SurfaceConfig.from_config(params["surface"]), batched_loss=True)
        return {"loss": np.stack([r.loss for r in runs.runs]), "perturbation": runs.perturbation_values}
    res = sweep(model, outputs[kind], fn, reference, axes, batch_size=cfg.batch_size,
                name=params["loss"], batched_loss=True)
    return {"loss": res.loss}


def _profiles(cfg, results, case):
    """{loss name: SweepResult} of one case from the task results, and its tidy rows."""
    _, _, axes = _case(cfg, case)
    out, rows = {}, []
    for name in _losses(cfg):
        res = SweepResult(axes if isinstance(axes, list) else [axes], results[f"{case}/{name}"]["loss"], name)
        out[name] = res
        if res.loss.ndim == 1:
            for v, l in zip(axes.values, res.loss):
                rows.append({"case": case, "parameter": axes.label, "value": v, "loss": name,
                             "loss_value": l})
        else:
            df = res.to_frame().rename(columns={axes[0].path: "x", axes[1].path: "y", name: "loss_value"})
            df.insert(0, "loss", name)
            df.insert(0, "case", case)
            rows.extend(df.to_dict("records"))
    return out, rows


def _runs(cfg, results, case):
    """{loss name: RunsResult} of one runs case from the task results."""
    out = {}
    for name in _losses(cfg):
        rc, r = _runs_config(cfg, case, name), results[f"{case}/{name}"]
        out[name] = RunsResult(rc, np.asarray(r["perturbation"]),
                               [SweepResult(rc.axes, loss, name) for loss in r["loss"]])
    return out


def _flat(loss):
    """Whether a profile varies by rounding noise only (relative 1e-9)."""
    return bool(np.ptp(loss) <= 1e-9 * max(1.0, np.abs(loss).max()))


def _key(loss):
    """Headline-safe short name of a loss: "MR-STFT (time)" -> "mr_stft"."""
    return loss.split(" (")[0].replace(" ", "_").replace("-", "_").lower()


def _reduce_runs(cfg, results, ctx):
    """accuracy.csv, runs.csv, the runs cases' SurfaceConfig JSON, runs.png; the headline's
    accuracy per case and loss."""
    accuracy, rows, head = [], [], {}
    fig, axs = plt.subplots(1, len(RUNS), figsize=(12, 4.5))
    for ax, case in zip(axs, RUNS):
        runs = _runs(cfg, results, case)
        first = next(iter(runs.values())).config
        # one file per case: the tasks' configurations differ only in the loss name
        saved = SurfaceConfig(first.axes, first.target, first.perturbation, first.n_runs, first.seed,
                              first.tolerance, first.batch_size, name="(each loss of runs.csv)")
        ctx.record(saved.save(ctx.path(f"{case.replace(' ', '_')}.json")))
        p = first.perturbation
        for k, (name, res) in enumerate(runs.items()):
            hits = res.hits()
            # a flat profile (the magnitude loss of a delay) has its arg-min anywhere: counted
            flat = sum(_flat(r.loss) for r in res.runs)
            accuracy.append({"case": case, "loss": name, "runs": len(hits), "accurate_runs": int(hits.sum()),
                             "accuracy": res.accuracy, "flat_runs": flat, "tolerance_steps": first.tolerance,
                             "perturbed": p.path, "perturbation_low": p.low, "perturbation_high": p.high})
            frame = res.to_frame().rename(columns={p.path: "perturbation_value",
                                                   f"argmin {first.axes[0].path}": "argmin",
                                                   f"offset {first.axes[0].path} [steps]": "offset_steps"})
            frame.insert(0, "loss", name)
            frame.insert(0, "case", case)
            rows.extend(frame.to_dict("records"))
            head[f"accuracy_{RUNS[case][0].split()[-1]}_{_key(name)}"] = res.accuracy
            note = f", {flat} flat" if flat else ""
            ax.plot(res.perturbation_values, frame["offset_steps"] + 0.08 * (k - 2), "o", ms=4,
                    label=f"{name}: accuracy {res.accuracy:.2f}{note}")
        ax.axhspan(-first.tolerance - 0.4, first.tolerance + 0.4, color="k", alpha=0.08)
        ax.set_xlabel(f"perturbed: {RUNS[case][2]}")
        ax.set_ylabel("arg-min - target [grid steps]")
        ax.set_yscale("symlog", linthresh=1)
        if p.log:
            ax.set_xscale("log")
        ax.set_title(f"{case}: {first.n_runs} runs, target {first.target[0]:g}", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"Perturbation runs: arg-min of each run (shaded: accurate, within {cfg.tolerance_steps} "
                 f"grid steps of the target; markers offset slightly per loss)")
    fig.tight_layout()
    ctx.save_figure(fig, "runs.png")
    table = pd.DataFrame(accuracy)
    ctx.write_csv(table, "accuracy.csv")
    ctx.write_csv(pd.DataFrame(rows), "runs.csv")
    ctx.log("\n" + table[["case", "loss", "accurate_runs", "runs", "accuracy"]].to_string(index=False))
    return head


def reduce(cfg: Config, results: dict, ctx) -> None:
    """Profiles, surfaces, local minima, perturbation runs, figures and headline."""
    res_d, rows_d = _profiles(cfg, results, "delay")
    res_f, rows_f = _profiles(cfg, results, "peak frequency")
    res_s, rows_s = _profiles(cfg, results, "peak frequency x gain")

    ctx.write_csv(pd.DataFrame(rows_d + rows_f), "profiles.csv")
    ctx.write_csv(pd.DataFrame(rows_s), "surfaces.csv")
    minima = []
    for case, profiles, target_value in (("delay", res_d, cfg.delay_target), ("peak frequency", res_f, cfg.peak_f0)):
        for name, res in profiles.items():
            flat = _flat(res.loss)  # a flat profile has no minima worth counting
            count = 0 if flat else len(local_minima(res.loss))
            minima.append({"case": case, "loss": name, "local_minima": count,
                           "argmin": res.argmin()[0], "target": target_value, "flat": flat})
    table = pd.DataFrame(minima)
    ctx.write_csv(table, "local_minima.csv")
    ctx.log("\n" + table.to_string(index=False))

    # -- figures ---------------------------------------------------------------------------------
    fig, axs = plt.subplots(2, 1, figsize=(8, 7))
    for ax, profiles, log_x, target_value in ((axs[0], res_d, False, cfg.delay_target),
                                              (axs[1], res_f, True, cfg.peak_f0)):
        for name, res in profiles.items():
            row = next(r for r in minima if r["loss"] == name
                       and r["case"] == ("delay" if profiles is res_d else "peak frequency"))
            count, flat = row["local_minima"], " (flat: rounding noise only, drawn at 0)" if row["flat"] else ""
            z = np.zeros_like(res.loss) if row["flat"] else res.loss / max(np.abs(res.loss).max(), 1e-30)
            ax.plot(res.axes[0].values, z, label=f"{name}: {count} local minima{flat}")
        ax.axvline(target_value, color="k", ls=":", lw=1, label="target")
        ax.set_xlabel(profiles[next(iter(profiles))].axes[0].label)
        ax.set_ylabel("loss / max loss [-]")
        if log_x:
            ax.set_xscale("log")
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    axs[0].set_title(f"Delay length sweep (target {cfg.delay_target:g} samples, 2nd-order Butterworth "
                     f"lowpass at {cfg.lowpass_hz:g} Hz after it)")
    axs[1].set_title(f"Peak filter centre frequency sweep (target {cfg.peak_f0:g} Hz, "
                     f"{cfg.peak_gain_db:g} dB, Q {cfg.peak_q:g})")
    fig.tight_layout()
    ctx.save_figure(fig, "profiles.png")

    fig, axs = plt.subplots(2, 3, figsize=(14, 8))
    for ax, (name, res) in zip(axs.ravel(), res_s.items()):
        res.plot(ax=ax, log_x=True, db=True)
        ax.plot(cfg.peak_f0, cfg.peak_gain_db, "w*", ms=10)
        ax.set_title(name, fontsize=9)
    for ax in axs.ravel()[len(res_s):]:
        ax.set_visible(False)
    fig.suptitle("Loss surfaces over centre frequency and gain (white star: target)")
    fig.tight_layout()
    ctx.save_figure(fig, "surfaces.png")

    head = _reduce_runs(cfg, results, ctx)
    for r in minima:
        head[f"minima_{'delay' if r['case'] == 'delay' else 'frequency'}_{_key(r['loss'])}"] = r["local_minima"]
    ctx.headline(**head)
