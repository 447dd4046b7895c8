"""Hyperconditioning: an MLP predicts the parameters of a parametric EQ.

An MLP maps a target's 1/3-octave band levels (dB) to the raw parameters of a flamo.PEQ
(low shelf, K peaks, high shelf: RBJ cookbook sections whose frequency, Q and gain are
mapped smoothly into their ranges, so every predicted filter is stable); the whole batch of
predicted EQs is evaluated in one call with flamo.optim.hyper.batched_response (FLAMO paper,
Fig. 3; Nercessian et al., "Neural parametric equalizer matching using differentiable
biquads", ICASSP 2021). Training targets are random PEQs of the same family (seeded), drawn
in physical units; held-out targets are fitted both by the network (one forward pass,
amortized) and by per-target direct optimization (Adam on the same raw parameters, from the
template EQ). Reported: RMS error in dB over the grid bins between 20 Hz and 20 kHz, and
wall time per target.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import nn

import flamo
from flamo.functional import third_octave_bands
from flamo.optim import hyper
from flamo.optim.energy_decay import octave_band_masks

DESCRIPTION = ("extension of FLAMO (ICASSP 2025) Fig. 3 (hyperconditioning): MLP -> PEQ parameters "
               "vs per-target Adam (dB error, time per target)")


@dataclass
class Config:
    """Defaults = full run. Frequencies in Hz, gains in dB."""

    fs: int = 48000  # sample rate [Hz]
    nfft: int = 2**11  # grid size [samples]
    peaks: int = 4  # K peak filters between the two shelves
    # ranges of the PEQ's smooth parameter mappings (every raw value maps inside them)
    freq_range: tuple = (20.0, 20000.0)
    q_range: tuple = (0.3, 10.0)
    gain_range_db: tuple = (-18.0, 18.0)
    # random targets, drawn in physical units (frequencies and Q log-uniform, gains uniform)
    target_gain_db: float = 12.0  # gains uniform in +- this
    target_low_shelf_hz: tuple = (30.0, 500.0)
    target_peak_hz: tuple = (40.0, 16000.0)
    target_high_shelf_hz: tuple = (2000.0, 16000.0)
    target_peak_q: tuple = (0.4, 6.0)
    target_shelf_q: tuple = (0.5, 1.0)  # RBJ shelf Q above ~0.7 overshoots; keep it mild
    # template (MLP bias at init and start of direct optimization): 0 dB everywhere
    init_low_shelf_hz: float = 150.0
    init_peak_hz: tuple = (100.0, 8000.0)  # K peaks geometrically spaced over this
    init_high_shelf_hz: float = 6000.0
    init_peak_q: float = 1.0
    init_shelf_q: float = 2 ** -0.5
    # network and its training
    hidden: int = 256  # MLP width
    feature_scale_db: float = 12.0  # band levels are divided by this before the MLP
    train_steps: int = 1200
    batch: int = 128
    lr: float = 1e-3
    # evaluation
    n_test: int = 40  # held-out targets
    direct_steps: int = 500  # Adam steps per target for direct optimization
    direct_lr: float = 5e-2
    refine_steps: int = 100  # Adam steps refining the MLP prediction
    n_timed: int = 10  # direct optimizations timed one by one

    @classmethod
    def quick(cls) -> "Config":
        return cls(nfft=2**10, train_steps=150, batch=64, n_test=8, direct_steps=60, refine_steps=12,
                   n_timed=2, hidden=128)


def make_template(cfg: Config) -> flamo.PEQ:
    """The PEQ whose raw parameters the network predicts: 0 dB, shelves and K spread peaks."""
    freq = [cfg.init_low_shelf_hz, *np.geomspace(*cfg.init_peak_hz, cfg.peaks), cfg.init_high_shelf_hz]
    q = [cfg.init_shelf_q] + [cfg.init_peak_q] * cfg.peaks + [cfg.init_shelf_q]
    return flamo.PEQ(freq, gain_db=0.0, q=q, freq_range=cfg.freq_range,
                     q_range=cfg.q_range, gain_range_db=cfg.gain_range_db)


def _per_band(shelf_low, peak, shelf_high, k):
    """(low, high) bounds per band, each (K + 2,): [low shelf, K peaks, high shelf]."""
    lows = torch.tensor([shelf_low[0]] + [peak[0]] * k + [shelf_high[0]], dtype=torch.float64)
    highs = torch.tensor([shelf_low[1]] + [peak[1]] * k + [shelf_high[1]], dtype=torch.float64)
    return lows, highs


def random_params(n, cfg: Config, template: flamo.PEQ, gen) -> dict:
    """Raw parameters {name: (n, K + 2)} of n random PEQs drawn in physical units:
    frequencies and Q log-uniform in their per-band ranges, gains uniform in +-target_gain_db."""
    k = cfg.peaks
    u = torch.rand(3, n, k + 2, generator=gen, dtype=torch.float64)
    f_lo, f_hi = _per_band(cfg.target_low_shelf_hz, cfg.target_peak_hz, cfg.target_high_shelf_hz, k)
    q_lo, q_hi = _per_band(cfg.target_shelf_q, cfg.target_peak_q, cfg.target_shelf_q, k)
    freq = f_lo * (f_hi / f_lo) ** u[0]
    q = q_lo * (q_hi / q_lo) ** u[1]
    gain = (2 * u[2] - 1) * cfg.target_gain_db
    dtype = template.raw_freq.dtype
    return {"raw_freq": template.freq_mapping.inverse(freq).to(dtype),
            "raw_q": template.q_mapping.inverse(q).to(dtype),
            "raw_gain": template.gain_mapping.inverse(gain).to(dtype)}


class Net(nn.Module):
    """Band levels (B, bands) [dB] -> raw PEQ parameters {name: (B, K + 2)}."""

    def __init__(self, bands, system, hidden, feature_scale_db):
        super().__init__()
        self.feature_scale_db = feature_scale_db
        self.body = nn.Sequential(nn.Linear(bands, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                  nn.GELU())
        self.head = hyper.ParameterHead(hidden, system)

    def forward(self, features):
        return self.head(self.body(features / self.feature_scale_db))  # to ~unit range


def _index(params, i):
    return {n: v[i] for n, v in params.items()}


def run(cfg: Config, ctx) -> None:
    torch.set_num_threads(1)
    grid = flamo.Grid(cfg.nfft, fs=cfg.fs)
    template = make_template(cfg)
    names = list(hyper.parameter_shapes(template))  # raw_freq, raw_q, raw_gain
    centers = third_octave_bands()
    masks = octave_band_masks(grid.M, cfg.fs, centers, fraction=3)  # (M, bands)
    masks = masks / masks.sum(0, keepdim=True)
    freqs = grid.freqs
    in_band = (freqs >= 20) & (freqs <= 20000)

    def level_db(params):  # {name: (B, K + 2)} -> (B, M) magnitude in dB
        h = hyper.batched_response(template, params, grid)[..., 0, 0]
        return 20 * torch.log10(h.abs() + 1e-6)

    def features(mag_db):  # band energies in dB, (B, bands)
        power = 10 ** (mag_db / 10)
        return 10 * torch.log10(power @ masks + 1e-12)

    def err_db(pred_db, target_db):  # (B,) RMS dB error over 20 Hz..20 kHz
        return ((pred_db - target_db)[..., in_band] ** 2).mean(-1).sqrt()

    gen = torch.Generator().manual_seed(ctx.seed)
    test_params = random_params(cfg.n_test, cfg, template, gen)
    with torch.no_grad():
        test_db = level_db(test_params)
        test_feat = features(test_db)

    # -- train the MLP on fresh random targets every step --------------------------------------
    net = Net(len(centers), template, cfg.hidden, cfg.feature_scale_db)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.train_steps)
    curve = []
    t0 = time.perf_counter()
    for step in ctx.progress(range(cfg.train_steps), desc="train MLP", total=cfg.train_steps):
        with torch.no_grad():
            target_db = level_db(random_params(cfg.batch, cfg, template, gen))
        pred_db = level_db(net(features(target_db)))
        loss = ((pred_db - target_db)[..., in_band] ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % max(1, cfg.train_steps // 100) == 0 or step == cfg.train_steps - 1:
            with torch.no_grad():
                test_err = err_db(level_db(net(test_feat)), test_db).mean().item()
            curve.append({"step": step + 1, "train_mse_db2": loss.item(), "test_rms_db": test_err})
    train_time = time.perf_counter() - t0
    ctx.write_csv(pd.DataFrame(curve), "training_curve.csv")

    # -- amortized inference on the held-out targets -----------------------------------------------
    net.eval()
    with torch.no_grad():
        net(test_feat[:1])  # warm-up
        t0 = time.perf_counter()
        for i in range(cfg.n_test):  # one target at a time, as a user would
            net(test_feat[i:i + 1])
        mlp_time = (time.perf_counter() - t0) / cfg.n_test
        mlp_params = net(test_feat)
        mlp_db = level_db(mlp_params)
        mlp_err = err_db(mlp_db, test_db)

    # -- direct optimization: Adam on the same raw parameters, all targets batched ------------
    # (each target's parameters are independent, so a batched run equals per-target runs;
    #  the per-target time is measured separately on n_timed targets, one at a time)
    def direct(params0, target_db, steps):
        params = {n: v.detach().clone().requires_grad_(True) for n, v in params0.items()}
        opt_d = torch.optim.Adam(params.values(), lr=cfg.direct_lr)
        for _ in range(steps):
            loss_d = ((level_db(params) - target_db)[..., in_band] ** 2).mean(-1).sum()
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        return {n: v.detach() for n, v in params.items()}

    init = {n: getattr(template, n).detach().expand(cfg.n_test, -1) for n in names}
    direct_params = direct(init, test_db, cfg.direct_steps)
    with torch.no_grad():
        direct_db = level_db(direct_params)
        direct_err = err_db(direct_db, test_db)
    t0 = time.perf_counter()
    for i in range(cfg.n_timed):
        direct(_index(init, slice(i, i + 1)), test_db[i:i + 1], cfg.direct_steps)
    direct_time = (time.perf_counter() - t0) / cfg.n_timed
    # MLP prediction refined by direct optimization (a common combination)
    refined_params = direct(mlp_params, test_db, cfg.refine_steps)
    with torch.no_grad():
        refined_err = err_db(level_db(refined_params), test_db)

    rows = []
    for i in range(cfg.n_test):
        rows.append({"target": i, "method": "MLP (amortized)", "rms_error_db": mlp_err[i].item()})
        rows.append({"target": i, "method": f"Adam x{cfg.direct_steps}", "rms_error_db": direct_err[i].item()})
        rows.append({"target": i, "method": f"MLP + Adam x{cfg.refine_steps}",
                     "rms_error_db": refined_err[i].item()})
    per_target = pd.DataFrame(rows)
    ctx.write_csv(per_target, "errors.csv")
    timing = pd.DataFrame([
        {"method": "MLP (amortized)", "seconds_per_target": mlp_time, "n_timed": cfg.n_test},
        {"method": f"Adam x{cfg.direct_steps}", "seconds_per_target": direct_time, "n_timed": cfg.n_timed},
        {"method": "MLP training (one-off)", "seconds_per_target": train_time, "n_timed": 1},
    ])
    ctx.write_csv(timing, "timing.csv")
    ctx.log("\n" + per_target.groupby("method")["rms_error_db"].describe().to_string())
    ctx.log("\n" + timing.to_string(index=False))

    # -- figures ---------------------------------------------------------------------------------
    fig, axs = plt.subplots(1, 2, figsize=(11, 4))
    c = pd.DataFrame(curve)
    axs[0].semilogy(c["step"], c["train_mse_db2"], label="train MSE [dB^2]")
    axs[0].semilogy(c["step"], c["test_rms_db"] ** 2, label="held-out mean RMS^2 [dB^2]")
    axs[0].set_xlabel("training step")
    axs[0].set_ylabel("error [dB^2]")
    axs[0].set_title("MLP training")
    axs[0].legend()
    axs[0].grid(True, alpha=0.3)
    methods = list(per_target["method"].unique())
    axs[1].boxplot([per_target.loc[per_target["method"] == m, "rms_error_db"] for m in methods])
    axs[1].set_xticks(range(1, len(methods) + 1), methods, fontsize=8)
    axs[1].set_ylabel("RMS error 20 Hz-20 kHz [dB]")
    axs[1].set_title(f"Held-out targets (n={cfg.n_test}); time/target: MLP {mlp_time * 1e3:.2f} ms, "
                     f"Adam {direct_time:.2f} s", fontsize=9)
    axs[1].grid(True, alpha=0.3)
    fig.tight_layout()
    ctx.save_figure(fig, "errors.png")

    fig, axs = plt.subplots(1, 3, figsize=(13, 3.5), sharey=True)
    f = freqs[in_band].numpy()
    for k, ax in enumerate(axs):
        ax.semilogx(f, test_db[k, in_band], "k", lw=2, label="target")
        ax.semilogx(f, mlp_db[k, in_band], label=f"MLP ({mlp_err[k]:.2f} dB)")
        ax.semilogx(f, direct_db[k, in_band], "--", label=f"Adam ({direct_err[k]:.2f} dB)")
        ax.set_xlabel("frequency [Hz]")
        ax.set_title(f"held-out target {k}")
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
    axs[0].set_ylabel("magnitude [dB]")
    fig.tight_layout()
    ctx.save_figure(fig, "examples.png")

    ctx.headline(mlp_median_rms_db=float(mlp_err.median()), direct_median_rms_db=float(direct_err.median()),
                 refined_median_rms_db=float(refined_err.median()),
                 mlp_ms_per_target=mlp_time * 1e3, direct_s_per_target=direct_time,
                 speedup=direct_time / mlp_time)
