"""Colorless FDN with a scattering feedback matrix: modal spread before and after training,
next to the same protocol with a constant orthogonal matrix.

Extension: the colorless-FDN optimization (Dal Santo, Prawda, Schlecht, Valimaki, EURASIP
JASMP 2025, arXiv 2402.11216) with the feedback matrix replaced by a paraunitary scattering
matrix (Schlecht & Habets, "Scattering in feedback delay networks", IEEE/ACM TASLP 2020),
as FLAMO's scattering colorless example does: A(z) = D_K(z) U_K ... D_1(z) U_1 D_0(z)
(:class:`flamo.Paraunitary`, K = ``stages`` learnable orthogonal U_k). Its delays are our
choice: D_0 and D_K random integers in [1, min(m) / 2) (the example's pre- and post-delays),
the inner stages random integers in [1, ``inner_delay_max``], all drawn from the trial seed.
No published number is compared.

Protocol (smaller than the journal's, sized to the shared machine): N = 4 delays
[1499, 1889, 2381, 2999] (the journal's loss-test set) with per-line gains 0.9999^m_i (the
scattering stages are lossless), b, c ~ N(0, 1) / N, energy normalized to 1 on
``energy_points`` frequencies; ``points`` frequencies pi k / points split 80/20 at random
into training and validation; shuffled minibatches of ``batch`` frequencies
(:class:`experiments.colorless_fdn.FrequencyBatches`); loss (1/N) sum_i mean((|H_i| - 1)^2)
+ mean((|H| - 1)^2) on the per-line outputs (:func:`flamo.reverb.line_outputs`), no
sparsity term (the scattering matrix has no single matrix to sparsify); Adam, lr 1e-3,
x0.1 every ``lr_step_epochs``, ``epochs`` epochs, no early stopping; each trial one task
through :class:`flamo.optim.Trainer`, checkpointed every epoch in its work folder. The
``orthogonal`` arm runs the same protocol with :func:`flamo.reverb.build_fdn`'s orthogonal
matrix (same b, c and seeds), as a reference.

Measured per trial, initialized and optimized, as :mod:`experiments.colorless_fdn`: the
modal-excitation spread (std of 20 log10 |residue| over all modes; exact poles and residues
from :func:`flamo.reverb.loop_modes`, checked in the tests against
:func:`flamo.reverb.fdn_modes` of the scattering FDN unrolled into a constant-matrix FDN),
the magnitude spread (std of 20 log10 |H| on the grid of 2 ``points``), the mean normalized
echo density of the 2 s impulse response, the validation loss.

Full run, sized to the shared 2-core machine: 3 trials per arm, 15 epochs of the 76800
training frequencies of 96000 (38 steps each, 570 in all; lr x0.1 after epoch 10); the journal protocol trains up to 20 epochs of 480000 frequencies and 100 trials
(5 epochs of 48000 frequencies left the training loss still falling). A scattering trial
takes a few minutes of one core, a good part of it the two exact modal decompositions
(about 12900 poles).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import flamo
from experiments.colorless_common import JOURNAL_DELAY_SETS, magnitude_db, plot_residue_histograms
from experiments.colorless_fdn import frequency_split
from experiments.tasks import Task
from flamo.optim import Trainer
from flamo.optim.losses import ColorlessSpectralLoss
from flamo.reverb import (build_fdn, echo_density, fdn_structure, line_outputs, loop_modes,
                          modal_decomposition, normalize_energy)

DESCRIPTION = ("extension (after FLAMO's scattering colorless example; Schlecht & Habets, TASLP 2020): "
               "colorless FDN N4 with a paraunitary scattering feedback matrix vs an orthogonal one, "
               "modal spread before/after")

FEEDBACKS = ("scattering", "orthogonal")


@dataclass
class Config:
    """Hyperparameters (defaults = full run)."""

    delays: tuple = JOURNAL_DELAY_SETS[0][1]  # N4 of the journal's loss test [samples]
    feedbacks: tuple = FEEDBACKS
    trials: int = 3
    stages: int = 4  # K orthogonal matrices of the scattering matrix
    inner_delay_max: int = 64  # inner stage delays in [1, inner_delay_max] [samples]
    fs: float = 48000.0
    points: int = 96000  # frequencies pi k / points on [0, pi)
    train_fraction: float = 0.8
    batch: int = 2000
    epochs: int = 15
    lr: float = 1e-3
    lr_step_epochs: int = 10
    lr_gamma: float = 0.1
    gain_per_sample: float = 0.9999
    energy_points: int = 2000
    ir_seconds: float = 2.0
    echo_window: int = 1024
    echo_hop: int = 16

    @classmethod
    def quick(cls) -> "Config":
        """CI variant: small delays, 1 trial per arm, 1 epoch of 8000 frequencies."""
        return cls(delays=(149, 188, 238, 299), trials=1, stages=2, inner_delay_max=8, points=8000,
                   epochs=1, ir_seconds=0.25)


# ---- the system ---------------------------------------------------------------------------

def initial_fdn(p, seed, dtype):
    """The FDN of one trial, energy normalized: b, c ~ N(0, 1) / N and the feedback of
    ``p.feedback`` (a :class:`flamo.Paraunitary` with random delays, or an orthogonal
    :class:`flamo.Matrix`), all from ``seed``."""
    m = [int(v) for v in p.delays]
    n = len(m)
    gen = torch.Generator().manual_seed(int(seed))
    b = torch.randn(n, generator=gen, dtype=torch.float64) / n
    c = torch.randn(n, generator=gen, dtype=torch.float64) / n
    if p.feedback == "scattering":
        outer = torch.randint(1, min(m) // 2, (2, n), generator=gen)
        inner = torch.randint(1, p.inner_delay_max + 1, (p.stages - 1, n), generator=gen)
        stage_delays = torch.cat([outer[:1], inner, outer[1:]]).double()
        matrix = flamo.Paraunitary(stage_delays, seed=int(torch.randint(0, 2 ** 31 - 1, (1,), generator=gen)))
    else:
        matrix = "orthogonal"
    g = torch.tensor([p.gain_per_sample ** v for v in m], dtype=torch.float64)
    system = build_fdn(delays=m, matrix=matrix, line_gains=g, input_gains=b, output_gains=c,
                       seed=int(seed), dtype=torch.float64).to(dtype)
    normalize_energy(system, flamo.Grid(2 * (p.energy_points - 1), fs=p.fs, dtype=dtype), 1.0)
    return system


def modes(system):
    """Exact poles and residues of either arm's FDN: :func:`flamo.reverb.loop_modes` for the
    scattering FDN (:func:`flamo.reverb.modal_decomposition` sends an FDN-shaped system to
    the constant-matrix path, which refuses a Paraunitary feedback), the closed-form
    :func:`flamo.reverb.modal_decomposition` for the orthogonal one."""
    if isinstance(fdn_structure(system).feedback, flamo.Paraunitary):
        return loop_modes(system)
    return modal_decomposition(system)


def _echo_density(system, p) -> float:
    """Mean normalized echo density (Abel & Huang 2006) of the impulse response over
    ``p.ir_seconds``, rendered by :func:`flamo.render` (the baselines' FDN renderer reads a
    constant feedback matrix only)."""
    x = torch.zeros(int(round(p.ir_seconds * p.fs)), dtype=torch.float64)
    x[0] = 1.0
    with torch.no_grad():
        h = flamo.render(system, x, fs=p.fs).numpy()
    eta, _ = echo_density(h, p.fs, window_ms=1e3 * p.echo_window / p.fs, hop=p.echo_hop)
    return float(eta.mean())


def _measure(system, p, criterion, valid_points, all_points) -> dict:
    decomposition = modes(system)
    res_db = 20 * np.log10(np.abs(decomposition.residues))
    mag = magnitude_db(system, all_points)
    eta = _echo_density(system, p)
    with torch.no_grad():
        valid = float(criterion(line_outputs(system, valid_points)))
    return {"modal_spread_db": float(res_db.std()), "modes": int(res_db.size),
            "modal_converged": bool(decomposition.converged), "magnitude_spread_db": float(mag.std()),
            "echo_density": eta, "valid_loss": valid, "residues_db": res_db}


# ---- tasks --------------------------------------------------------------------------------

_SELECTION = ("feedbacks", "trials")


def tasks(cfg: Config) -> list[Task]:
    """One task per (feedback, trial); trial t of both arms shares its seed (paired)."""
    for fb in cfg.feedbacks:
        if fb not in FEEDBACKS:
            raise ValueError(f"colorless_scattering: feedbacks must be among {FEEDBACKS}, got {fb!r}")
    if cfg.stages < 1 or cfg.inner_delay_max < 1:
        raise ValueError(f"colorless_scattering: stages and inner_delay_max must be >= 1, got "
                         f"{cfg.stages} and {cfg.inner_delay_max}")
    protocol = {k: v for k, v in asdict(cfg).items() if k not in _SELECTION}
    return [Task(f"{fb}/trial{t}", {"feedback": fb, "trial": t, **protocol})
            for fb in cfg.feedbacks for t in range(cfg.trials)]


def run_task(params: dict, tctx) -> dict:
    """One trial: measure, train on the colorless loss, measure again."""
    p = SimpleNamespace(**params)
    dtype, device = tctx.dtype, tctx.device
    seed = 1000 * tctx.run_seed + p.trial
    system = initial_fdn(p, seed, dtype).to(device)
    batches, valid_points, all_points = frequency_split(p.points, p.train_fraction, p.batch, p.fs,
                                                        seed, dtype, device)
    criterion = ColorlessSpectralLoss(with_total=True)
    init = _measure(system, p, criterion, valid_points, all_points)

    folder = tctx.work_dir
    holder = {}
    trainer = Trainer(
        system, {"spectral": (criterion, 1.0)}, data=(torch.zeros(()), torch.zeros(())),
        forward=lambda model, _: line_outputs(model, batches.points(holder["trainer"].step)),
        lr=p.lr, scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, p.lr_step_epochs, p.lr_gamma),
        steps_per_epoch=batches.steps_per_epoch, seed=seed, progress=False, log_dir=folder,
        checkpoint_dir=folder, device=device)
    holder["trainer"] = trainer
    trainer.resume()  # from the task's last checkpoint, if a killed run left one
    trainer.fit(epochs=p.epochs)
    final = _measure(system, p, criterion, valid_points, all_points)
    epochs = pd.read_csv(folder / "epochs.csv")
    tctx.log(f"modal spread {init['modal_spread_db']:.2f} -> {final['modal_spread_db']:.2f} dB, "
             f"magnitude spread {init['magnitude_spread_db']:.2f} -> {final['magnitude_spread_db']:.2f} dB")
    return {"feedback": p.feedback, "trial": p.trial, "seed": seed, "init": init, "final": final,
            "train_loss": epochs["spectral"].to_numpy()}


# ---- outputs ------------------------------------------------------------------------------

_MEASURES = ("modal_spread_db", "magnitude_spread_db", "echo_density", "valid_loss")


def reduce(cfg: Config, results: dict, ctx) -> None:
    """Tables, figures and headline from every trial."""
    results = list(results.values())
    rows, loss_rows = [], []
    for r in results:
        for stage, label in (("init", "initialized"), ("final", "optimized")):
            m = r[stage]
            rows.append({"feedback": r["feedback"], "trial": r["trial"], "seed": r["seed"], "stage": label,
                         **{k: m[k] for k in _MEASURES}, "modes": m["modes"],
                         "modal_converged": m["modal_converged"]})
        loss_rows += [{"feedback": r["feedback"], "trial": r["trial"], "epoch": i, "train_spectral": float(v)}
                      for i, v in enumerate(r["train_loss"])]
    ctx.write_csv(pd.DataFrame(rows), "trials.csv")
    ctx.write_csv(pd.DataFrame(loss_rows), "epochs.csv")
    head, summary = {}, []
    for fb in cfg.feedbacks:
        rs = [r for r in results if r["feedback"] == fb]
        row = {"feedback": fb, "trials": len(rs),
               "modal_converged": all(r[s]["modal_converged"] for r in rs for s in ("init", "final"))}
        for k in _MEASURES:
            for stage, label in (("init", "init"), ("final", "optim")):
                row[f"{k.removesuffix('_db')}_{label}" + ("_db" if k.endswith("_db") else "")] = \
                    float(np.mean([r[stage][k] for r in rs]))
        row["modal_spread_reduction_db"] = float(np.mean([r["init"]["modal_spread_db"] - r["final"]["modal_spread_db"]
                                                          for r in rs]))
        summary.append(row)
        head.update({f"{fb}.{k}": v for k, v in row.items() if k != "feedback"})
    ctx.write_csv(pd.DataFrame(summary), "summary.csv")
    ctx.headline(**head)
    ctx.save_figure(_figure(cfg, results), "modal_spread.png")


def _figure(cfg, results):
    fig, axes = plt.subplots(1, len(cfg.feedbacks) + 1, figsize=(5 * (len(cfg.feedbacks) + 1), 4))
    for ax, fb in zip(axes[:-1], cfg.feedbacks):
        rs = [r for r in results if r["feedback"] == fb]
        centred = {s: np.concatenate([r[s]["residues_db"] - r[s]["residues_db"].mean() for r in rs])
                   for s in ("init", "final")}
        plot_residue_histograms(ax, centred["init"], centred["final"])
        ax.set_title(f"{fb}: residue level - its mean, {len(rs)} trials")
        ax.legend(fontsize=7, loc="upper left")
    ax = axes[-1]
    for i, fb in enumerate(cfg.feedbacks):
        for j, (stage, color) in enumerate((("init", "0.55"), ("final", "tab:blue"))):
            v = [r[stage]["modal_spread_db"] for r in results if r["feedback"] == fb]
            ax.boxplot([v], positions=[3 * i + j], widths=0.7, patch_artist=True,
                       boxprops=dict(facecolor=color, alpha=0.5), medianprops=dict(color="k"))
    ax.set_xticks([3 * i + 0.5 for i in range(len(cfg.feedbacks))], list(cfg.feedbacks))
    ax.set_ylabel("modal-excitation spread [dB]")
    ax.set_title("initialized (gray) vs optimized (blue)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
