"""Loss landscapes of a delay length and of a biquad centre frequency.

Frequency-sampled losses (complex MSE, magnitude MSE in dB on the grid) versus time-domain
losses (MSE of the impulse response, multi-resolution STFT) as one parameter sweeps around
its target value, plus a 2-D surface (centre frequency x gain). Counts the local minima of
every 1-D profile. The sweeps use flamo.optim.surface (batched functional_call).
The peak filter is flamo.Biquad("peak"): an RBJ cookbook peak whose centre frequency
(LogInterval) and gain (Interval) are swept through their raw parameters ``raw_freq`` and
``raw_gain``, converted from Hz and dB by the module's own mappings.

Tasks (:mod:`experiments.tasks`): one per case (delay, centre frequency, the 2-D surface)
and loss, each holding only the settings of its case.
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
from flamo.optim.surface import Axis, SweepResult, local_minima, sweep
from experiments.tasks import Task

DESCRIPTION = ("extension: loss landscapes of a delay length and a biquad centre frequency, "
               "frequency-sampled vs time-domain losses")


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
    batch_size: int = 128

    @classmethod
    def quick(cls) -> "Config":
        return cls(nfft=2**10, delay_target=100.0, delay_span=20.0, delay_points=201,
                   freq_points=120, surface_points=20, stft_sizes=(64, 128), batch_size=128)


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
    }


#: The three cases and the settings each one reads (besides COMMON), so that a changed
#: setting recomputes only the tasks of its case.
CASES = {
    "delay": ("delay_target", "delay_span", "delay_points", "lowpass_hz"),
    "peak frequency": ("peak_f0", "peak_gain_db", "peak_q", "freq_sweep_hz", "freq_points"),
    "peak frequency x gain": ("peak_f0", "peak_gain_db", "peak_q", "surface_freq_hz", "surface_gain_db",
                              "surface_points"),
}
COMMON = ("fs", "nfft", "stft_sizes", "batch_size")


def _case(cfg, case):
    """(model, target system, axes) of one case; ``cfg`` needs the case's settings only."""
    if case == "delay":
        lowpass = scipy.signal.butter(2, cfg.lowpass_hz, fs=cfg.fs, output="sos")
        target = flamo.Series({"delay": flamo.Delay([cfg.delay_target]), "lp": flamo.SOS(lowpass)}).double()
        model = flamo.Series({"delay": flamo.Delay([cfg.delay_target], learnable=True),
                              "lp": flamo.SOS(lowpass)}).double()
        values = cfg.delay_target + np.linspace(-cfg.delay_span, cfg.delay_span, cfg.delay_points)
        return model, target, Axis("delay.raw[0]", values, label="delay length [samples]")

    def peak():
        return flamo.Biquad("peak", cfg.peak_f0, q=cfg.peak_q, gain_db=cfg.peak_gain_db).double()

    target, model = peak(), peak()
    f_to_raw, g_to_raw = model.freq_mapping.inverse, model.gain_mapping.inverse
    if case == "peak frequency":
        return model, target, Axis("raw_freq", np.geomspace(*cfg.freq_sweep_hz, cfg.freq_points),
                                   to_raw=f_to_raw, label="centre frequency [Hz]")
    return model, target, [Axis("raw_freq", np.geomspace(*cfg.surface_freq_hz, cfg.surface_points),
                                to_raw=f_to_raw, label="centre frequency [Hz]"),
                           Axis("raw_gain", np.linspace(*cfg.surface_gain_db, cfg.surface_points),
                                to_raw=g_to_raw, label="gain [dB]")]


def tasks(cfg: Config) -> list[Task]:
    """One task per case and loss."""
    return [Task(f"{case}/{loss}", {"case": case, "loss": loss,
                                    "settings": {k: getattr(cfg, k) for k in COMMON + fields}})
            for case, fields in CASES.items() for loss in _losses(cfg)]


def run_task(params: dict, tctx) -> dict:
    """The loss of one case over its sweep grid."""
    cfg = SimpleNamespace(**params["settings"])
    model, target, axes = _case(cfg, params["case"])
    grid = flamo.Grid(cfg.nfft, fs=cfg.fs, dtype=torch.float64)
    outputs = {"freq": lambda s: s.response(grid)[..., 0, 0],
               "time": lambda s: s.impulse_response(grid)[..., 0]}  # (..., nfft, 1), time first
    kind, fn = _losses(cfg)[params["loss"]]
    with torch.no_grad():
        reference = outputs[kind](target)
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


def reduce(cfg: Config, results: dict, ctx) -> None:
    """Profiles, surfaces, local minima, figures and headline from the sweeps."""
    res_d, rows_d = _profiles(cfg, results, "delay")
    res_f, rows_f = _profiles(cfg, results, "peak frequency")
    res_s, rows_s = _profiles(cfg, results, "peak frequency x gain")

    ctx.write_csv(pd.DataFrame(rows_d + rows_f), "profiles.csv")
    ctx.write_csv(pd.DataFrame(rows_s), "surfaces.csv")
    minima = []
    for case, results, target_value in (("delay", res_d, cfg.delay_target), ("peak frequency", res_f, cfg.peak_f0)):
        for name, res in results.items():
            flat = bool(np.ptp(res.loss) <= 1e-9 * max(1.0, np.abs(res.loss).max()))
            # a flat profile (rounding noise only) has no minima worth counting
            count = 0 if flat else len(local_minima(res.loss))
            minima.append({"case": case, "loss": name, "local_minima": count,
                           "argmin": res.argmin()[0], "target": target_value, "flat": flat})
    table = pd.DataFrame(minima)
    ctx.write_csv(table, "local_minima.csv")
    ctx.log("\n" + table.to_string(index=False))

    # -- figures ---------------------------------------------------------------------------------
    fig, axs = plt.subplots(2, 1, figsize=(8, 7))
    for ax, results, log_x, target_value in ((axs[0], res_d, False, cfg.delay_target),
                                             (axs[1], res_f, True, cfg.peak_f0)):
        for name, res in results.items():
            row = next(r for r in minima if r["loss"] == name
                       and r["case"] == ("delay" if results is res_d else "peak frequency"))
            count, flat = row["local_minima"], " (flat: rounding noise only, drawn at 0)" if row["flat"] else ""
            z = np.zeros_like(res.loss) if row["flat"] else res.loss / max(np.abs(res.loss).max(), 1e-30)
            ax.plot(res.axes[0].values, z, label=f"{name}: {count} local minima{flat}")
        ax.axvline(target_value, color="k", ls=":", lw=1, label="target")
        ax.set_xlabel(results[next(iter(results))].axes[0].label)
        ax.set_ylabel("loss / max loss [-]")
        if log_x:
            ax.set_xscale("log")
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    axs[0].set_title(f"Delay length sweep (target {cfg.delay_target:g} samples, 2nd-order lowpass at {cfg.lowpass_hz:g} Hz after it)")
    axs[1].set_title(f"Peak filter centre frequency sweep (target {cfg.peak_f0:g} Hz, "
                     f"{cfg.peak_gain_db:g} dB, Q {cfg.peak_q:g})")
    fig.tight_layout()
    ctx.save_figure(fig, "profiles.png")

    fig, axs = plt.subplots(2, 2, figsize=(10, 8))
    for ax, (name, res) in zip(axs.ravel(), res_s.items()):
        res.plot(ax=ax, log_x=True, db=True)
        ax.plot(cfg.peak_f0, cfg.peak_gain_db, "w*", ms=10)
        ax.set_title(name, fontsize=9)
    fig.suptitle("Loss surfaces over centre frequency and gain (white star: target)")
    fig.tight_layout()
    ctx.save_figure(fig, "surfaces.png")

    head = {}
    for r in minima:
        key = ("delay" if r["case"] == "delay" else "freq") + "_" + r["loss"].split(" (")[0].replace(" ", "_").replace("-", "_").lower()
        head[f"minima_{key}"] = r["local_minima"]
    ctx.headline(**head)
