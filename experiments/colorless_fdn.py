"""Reproduction of Dal Santo, Prawda, Schlecht, Valimaki, "Optimizing tiny colorless feedback
delay networks" (EURASIP JASMP 2025, arXiv 2402.11216): the journal protocol and its loss
test (N = 4 [1499, 1889, 2381, 2999], the delay set of the released runs). The same protocol
runs the sparsity ablation (:mod:`experiments.colorless_ablation`, N = 8) and the delay-set
figure (:mod:`experiments.colorless_delay_sets`: all six sets, up to 50 epochs); they are
separate experiments so that each full run fits the shared machine and its results land on
their own.

Protocol (as published with the authors' code): a lossless FDN evaluated at per-sample gain
0.9999 (line i gains 0.9999^m_i), built by :func:`flamo.reverb.published_colorless_fdn`
with the released parametrization and initialization (W ~ U(-1/sqrt N, 1/sqrt N),
A = expm(triu(W, 1) - triu(W, 1)^T), b, c ~ N(0, 1)/N), energy normalized to 1 on 2000
frequencies of [0, pi]; 480000 frequencies omega_k = pi k / 480000 on [0, pi), split 80/20
into training and validation sets at random; shuffled minibatches of 2000 training
frequencies (a new shuffle every epoch, the last partial batch dropped), the response at
exactly those points (:class:`flamo.Points`); Adam, lr 1e-3, x0.1 every 10 epochs; loss
(1/N) sum_i mean((|H_i| - 1)^2) + mean((|H| - 1)^2) plus ``sparsity_weight`` x the
feedback-matrix sparsity (:func:`flamo.reverb.colorless_criteria`); after every epoch the
validation loss, and early stopping when it changed by <= 1e-4 for 5 consecutive epochs;
at most 20 epochs. Every trial runs through :class:`flamo.optim.Trainer` with a checkpoint
per epoch; each trial is one task (:mod:`experiments.tasks`) whose checkpoint lives in its
work folder, so an interrupted run resumes finished trials from the task store and the
running ones from their last epoch.

Measured per trial, initialized and optimized: the modal-excitation spread (std over modes
of 20 log10 |residue|, exact poles from :func:`flamo.reverb.modal_decomposition`), the
magnitude spread (std of 20 log10 |H| over the 480000 frequencies), the normalized echo
density (Abel & Huang 2006) of the 2 s time-domain impulse response (1024-sample window,
its mean over the IR), both validation loss terms; per epoch the training and validation
losses and the echo density. Aggregated per delay set: per-trial mean, across-trial sigma,
spread pooled over all modes of all trials.

Delay sets: ``delay_sets`` (names and delays of :data:`experiments.colorless_common.
JOURNAL_DELAY_SETS`). With ``ablation_set`` the same trials of that set are also trained
with every other weight of ``ablation_alphas`` (the weight-1 trials are the protocol's own).
Remaining differences from the released runs: float32 on CPU here (the released runs used
the GPU with float64), our own random streams (split, shuffle, initial values), and 20
trials per set instead of 100 (the claims' tolerances account for the trial count).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import flamo
from experiments import io
from experiments.colorless_common import (JOURNAL_DELAY_SETS, echo_density_mean, histogram,
                                          initial_fdn, measure_fdn, plot_band_responses,
                                          plot_residue_histograms)
from experiments.tasks import Task
from flamo.optim import Trainer
from flamo.reverb import colorless_criteria, line_outputs

DESCRIPTION = ("reproduction of Dal Santo et al. (EURASIP JASMP 2025) loss test: colorless FDN N4 on "
               "the journal protocol, modal spread of the released runs' delay set")


@dataclass
class Config:
    """Hyperparameters (defaults = full run = the journal protocol)."""

    delay_sets: tuple = JOURNAL_DELAY_SETS[:1]  # (name, delays in samples): N4 of the loss test
    trials: int = 20  # trials per delay set (the released loss test: 100)
    fs: float = 48000.0  # sample rate [Hz]
    points: int = 480000  # frequencies pi k / points on [0, pi)
    train_fraction: float = 0.8  # training share of the frequencies
    batch: int = 2000  # frequencies per minibatch
    epochs: int = 20  # at most
    lr: float = 1e-3  # Adam
    lr_step_epochs: int = 10  # lr x lr_gamma every lr_step_epochs epochs
    lr_gamma: float = 0.1
    patience: int = 5  # early stopping: epochs with |change of validation loss| <= min_delta
    min_delta: float = 1e-4
    gain_per_sample: float = 0.9999  # per-sample loop gain
    sparsity_weight: float = 1.0  # weight of the feedback-matrix sparsity term
    init: str = "journal"  # flamo.reverb.published_colorless_fdn initialization
    energy_points: int = 2000  # frequencies on [0, pi] of the energy normalization
    ablation_set: str = ""  # delay set of a sparsity ablation ("" for none)
    ablation_alphas: tuple = (0.0, 1.0)  # sparsity weights of the ablation
    ir_seconds: float = 2.0  # impulse response for the echo density [s]
    echo_window: int = 1024  # echo-density window [samples]
    echo_hop: int = 16  # echo-density profile step [samples] (the mean barely depends on it)
    figure_band_hz: tuple = (10000.0, 12500.0)  # band of the magnitude responses shown

    @classmethod
    def quick(cls) -> "Config":
        """CI variant: one small delay set, 2 trials, 1 epoch, a coarser frequency set."""
        return cls(delay_sets=(("N4_small", (149, 188, 238, 299)),), trials=2, epochs=1,
                   points=48000, ir_seconds=0.5)


class FrequencyBatches:
    """Shuffled minibatches of training frequencies, a deterministic function of (seed, step)
    so that a Trainer resumed at step s sees the batches of an uninterrupted run."""

    def __init__(self, omega, batch, seed, dtype, device):
        self.omega, self.batch, self.seed = omega, int(batch), int(seed)
        self.dtype, self.device = dtype, device
        self.steps_per_epoch = omega.numel() // self.batch  # the last partial batch is dropped
        if self.steps_per_epoch < 1:
            raise ValueError(f"FrequencyBatches: {omega.numel()} frequencies make no batch of {batch}")
        self._epoch, self._order = None, None

    def points(self, step: int) -> flamo.Points:
        """The minibatch of global step ``step`` (0-based) as explicit points on the circle."""
        epoch, k = divmod(int(step), self.steps_per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(self.omega.numel(), generator=gen)
        idx = self._order[k * self.batch:(k + 1) * self.batch]
        z = torch.polar(torch.ones(idx.numel(), dtype=torch.float64), self.omega[idx])
        return flamo.Points(z.to(self.device), dtype=self.dtype)


def frequency_split(points, train_fraction, batch, fs, seed, dtype, device):
    """The journal's split of the ``points`` frequencies pi k / points on [0, pi): a share
    ``train_fraction`` (drawn by ``seed``) as :class:`FrequencyBatches`, the rest as the
    validation points, and the grid of 2 points bins (every omega_k and pi).

    Returns
    -------
    (FrequencyBatches, flamo.Points, flamo.Grid)
    """
    omega = torch.arange(points, dtype=torch.float64) * math.pi / points
    order = torch.randperm(points, generator=torch.Generator().manual_seed(seed))
    n_train = int(round(train_fraction * points))
    batches = FrequencyBatches(omega[order[:n_train]], batch, seed, dtype, device)
    valid = omega[order[n_train:]]
    valid_points = flamo.Points(torch.polar(torch.ones_like(valid), valid).to(device), dtype=dtype)
    return batches, valid_points, flamo.Grid(2 * points, fs=fs, dtype=dtype, device=device)


class JournalMonitor:
    """Trainer callback: after every epoch the validation losses and the echo density, and the
    journal's early stopping (stop once the validation loss changed by <= ``min_delta`` in
    ``patience`` consecutive epochs). Its rows are kept in a JSON file next to the trial's
    checkpoint, so a resumed trial continues the same rule."""

    def __init__(self, path, steps_per_epoch, evaluate, min_delta, patience):
        self.path, self.steps_per_epoch, self.evaluate = path, steps_per_epoch, evaluate
        self.min_delta, self.patience = float(min_delta), int(patience)
        self.rows = []

    def resume(self, epochs_done: int) -> None:
        """Keep the rows of the epochs the checkpoint holds (a kill may leave one more)."""
        if self.path.is_file():
            rows = json.loads(self.path.read_text(encoding="utf-8"))
            self.rows = [r for r in rows if r["epoch"] <= epochs_done]

    def converged(self) -> bool:
        run = 0
        values = [r["valid_total"] for r in self.rows]
        for a, b in zip(values, values[1:]):
            run = run + 1 if abs(a - b) <= self.min_delta else 0
        return run >= self.patience

    def __call__(self, state) -> None:
        if state.step % self.steps_per_epoch:
            return
        self.rows.append({"epoch": state.epoch + 1, **self.evaluate()})
        io.write_json(self.path, self.rows)
        if self.converged():
            state.request_stop(f"validation loss changed by <= {self.min_delta:g} for "
                               f"{self.patience} epochs")


def _valid_losses(system, criteria, points):
    with torch.no_grad():
        lines = line_outputs(system, points)
        terms = {name: float(fn(lines, None)) for name, (fn, _) in criteria.items()}
    total = sum(criteria[name][1] * value for name, value in terms.items())
    return {"valid_total": total, "valid_spectral": terms["spectral"], "valid_sparsity": terms["sparsity"]}


def _measure(system, cfg, criteria, valid_points, all_points, keep_band):
    out = measure_fdn(system, cfg, all_points)
    mag = out.pop("magnitude_db")
    out.update(_valid_losses(system, criteria, valid_points))
    if keep_band is not None:
        out["band_db"] = mag[keep_band].tolist()
    return out


def run_trial(cfg, tctx, name, delays, alpha, t):
    """Train one trial, resuming from the checkpoint in the task's work folder; returns its
    record. The seed is 1000 x the run seed + the trial index, so that trial t of every
    delay set and sparsity weight starts from the same random streams (paired trials)."""
    folder = tctx.work_dir
    seed = 1000 * tctx.run_seed + t
    dtype, device = tctx.dtype, tctx.device
    system = initial_fdn(cfg, delays, seed, dtype, device)
    batches, valid_points, all_points = frequency_split(cfg.points, cfg.train_fraction, cfg.batch,
                                                        cfg.fs, seed, dtype, device)
    freqs = all_points.freqs.double().cpu().numpy()
    band = ((freqs >= cfg.figure_band_hz[0]) & (freqs <= cfg.figure_band_hz[1])) if t == 0 else None
    criteria = colorless_criteria(system, sparsity_weight=alpha)
    init = _measure(system, cfg, criteria, valid_points, all_points, band)

    def evaluate():
        return {**_valid_losses(system, criteria, valid_points),
                "echo_density": echo_density_mean(system, cfg.fs, cfg.ir_seconds, cfg.echo_window,
                                                  cfg.echo_hop)[0]}

    monitor = JournalMonitor(folder / "monitor.json", batches.steps_per_epoch, evaluate,
                             cfg.min_delta, cfg.patience)
    holder = {}
    trainer = Trainer(
        system, criteria, data=(torch.zeros(()), torch.zeros(())),
        forward=lambda model, _: line_outputs(model, batches.points(holder["trainer"].step)),
        lr=cfg.lr, scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, cfg.lr_step_epochs, cfg.lr_gamma),
        steps_per_epoch=batches.steps_per_epoch, seed=seed, progress=False, callbacks=[monitor],
        log_dir=folder, checkpoint_dir=folder, device=device)
    holder["trainer"] = trainer
    if trainer.resume():  # from the task's last checkpoint, if a killed run left one
        monitor.resume(trainer.step // batches.steps_per_epoch)
    start = time.perf_counter()
    if not monitor.converged():
        trainer.fit(epochs=cfg.epochs)
    train_s = time.perf_counter() - start
    final = _measure(system, cfg, criteria, valid_points, all_points, band)
    epochs_run = trainer.step // batches.steps_per_epoch
    train_log = pd.read_csv(folder / "epochs.csv")
    rows = [{"epoch": 0, "lr": cfg.lr, "train_total": float("nan"), "train_spectral": float("nan"),
             "train_sparsity": float("nan"), "valid_total": init["valid_total"],
             "valid_spectral": init["valid_spectral"], "valid_sparsity": init["valid_sparsity"],
             "echo_density": init["echo_density"]}]
    for r in monitor.rows:
        tr = train_log[train_log["epoch"] == r["epoch"] - 1].iloc[-1]
        rows.append({"epoch": r["epoch"], "lr": float(tr["lr"]), "train_total": float(tr["total"]),
                     "train_spectral": float(tr["spectral"]), "train_sparsity": float(tr["sparsity"]),
                     **{k: r[k] for k in ("valid_total", "valid_spectral", "valid_sparsity", "echo_density")}})
    result = {"set": name, "N": len(delays), "alpha": alpha, "trial": t, "seed": seed,
              "epochs_run": epochs_run, "stopped_early": monitor.converged(),
              "train_s": train_s, "init": init, "final": final, "epochs": rows,
              "freqs_band": freqs[band].tolist() if band is not None else None}
    return result


#: Config fields that are not the protocol of one trial (they choose which trials run).
_SELECTION = ("delay_sets", "trials", "sparsity_weight", "ablation_set", "ablation_alphas")


def tasks(cfg: Config) -> list[Task]:
    """Every (delay set, trial) at the protocol's sparsity weight, then the ablation's other
    weights; each task holds the protocol settings."""
    sets = dict(cfg.delay_sets)
    if cfg.ablation_set and cfg.ablation_set not in sets:
        raise ValueError(f"ablation_set {cfg.ablation_set!r} is not one of the delay sets {list(sets)}")
    jobs = [(name, cfg.sparsity_weight, t) for name in sets for t in range(cfg.trials)]
    if cfg.ablation_set:
        jobs += [(cfg.ablation_set, a, t) for a in cfg.ablation_alphas if a != cfg.sparsity_weight
                 for t in range(cfg.trials)]
    protocol = {k: v for k, v in asdict(cfg).items() if k not in _SELECTION}
    return [Task(f"{name}/alpha{alpha:g}/trial{t}",
                 {"set": name, "delays": list(sets[name]), "alpha": alpha, "trial": t, "protocol": protocol})
            for name, alpha, t in jobs]


def run_task(params: dict, tctx) -> dict:
    """One trial of the journal protocol."""
    cfg = SimpleNamespace(**params["protocol"])
    r = run_trial(cfg, tctx, params["set"], params["delays"], params["alpha"], params["trial"])
    tctx.log(f"modal spread {r['init']['modal_spread_db']:.2f} -> {r['final']['modal_spread_db']:.2f} dB, "
             f"echo density {r['init']['echo_density']:.3f} -> {r['final']['echo_density']:.3f}, "
             f"{r['epochs_run']} epochs ({r['train_s']:.0f} s)")
    return r


def reduce(cfg: Config, results: dict, ctx) -> None:
    """Tables, figures and headline from every trial."""
    _write_outputs(cfg, ctx, list(results.values()))


def _write_outputs(cfg, ctx, results):
    trial_rows, epoch_rows, hist_rows, summary_rows = [], [], [], []
    for r in results:
        for stage in ("init", "final"):
            m = r[stage]
            trial_rows.append({"set": r["set"], "N": r["N"], "alpha": r["alpha"], "trial": r["trial"],
                               "seed": r["seed"], "stage": "initialized" if stage == "init" else "optimized",
                               "modal_spread_db": m["modal_spread_db"],
                               "magnitude_spread_db": m["magnitude_spread_db"],
                               "echo_density": m["echo_density"], "valid_spectral_loss": m["valid_spectral"],
                               "valid_sparsity_loss": m["valid_sparsity"], "modes": m["modes"],
                               "modal_converged": m["modal_converged"], "epochs_run": r["epochs_run"],
                               "stopped_early": r["stopped_early"]})
        epoch_rows += [{"set": r["set"], "alpha": r["alpha"], "trial": r["trial"], **e} for e in r["epochs"]]
    trials = pd.DataFrame(trial_rows)
    epochs = pd.DataFrame(epoch_rows)
    ctx.write_csv(trials, "trials.csv")
    ctx.write_csv(epochs, "epochs.csv")
    if cfg.ablation_set:
        abl = epochs[epochs["set"] == cfg.ablation_set]
        ablation = abl.rename(columns={"valid_spectral": "spectral_loss", "valid_sparsity": "sparsity_loss"})[
            ["alpha", "trial", "epoch", "spectral_loss", "sparsity_loss", "echo_density"]]
        ctx.write_csv(ablation.reset_index(drop=True), "ablation.csv")
        ctx.save_figure(_ablation_figure(cfg, ablation), "ablation.png")

    head = {}
    groups = {}
    for r in results:
        groups.setdefault((r["set"], r["alpha"]), []).append(r)
    for (name, alpha), rs in groups.items():
        row = {"set": name, "alpha": alpha, "trials": len(rs),
               "epochs_mean": float(np.mean([r["epochs_run"] for r in rs])),
               "trials_not_stopped_early": int(sum(not r["stopped_early"] for r in rs))}
        for stage, label in (("init", "init"), ("final", "optim")):
            spreads = np.array([r[stage]["modal_spread_db"] for r in rs])
            pooled = np.concatenate([r[stage]["residues_db"] for r in rs])
            row[f"modal_spread_{label}_db"] = float(spreads.mean())
            row[f"modal_spread_sigma_{label}_db"] = float(spreads.std(ddof=1)) if len(rs) > 1 else float("nan")
            row[f"modal_spread_pooled_{label}_db"] = float(pooled.std())
            row[f"magnitude_spread_{label}_db"] = float(np.mean([r[stage]["magnitude_spread_db"] for r in rs]))
            row[f"echo_density_{label}"] = float(np.mean([r[stage]["echo_density"] for r in rs]))
            centred = np.concatenate([np.asarray(r[stage]["residues_db"]) - np.mean(r[stage]["residues_db"])
                                      for r in rs])
            edges, counts = histogram(centred, center=False)
            hist_rows += [{"set": name, "alpha": alpha, "stage": label, "bin_lo_db": lo, "bin_hi_db": hi,
                           "count": int(c)} for lo, hi, c in zip(edges[:-1], edges[1:], counts)]
        row["modal_spread_reduction_db"] = float(np.mean([r["init"]["modal_spread_db"] - r["final"]["modal_spread_db"]
                                                          for r in rs]))
        summary_rows.append(row)
        if alpha == cfg.sparsity_weight:
            for k in ("modal_spread_init_db", "modal_spread_optim_db", "modal_spread_pooled_init_db",
                      "modal_spread_pooled_optim_db", "modal_spread_sigma_init_db",
                      "modal_spread_sigma_optim_db", "modal_spread_reduction_db", "trials",
                      "trials_not_stopped_early", "epochs_mean", "magnitude_spread_init_db",
                      "magnitude_spread_optim_db"):
                head[f"{name}.{k}"] = row[k]
    summary = pd.DataFrame(summary_rows)
    ctx.write_csv(summary, "summary.csv")
    ctx.write_csv(pd.DataFrame(hist_rows), "residue_histograms.csv")

    by_alpha = {a: {r["trial"]: r for r in rs} for (n, a), rs in groups.items() if n == cfg.ablation_set}
    if cfg.ablation_set and len(by_alpha) == 2 and 0.0 in by_alpha:
        zero, one = by_alpha[0.0], by_alpha[max(by_alpha)]
        common = sorted(set(zero) & set(one))
        change = lambda rs: float(np.mean([rs[t]["final"]["echo_density"] - rs[t]["init"]["echo_density"]  # noqa: E731
                                           for t in common]))
        head["ablation.echo_density_change_alpha0"] = change(zero)
        head["ablation.echo_density_change_alpha1"] = change(one)
        head["ablation.echo_density_alpha1_minus_alpha0"] = float(np.mean(
            [one[t]["final"]["echo_density"] - zero[t]["final"]["echo_density"] for t in common]))
        head["ablation.trials"] = len(common)
    ctx.headline(**head)

    ctx.save_figure(_delay_set_figure(cfg, groups), "delay_sets.png")
    ctx.save_figure(_loss_figure(cfg, epochs), "loss_curves.png")
    ctx.save_figure(_spread_figure(cfg, trials), "modal_spread.png")


def _delay_set_figure(cfg, groups):
    """The journal's delay-set figure form: magnitude responses over a band (trial 0) and
    histograms of residue level minus its mean (all trials), before and after."""
    names = [n for n, _ in cfg.delay_sets]
    fig, axes = plt.subplots(len(names), 2, figsize=(12, 2.4 * len(names) + 0.6), squeeze=False)
    for i, name in enumerate(names):
        rs = groups[(name, cfg.sparsity_weight)]
        first = next(r for r in rs if r["trial"] == 0)
        freqs = np.asarray(first["freqs_band"])
        plot_band_responses(axes[i, 0], freqs, np.asarray(first["init"]["band_db"]),
                            np.asarray(first["final"]["band_db"]), cfg.figure_band_hz)
        axes[i, 0].set_ylabel(f"{name}\n|H| [dB]")
        before = np.concatenate([np.asarray(r["init"]["residues_db"]) - np.mean(r["init"]["residues_db"]) for r in rs])
        after = np.concatenate([np.asarray(r["final"]["residues_db"]) - np.mean(r["final"]["residues_db"]) for r in rs])
        plot_residue_histograms(axes[i, 1], before, after)
        axes[i, 1].legend(fontsize=7, loc="upper left")
        if i < len(names) - 1:
            axes[i, 0].set_xlabel("")
            axes[i, 1].set_xlabel("")
    axes[-1, 0].set_xlabel("frequency [Hz]")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    axes[0, 0].set_title("magnitude response, trial 0")
    axes[0, 1].set_title(f"residue level - its mean, {cfg.trials} trials pooled, 2 dB bins")
    fig.suptitle("Delay sets in the form of the journal's Fig. 6: initialized (gray) vs optimized (blue)")
    fig.tight_layout()
    return fig


def _band_plot(ax, data, column, alpha, color):
    sel = data[data["alpha"] == alpha]
    stats = sel.groupby("epoch")[column].agg(["mean", "min", "max"])
    ax.plot(stats.index, stats["mean"], color=color, marker="o", ms=3, label=f"sparsity weight {alpha:g}")
    ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.2)


def _ablation_figure(cfg, ablation):
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for column, ax, label in (("spectral_loss", axes[0], "spectral loss (validation)"),
                              ("sparsity_loss", axes[1], "sparsity loss (validation)"),
                              ("echo_density", axes[2], "echo density (2 s IR, mean)")):
        for alpha, color in zip(sorted(ablation["alpha"].unique()), ("tab:red", "tab:blue", "tab:green")):
            _band_plot(ax, ablation, column, alpha, color)
        ax.set(xlabel="epoch (0 = initialized)", ylabel=label)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"Sparsity ablation, {cfg.ablation_set}: mean over {cfg.trials} trials (band = min..max)")
    fig.tight_layout()
    return fig


def _loss_figure(cfg, epochs):
    names = [n for n, _ in cfg.delay_sets]
    data = epochs[epochs["alpha"] == cfg.sparsity_weight]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for name, color in zip(names, plt.cm.tab10.colors):
        sel = data[data["set"] == name].groupby("epoch")[["valid_spectral", "valid_sparsity"]].mean()
        axes[0].plot(sel.index, sel["valid_spectral"], color=color, marker="o", ms=3, label=name)
        axes[1].plot(sel.index, sel["valid_sparsity"], color=color, marker="o", ms=3, label=name)
    axes[0].set(xlabel="epoch (0 = initialized)", ylabel="spectral loss (validation)", yscale="log")
    axes[1].set(xlabel="epoch (0 = initialized)", ylabel="feedback-matrix sparsity (validation)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"Both loss terms per epoch, mean over trials (sparsity weight {cfg.sparsity_weight:g})")
    fig.tight_layout()
    return fig


def _spread_figure(cfg, trials):
    names = [n for n, _ in cfg.delay_sets]
    data = trials[trials["alpha"] == cfg.sparsity_weight]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for i, name in enumerate(names):
        for j, (stage, color) in enumerate((("initialized", "0.55"), ("optimized", "tab:blue"))):
            v = data[(data["set"] == name) & (data["stage"] == stage)]["modal_spread_db"]
            x = 3 * i + j
            ax.boxplot([v], positions=[x], widths=0.7, patch_artist=True,
                       boxprops=dict(facecolor=color, alpha=0.5), medianprops=dict(color="k"))
    if "N4" in names:  # the released loss test: per-trial mean +- sigma, 100 trials
        i = names.index("N4")
        for j, (mean, sigma) in enumerate(((7.57, 2.82), (4.16, 1.54))):
            ax.errorbar(3 * i + j + 0.45, mean, yerr=sigma, fmt="D", color="tab:red", ms=5, capsize=3,
                        label="released runs (mean +- sigma, 100 trials)" if j == 0 else None)
        ax.legend(fontsize=8)
    ax.set_xticks([3 * i + 0.5 for i in range(len(names))], names)
    ax.set_ylabel("modal-excitation spread [dB]")
    ax.set_title(f"Per-trial modal spread, initialized (gray) and optimized (blue), {cfg.trials} trials per set")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
