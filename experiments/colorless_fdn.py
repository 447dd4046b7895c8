"""Colorless FDN (Dal Santo et al., DAFx 2023; FLAMO Fig. 4): flatten an FDN's magnitude response.

Setup (as published with the code of Dal Santo, Prawda, Schlecht, Valimaki, "Differentiable
feedback delay network for colorless reverberation", DAFx 2023, and its extension "Efficient
optimization of feedback delay networks for smooth reverberation", arXiv 2402.11216): an FDN
with per-sample gain 0.9999 (every line gain 0.9999^m_i), orthogonal A = expm(skew(W)) and
input/output gains b, c drawn at random; A, b and c are trained with Adam (lr 1e-3) through
:class:`flamo.optim.Trainer` on the spectral loss of :func:`flamo.optim.colorless_spectral_loss`
(|H_i| - 1 on each line output c_i x_i and on their sum, squared as the paper writes it)
plus the feedback-matrix sparsity term :func:`flamo.optim.feedback_sparsity` (the
arXiv 2402.11216 variant; weight ``sparsity_weight``). Delay sets: N = 6
[887, 911, 941, 1699, 1951, 2053], N = 4 and N = 8 of
:data:`flamo.reverb.COLORLESS_FDN_DELAYS`; fs = 48 kHz. Before training the energy of the
FDN is normalized to 1 (:func:`flamo.reverb.normalize_energy`), so the loss works on the
coloration rather than on the level.

Differences from the published training: the loss sees every point of a uniform grid of
``train_nfft`` // 2 + 1 frequencies at each step (the paper draws mini-batches of random
frequencies from a much denser set and trains for many epochs); here each run has
``steps`` Adam steps, sized so the full run (3 sizes x 5 seeds) stays near 10 minutes on
two CPU cores. The results are therefore those of a short optimization.

Measured before and after, per size and seed (mean +/- std over seeds in summary.csv):

* spread of the magnitude response: std over frequency of 20 log10 |H| (dB) on a grid of
  ``eval_nfft`` // 2 + 1 points (a Rayleigh-distributed magnitude, i.e. dense random
  modes, gives about 5.6 dB);
* modal excitation: |residues| from :func:`flamo.reverb.modal_decomposition` (exact poles of
  the FDN), its spread as the std of 20 log10 |residue| (dB);
* normalized echo density (Abel & Huang, AES 2006; :func:`flamo.reverb.echo_density`, 20 ms
  window) of the time-domain IR (:func:`baselines.render`): mean over 50-300 ms and the
  first time it reaches 0.9.

Comparison with the paper: the paper reports these outcomes as figures and a listening
test: a narrower distribution of modal excitation after optimization and an echo density
that is kept. The text we could consult gives no numeric spread values, so only the
direction of each change is compared (see the headline and summary.csv).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import flamo
from baselines import render
from flamo.optim import Trainer
from flamo.reverb import (COLORLESS_FDN_DELAYS, colorless_criteria, colorless_fdn, echo_density,
                          line_outputs, modal_decomposition, normalize_energy)

DESCRIPTION = "colorless FDN (DAFx 2023 / FLAMO Fig. 4): spectral + sparsity optimization, N = 4, 6, 8"


@dataclass
class Config:
    """Hyperparameters (defaults = full run)."""

    sizes: tuple = ("N4", "N6", "N8")  # keys of flamo.reverb.COLORLESS_FDN_DELAYS
    seeds: tuple = (0, 1, 2, 3, 4)  # initial A, b, c
    fs: float = 48000.0  # sample rate [Hz]
    gain_per_sample: float = 0.9999  # per-sample loop gain (published code)
    train_nfft: int = 2**15  # grid of the loss [samples]
    eval_nfft: int = 2**17  # grid of the magnitude-spread measurement [samples]
    steps: int = 200  # Adam steps per run
    lr: float = 1e-3
    sparsity_weight: float = 1.0
    p_below: float = 2.0  # spectral-loss exponents below / above |H| = 1
    p_above: float = 2.0
    ir_seconds: float = 0.5  # IR length for the echo density [s]
    echo_window_ms: float = 20.0
    echo_range_ms: tuple = (50.0, 300.0)  # window of the mean echo density [ms]
    figure_size: str = "N6"  # size shown in the response / echo-density figures (seed 0)

    @classmethod
    def quick(cls) -> "Config":
        return cls(sizes=("N6",), seeds=(0,), train_nfft=2**13, eval_nfft=2**14, steps=15,
                   ir_seconds=0.35)


def _magnitude_db(system, grid):
    with torch.no_grad():
        h = system.response(grid)[:, 0, 0].abs().double()
    return (20 * torch.log10(h.clamp_min(1e-12))).numpy()


def _measure(system, cfg, eval_grid, train_grid, criteria):
    """Metrics of the system in its current state (no autograd)."""
    mag = _magnitude_db(system, eval_grid)
    modes = modal_decomposition(system)
    res_db = 20 * np.log10(np.abs(modes.residues))
    h = render(system, int(round(cfg.ir_seconds * cfg.fs))).detach().double().numpy()
    eta, t = echo_density(h, cfg.fs, window_ms=cfg.echo_window_ms)
    lo, hi = (v / 1e3 for v in cfg.echo_range_ms)
    reached = np.flatnonzero(eta >= 0.9)
    with torch.no_grad():
        lines = line_outputs(system, train_grid)
        losses = {name: float(fn(lines, None)) for name, (fn, _) in criteria.items()}
    metrics = {"spread_db": float(mag.std()), "mean_level_db": float(mag.mean()),
               "residue_std_db": float(res_db.std()), "residue_mean_db": float(res_db.mean()),
               "modes": int(modes.poles.size), "modal_converged": bool(modes.converged),
               "echo_density_mean": float(eta[(t >= lo) & (t <= hi)].mean()),
               "echo_density_t90_ms": float(t[reached[0]] * 1e3) if reached.size else float("nan"),
               "spectral_loss": losses["spectral"], "sparsity_loss": losses["sparsity"]}
    return metrics, {"mag_db": mag, "res_db": res_db, "eta": eta, "t": t}


def run(cfg: Config, ctx) -> None:
    """Train every (size, seed), measure before/after, write CSVs, figures and headline."""
    dtype = ctx.dtype
    train_grid = flamo.Grid(cfg.train_nfft, fs=cfg.fs, dtype=dtype, device=ctx.device)
    eval_grid = flamo.Grid(cfg.eval_nfft, fs=cfg.fs, dtype=dtype, device=ctx.device)
    rows, curves, kept = [], [], {}
    jobs = [(size, seed) for size in cfg.sizes for seed in cfg.seeds]
    for size, seed in ctx.progress(jobs, desc="colorless FDN", total=len(jobs)):
        delays = COLORLESS_FDN_DELAYS[size]
        system = colorless_fdn(delays, seed=seed, gain_per_sample=cfg.gain_per_sample,
                               dtype=dtype).to(ctx.device)
        normalize_energy(system, train_grid, 1.0)
        criteria = colorless_criteria(system, cfg.sparsity_weight, cfg.p_below, cfg.p_above)
        before, arrays_before = _measure(system, cfg, eval_grid, train_grid, criteria)
        trainer = Trainer(system, criteria, data=(torch.zeros(()), torch.zeros(())),
                          forward=lambda model, _: line_outputs(model, train_grid), lr=cfg.lr,
                          steps_per_epoch=max(1, cfg.steps), seed=seed, progress=False)
        start = time.perf_counter()
        trainer.fit(max_steps=cfg.steps)
        fit_s = time.perf_counter() - start
        after, arrays_after = _measure(system, cfg, eval_grid, train_grid, criteria)
        for stage, m in (("before", before), ("after", after)):
            rows.append({"size": size, "N": len(delays), "seed": seed, "stage": stage,
                         "fit_s": fit_s, **m})
        curves += [{"size": size, "seed": seed, "step": r["step"], "spectral": r["spectral"],
                    "sparsity": r["sparsity"], "total": r["total"]} for r in trainer.history]
        kept[(size, seed)] = (arrays_before, arrays_after)
        ctx.log(f"{size} seed {seed}: spread {before['spread_db']:.2f} -> {after['spread_db']:.2f} dB, "
                f"residue std {before['residue_std_db']:.2f} -> {after['residue_std_db']:.2f} dB "
                f"({fit_s:.1f} s)")
    per_run = pd.DataFrame(rows)
    ctx.write_csv(per_run, "per_run.csv")
    ctx.write_csv(pd.DataFrame(curves), "training.csv")
    metrics = ["spread_db", "residue_std_db", "echo_density_mean", "echo_density_t90_ms",
               "spectral_loss", "sparsity_loss", "fit_s"]
    summary = per_run.groupby(["size", "N", "stage"], sort=False)[metrics].agg(["mean", "std"])
    summary.columns = [f"{a}_{b}" for a, b in summary.columns]
    summary = summary.reset_index()
    ctx.write_csv(summary, "summary.csv")

    show = cfg.figure_size if cfg.figure_size in cfg.sizes else cfg.sizes[0]
    ctx.save_figure(_response_figure(cfg, eval_grid, *kept[(show, cfg.seeds[0])], show),
                    "magnitude_responses.png")
    ctx.save_figure(_modal_figure(cfg, kept), "modal_excitation.png")
    ctx.save_figure(_echo_figure(cfg, kept, show), "echo_density.png")
    ctx.save_figure(_training_figure(pd.DataFrame(curves)), "training.png")

    def mean(size, stage, col):
        sel = per_run[(per_run["size"] == size) & (per_run["stage"] == stage)]
        return float(sel[col].mean())

    head = show
    ctx.headline(**{f"{head}_spread_before_db": mean(head, "before", "spread_db"),
                    f"{head}_spread_after_db": mean(head, "after", "spread_db"),
                    f"{head}_residue_std_before_db": mean(head, "before", "residue_std_db"),
                    f"{head}_residue_std_after_db": mean(head, "after", "residue_std_db"),
                    f"{head}_echo_density_before": mean(head, "before", "echo_density_mean"),
                    f"{head}_echo_density_after": mean(head, "after", "echo_density_mean"),
                    "seeds": len(cfg.seeds), "steps": cfg.steps})


def _response_figure(cfg, grid, before, after, size):
    f = grid.freqs.double().cpu().numpy()
    fig, axes = plt.subplots(2, 1, figsize=(9, 6.5))
    for ax, (lo, hi) in zip(axes, ((20.0, cfg.fs / 2), (1000.0, 1100.0))):
        sel = (f >= lo) & (f <= hi)
        for arrays, label, color in ((before, "before", "tab:gray"), (after, "after", "tab:blue")):
            ax.plot(f[sel], arrays["mag_db"][sel], lw=0.4 if lo == 20.0 else 0.9, color=color,
                    label=f"{label} (std {arrays['mag_db'].std():.2f} dB)", alpha=0.85)
        ax.set_xlim(lo, hi)
        ax.set_xlabel("frequency (Hz)")
        ax.set_ylabel("|H| (dB)")
        ax.grid(alpha=0.3)
    axes[0].set_xscale("log")
    axes[0].set_title(f"colorless FDN {size}, seed {cfg.seeds[0]}: magnitude response before/after "
                      f"{cfg.steps} steps")
    axes[1].set_title("zoom 1000-1100 Hz")
    axes[0].legend(loc="lower left")
    fig.tight_layout()
    return fig


def _modal_figure(cfg, kept):
    fig, ax = plt.subplots(figsize=(8, 4.5))
    data, labels, positions = [], [], []
    for i, size in enumerate(cfg.sizes):
        for j, stage in enumerate(("before", "after")):
            vals = np.concatenate([kept[(size, s)][j]["res_db"] for s in cfg.seeds])
            data.append(vals)
            labels.append(f"{size}\n{stage}")
            positions.append(3 * i + j)
    parts = ax.violinplot(data, positions=positions, showmedians=True, widths=0.9)
    for k, body in enumerate(parts["bodies"]):
        body.set_facecolor("tab:gray" if k % 2 == 0 else "tab:blue")
    ax.set_xticks(positions, labels)
    ax.set_ylabel("modal excitation 20 log10 |residue| (dB)")
    ax.set_title(f"residue magnitudes, all modes of {len(cfg.seeds)} seed(s) (gray before, blue after)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def _echo_figure(cfg, kept, size):
    fig, ax = plt.subplots(figsize=(8, 4))
    for j, (stage, color) in enumerate((("before", "tab:gray"), ("after", "tab:blue"))):
        etas = np.stack([kept[(size, s)][j]["eta"] for s in cfg.seeds])
        t = kept[(size, cfg.seeds[0])][j]["t"] * 1e3
        ax.plot(t, etas.mean(0), color=color, label=f"{stage} (mean of {len(cfg.seeds)} seed(s))")
        if len(cfg.seeds) > 1:
            ax.fill_between(t, etas.min(0), etas.max(0), color=color, alpha=0.2)
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("normalized echo density")
    ax.set_title(f"echo density of the IR, {size} ({cfg.echo_window_ms:g} ms window; band = min..max)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _training_figure(curves):
    fig, ax = plt.subplots(figsize=(7, 4))
    for size, group in curves.groupby("size", sort=False):
        mean = group.groupby("step")["total"].mean()
        ax.plot(mean.index, mean.values, label=size)
    ax.set_xlabel("step")
    ax.set_ylabel("total loss (spectral + weighted sparsity)")
    ax.set_title("training loss, mean over seeds")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
