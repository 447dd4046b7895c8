"""Hyperconditioning: an MLP predicts the parameters of a peak-filter cascade.

An MLP maps a target's 1/3-octave band levels (dB) to the raw parameters of a cascade of
K peak filters (flamo.SOS with the private stable peak parametrization flamo.optim._peak,
pending the module-catalogue PEQ); the whole batch of predicted cascades is evaluated in one
call with flamo.optim.hyper.batched_response (FLAMO paper, Fig. 3; Nercessian et al., ICASSP
2021). Training targets are random cascades of the same family (seeded); held-out targets
are fitted both by the network (one forward pass, amortized) and by per-target direct
optimization (Adam on the same parametrization). Reported: RMS error in dB over the grid
bins between 20 Hz and 20 kHz, and wall time per target.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import nn

import flamo
from flamo.optim import hyper
from flamo.optim._peak import peak_cascade
from flamo.optim.decay import octave_band_masks

DESCRIPTION = "hyperconditioning: MLP -> peak-EQ parameters vs per-target Adam (dB error, time per target)"


@dataclass
class Config:
    """Defaults = full run."""

    fs: int = 48000  # sample rate [Hz]
    nfft: int = 2**11  # grid size [samples]
    sections: int = 4  # peak filters in the cascade
    hidden: int = 256  # MLP width
    train_steps: int = 1200
    batch: int = 128
    lr: float = 1e-3
    n_test: int = 40  # held-out targets
    direct_steps: int = 500  # Adam steps per target for direct optimization
    direct_lr: float = 5e-2
    n_timed: int = 10  # direct optimizations timed one by one

    @classmethod
    def quick(cls) -> "Config":
        return cls(nfft=2**10, train_steps=150, batch=64, n_test=8, direct_steps=60, n_timed=2,
                   hidden=128)


def third_octave_centers(low=25.0, high=16000.0):
    """Nominal base-2 1/3-octave centres 1000 * 2^(k/3) between low and high [Hz]."""
    ks = range(math.ceil(3 * math.log2(low / 1000)), math.floor(3 * math.log2(high / 1000)) + 1)
    return [1000 * 2 ** (k / 3) for k in ks]


def random_raw(n, sections, gen):
    """Raw peak parameters covering the mapping's range: f log-uniform over 20 Hz..0.45 fs,
    gains mostly within +-12 dB, Q over 0.3..10."""
    u = torch.rand(n, sections, 3, generator=gen)
    raw = torch.empty(n, sections, 3)
    raw[..., 0] = torch.logit(0.05 + 0.9 * u[..., 0])
    raw[..., 1] = torch.atanh((2 * u[..., 1] - 1) * (12 / 18))
    raw[..., 2] = torch.logit(0.1 + 0.8 * u[..., 2])
    return raw


class Net(nn.Module):
    """Band levels (B, bands) -> raw peak parameters {name: (B, K, 3)}."""

    def __init__(self, bands, system, hidden):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(bands, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                  nn.GELU())
        self.head = hyper.ParameterHead(hidden, system)

    def forward(self, features):
        return self.head(self.body(features / 12.0))  # dB features scaled to ~unit range


def run(cfg: Config, ctx) -> None:
    torch.set_num_threads(1)
    grid = flamo.Grid(cfg.nfft, fs=cfg.fs)
    # template: K peaks spread over the spectrum at 0 dB, Q = 1
    f_init = np.geomspace(100, 8000, cfg.sections)
    template = peak_cascade(f_init, np.zeros(cfg.sections), np.ones(cfg.sections), cfg.fs)
    name = next(iter(hyper.parameter_shapes(template)))  # "raw"
    centers = third_octave_centers()
    masks = octave_band_masks(grid.M, cfg.fs, centers, fraction=3)  # (bands, M)
    masks = masks / masks.sum(-1, keepdim=True)
    freqs = grid.freqs
    in_band = (freqs >= 20) & (freqs <= 20000)

    def level_db(raw):  # (B, K, 3) -> (B, M) magnitude in dB
        h = hyper.batched_response(template, {name: raw}, grid)[..., 0, 0]
        return 20 * torch.log10(h.abs() + 1e-6)

    def features(mag_db):  # band energies in dB, (B, bands)
        power = 10 ** (mag_db / 10)
        return 10 * torch.log10(power @ masks.T + 1e-12)

    def err_db(pred_db, target_db):  # (B,) RMS dB error over 20 Hz..20 kHz
        return ((pred_db - target_db)[..., in_band] ** 2).mean(-1).sqrt()

    gen = torch.Generator().manual_seed(ctx.seed)
    test_raw = random_raw(cfg.n_test, cfg.sections, gen)
    with torch.no_grad():
        test_db = level_db(test_raw)
        test_feat = features(test_db)

    # -- train the MLP on fresh random targets every step --------------------------------------
    net = Net(len(centers), template, cfg.hidden)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.train_steps)
    curve = []
    t0 = time.perf_counter()
    for step in ctx.progress(range(cfg.train_steps), desc="train MLP", total=cfg.train_steps):
        with torch.no_grad():
            target_db = level_db(random_raw(cfg.batch, cfg.sections, gen))
        pred_db = level_db(net(features(target_db))[name])
        loss = ((pred_db - target_db)[..., in_band] ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % max(1, cfg.train_steps // 100) == 0 or step == cfg.train_steps - 1:
            with torch.no_grad():
                test_err = err_db(level_db(net(test_feat)[name]), test_db).mean().item()
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
        mlp_db = level_db(net(test_feat)[name])
        mlp_err = err_db(mlp_db, test_db)

    # -- direct optimization: Adam on the same raw parameters, all targets batched ------------
    # (each target's parameters are independent, so a batched run equals per-target runs;
    #  the per-target time is measured separately on n_timed targets, one at a time)
    def direct(raw0, target_db, steps):
        raw = raw0.clone().requires_grad_(True)
        opt_d = torch.optim.Adam([raw], lr=cfg.direct_lr)
        for _ in range(steps):
            loss_d = ((level_db(raw) - target_db)[..., in_band] ** 2).mean(-1).sum()
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        return raw.detach()

    init = template.raw.detach().expand(cfg.n_test, -1, -1)
    direct_raw = direct(init, test_db, cfg.direct_steps)
    with torch.no_grad():
        direct_db = level_db(direct_raw)
        direct_err = err_db(direct_db, test_db)
    t0 = time.perf_counter()
    for i in range(cfg.n_timed):
        direct(init[i:i + 1], test_db[i:i + 1], cfg.direct_steps)
    direct_time = (time.perf_counter() - t0) / cfg.n_timed
    # MLP prediction refined by direct optimization (a common combination)
    with torch.no_grad():
        mlp_raw = net(test_feat)[name]
    refined_err = err_db(level_db(direct(mlp_raw, test_db, cfg.direct_steps // 5)), test_db).detach()

    rows = []
    for i in range(cfg.n_test):
        rows.append({"target": i, "method": "MLP (amortized)", "rms_error_db": mlp_err[i].item()})
        rows.append({"target": i, "method": f"Adam x{cfg.direct_steps}", "rms_error_db": direct_err[i].item()})
        rows.append({"target": i, "method": f"MLP + Adam x{cfg.direct_steps // 5}",
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
