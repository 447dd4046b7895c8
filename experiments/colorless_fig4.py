"""Reproduction of FLAMO (Dal Santo et al., ICASSP 2025) Fig. 4: an N = 6 FDN optimized for a
smoother response, shown as spectrograms before and after; and the same FDN in the form of
the journal's delay-set figure (Dal Santo et al., EURASIP JASMP 2025, Fig. 6).

Training (the FLAMO example's settings): delays [887, 911, 941, 1699, 1951, 2053], a
lossless loop (no line gains), orthogonal A, random b and c (:func:`flamo.reverb.build_fdn`),
evaluated on the grid nfft = 96000 at 48 kHz with alias_decay_db = 30 in float64; loss
mean((|H| - 1)^2) on the output plus 0.2 x the feedback-matrix sparsity; Adam lr 1e-3,
2000 full-grid steps (:class:`flamo.optim.Trainer`, checkpointed every 200 steps in the
work folder of its task, :mod:`experiments.tasks`).

Rendering (Fig. 4's form): the initialized and the optimized b, A, c with frequency-dependent
decay, a :class:`flamo.GEQAttenuation` per line from the octave-band T60 of a measured room
(``data/rirs/``, T20 fit of each band's Schroeder curve, cut where the decay meets the
noise floor; bands less than 35 dB above it take the nearest fitted band's value), 2 s impulse
responses by frequency sampling, spectrograms 0-2 s on a log frequency axis 50 Hz-20 kHz, -60..0 dB,
and WAV files of both (so the colouration can be heard).

The journal's form: magnitude responses over 10-12.5 kHz and histograms of residue level
minus its mean (2 dB bins), initialized vs optimized, both evaluated with the journal's
per-sample gain 0.9999 (the trained loop itself is lossless). In numbers (claims rows): the
spread of 20 log10 |H| on the training grid and the modal-excitation spread, before and
after.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.signal
import soundfile as sf
import torch

import flamo
from experiments import io
from experiments.colorless_common import (magnitude_db, plot_band_responses, plot_residue_histograms,
                                          residue_levels_db)
from flamo.functional import octave_bands
from flamo.optim import Trainer, noise_floor_cut, octave_filterbank, schroeder_edc, t60_from_edc
from flamo.optim.datasets import onset_index
from flamo.optim.losses import FeedbackSparsity, MagnitudeMSE
from flamo.reverb import build_fdn, fdn_structure
from experiments.tasks import Task

DESCRIPTION = ("reproduction of FLAMO (ICASSP 2025) Fig. 4: N = 6 FDN before/after the colorless "
               "optimization as spectrograms with a measured room's decay, WAVs; journal Fig. 6 form")

RIR_DIR = Path(__file__).resolve().parent.parent / "data" / "rirs"  # the repository's measured RIRs


@dataclass
class Config:
    """Hyperparameters (defaults = the FLAMO example's settings)."""

    delays: tuple = (887, 911, 941, 1699, 1951, 2053)  # [samples]
    fs: float = 48000.0
    nfft: int = 96000  # training grid
    alias_decay_db: float = 30.0
    steps: int = 2000  # full-grid Adam steps
    steps_per_epoch: int = 200  # checkpoint interval
    lr: float = 1e-3
    sparsity_weight: float = 0.2
    room: str = "arni_35_3541_4_2.wav"  # measured RIR giving the octave-band T60
    t60_range_db: tuple = (-5.0, -25.0)  # T20 fit of each band's Schroeder curve
    # ISO 3382-1: a T20 needs the band's noise floor at least 35 dB below its peak level
    min_dynamic_range_db: float = 35.0
    render_seconds: float = 2.0
    render_alias_decay_db: float = 60.0  # rendering grid (a 2 s window of the room's decay)
    analysis_gain_per_sample: float = 0.9999  # journal form: loop gain of the analysed FDN
    analysis_nfft: int = 960000  # journal form: magnitude-response grid
    band_hz: tuple = (10000.0, 12500.0)
    spectrogram_window: int = 2048

    @classmethod
    def quick(cls) -> "Config":
        """CI variant: a coarse grid and 20 steps."""
        return cls(nfft=9600, steps=20, steps_per_epoch=10, render_seconds=0.5, analysis_nfft=96000)


def room_t60(cfg) -> pd.DataFrame:
    """Octave-band T60 [s] of the measured room (centres of :func:`flamo.functional.octave_bands`).

    Each band's Schroeder curve is integrated up to where its decay meets the noise floor
    (:func:`flamo.optim.noise_floor_cut`, 50 ms windows, 5 dB margin; integrated to the end,
    seconds of noise read as decay: 62.5 Hz of the default room gave 11.6 s against 0.5-0.8 s
    in the other bands). A band is
    fitted only when the curve gives a T60 and its peak stands ``cfg.min_dynamic_range_db``
    above its noise floor (ISO 3382-1's condition for a T20); the other bands take the nearest
    fitted band's value. Columns: centre_hz, t60_s, dynamic_range_db, cut_s, fitted."""
    h, fs = sf.read(RIR_DIR / cfg.room, dtype="float64", always_2d=True)
    h = h[:, 0]
    if int(fs) != int(cfg.fs):
        g = math.gcd(int(fs), int(cfg.fs))
        h = scipy.signal.resample_poly(h, int(cfg.fs) // g, int(fs) // g)
    h = h[onset_index(h):]
    centres = np.array(octave_bands())
    bands = octave_filterbank(torch.as_tensor(h), cfg.fs, tuple(centres))
    cut, dynamic_range = (v.numpy() for v in noise_floor_cut(bands, cfg.fs, window_s=0.05, margin_db=5.0))
    keep = torch.arange(bands.shape[0])[:, None] < torch.as_tensor(cut)[None, :]
    edc = schroeder_edc(bands * keep, db=True)
    t60 = t60_from_edc(edc, cfg.fs, *cfg.t60_range_db).numpy()
    ok = np.isfinite(t60) & (t60 > 0) & (dynamic_range >= cfg.min_dynamic_range_db)
    if not ok.any():
        raise ValueError(f"colorless_fig4: no octave band of {cfg.room} gives a T60 "
                         f"(dynamic ranges {np.round(dynamic_range, 1).tolist()} dB, "
                         f"needed {cfg.min_dynamic_range_db} dB)")
    filled = np.interp(np.arange(t60.size), np.flatnonzero(ok), t60[ok])
    return pd.DataFrame({"centre_hz": centres, "t60_s": filled, "dynamic_range_db": dynamic_range,
                         "cut_s": cut / cfg.fs, "fitted": ok})


def _fdn(cfg, A, b, c, **kwargs):
    return build_fdn(delays=list(cfg.delays), matrix="orthogonal", matrix_init=A, input_gains=b,
                     output_gains=c, learnable_matrix=False, learnable_gains=False,
                     dtype=torch.float64, **kwargs)


def _parameters(system):
    s = fdn_structure(system)
    with torch.no_grad():
        return tuple(v.detach().double().cpu().clone() for v in (s.A, s.b[:, 0], s.c[0]))


def _render(cfg, params, t60):
    system = _fdn(cfg, *params, attenuation=lambda c: flamo.GEQAttenuation(
        c.delays, t60.tolist(), centres="octave", learnable=False))
    n = int(round(cfg.render_seconds * cfg.fs))
    grid = flamo.Grid(n, cfg.fs, cfg.render_alias_decay_db, dtype=torch.float64)
    with torch.no_grad():
        return system.impulse_response(grid)[:, 0, 0].numpy()


def _analysis(cfg, params):
    g = [cfg.analysis_gain_per_sample ** m for m in cfg.delays]
    system = _fdn(cfg, *params, line_gains=g)
    res_db, converged = residue_levels_db(system)
    grid = flamo.Grid(cfg.analysis_nfft, cfg.fs, dtype=torch.float64)
    freqs = grid.freqs.numpy()
    band = (freqs >= cfg.band_hz[0]) & (freqs <= cfg.band_hz[1])
    return {"residues_db": res_db, "converged": converged, "freqs": freqs[band],
            "band_db": magnitude_db(system, grid)[band]}


def _write_wav(ctx, h, name, fs):
    path = io.atomic_write(ctx.path(name), lambda tmp: sf.write(tmp, h / np.abs(h).max(), int(fs),
                                                                 subtype="FLOAT", format="WAV"))
    ctx.record(path)


def tasks(cfg: Config) -> list[Task]:
    """One task: the training (checkpointed in its work folder), with every setting."""
    return [Task("train", {"settings": asdict(cfg)})]


def run_task(params: dict, tctx) -> dict:
    """Train the FDN; its parameters, magnitude responses and losses before and after."""
    cfg = SimpleNamespace(**params["settings"])
    grid = flamo.Grid(cfg.nfft, cfg.fs, cfg.alias_decay_db, dtype=torch.float64, device=tctx.device)
    system = build_fdn(delays=list(cfg.delays), matrix="orthogonal", seed=tctx.run_seed,
                       dtype=torch.float64).to(tctx.device)
    feedback = fdn_structure(system).feedback
    criteria = {"mse": (MagnitudeMSE(), 1.0), "sparsity": (FeedbackSparsity(feedback), cfg.sparsity_weight)}
    target = torch.ones(grid.M, dtype=torch.float64, device=tctx.device)
    forward = lambda model, _: model.response(grid)[:, 0, 0]  # noqa: E731

    def state():
        with torch.no_grad():
            h = forward(system, None)
            return {"params": [p.numpy() for p in _parameters(system)],
                    "magnitude_db": (20 * torch.log10(h.abs())).cpu().numpy(),
                    "loss": {k: float(fn(h, target)) for k, (fn, _) in criteria.items()}}

    init = state()
    folder = tctx.work_dir
    trainer = Trainer(system, criteria, data=(torch.zeros(()), target), forward=forward, lr=cfg.lr,
                      steps_per_epoch=cfg.steps_per_epoch, seed=tctx.run_seed, progress=False,
                      log_dir=folder, checkpoint_dir=folder, device=tctx.device)
    trainer.resume()  # from the task's last checkpoint, if a killed run left one
    start = time.perf_counter()
    trainer.fit(max_steps=cfg.steps)
    train_s = time.perf_counter() - start
    return {"init": init, "optim": state(), "steps": trainer.step, "train_s": train_s,
            "training": pd.read_csv(folder / "epochs.csv").to_dict("list")}


def reduce(cfg: Config, results: dict, ctx) -> None:
    """Render before/after, write spectrograms, WAVs, the journal form and the headline."""
    r = results["train"]
    init_params = tuple(torch.as_tensor(p) for p in r["init"]["params"])
    optim_params = tuple(torch.as_tensor(p) for p in r["optim"]["params"])
    mag_init, mag_optim = r["init"]["magnitude_db"], r["optim"]["magnitude_db"]
    loss_init, loss_optim = r["init"]["loss"], r["optim"]["loss"]
    ctx.write_csv(pd.DataFrame(r["training"]), "training.csv")

    room = room_t60(cfg)
    ctx.write_csv(room, "room_t60.csv")
    t60 = room["t60_s"].to_numpy()
    irs = {stage: _render(cfg, p, t60) for stage, p in (("initialized", init_params), ("optimized", optim_params))}
    for stage, h in irs.items():
        _write_wav(ctx, h, f"ir_{stage}.wav", cfg.fs)
    ctx.save_figure(_spectrograms(cfg, irs), "spectrograms.png")
    rendered = {}
    for stage, h in irs.items():
        spectrum = np.abs(np.fft.rfft(h))
        f = np.fft.rfftfreq(h.size, 1 / cfg.fs)
        sel = (f >= 50) & (f <= 20000)
        rendered[stage] = float((20 * np.log10(spectrum[sel] + 1e-300)).std())

    journal = {stage: _analysis(cfg, p) for stage, p in (("initialized", init_params), ("optimized", optim_params))}
    ctx.save_figure(_journal_form(cfg, journal), "journal_form.png")
    rows = []
    for stage in journal:
        rows.append({"stage": stage, "magnitude_spread_db": float((mag_init if stage == "initialized" else mag_optim).std()),
                     "rendered_magnitude_spread_db": rendered[stage],
                     "modal_spread_db": float(journal[stage]["residues_db"].std()),
                     "modal_converged": journal[stage]["converged"],
                     **{f"{k}_loss": v for k, v in (loss_init if stage == "initialized" else loss_optim).items()}})
    table = pd.DataFrame(rows)
    ctx.write_csv(table, "before_after.csv")
    ini, opt = table.iloc[0], table.iloc[1]
    ctx.headline(magnitude_spread_init_db=float(ini.magnitude_spread_db),
                 magnitude_spread_optim_db=float(opt.magnitude_spread_db),
                 magnitude_spread_reduction_db=float(ini.magnitude_spread_db - opt.magnitude_spread_db),
                 modal_spread_init_db=float(ini.modal_spread_db), modal_spread_optim_db=float(opt.modal_spread_db),
                 modal_spread_reduction_db=float(ini.modal_spread_db - opt.modal_spread_db),
                 rendered_magnitude_spread_init_db=float(ini.rendered_magnitude_spread_db),
                 rendered_magnitude_spread_optim_db=float(opt.rendered_magnitude_spread_db),
                 mse_init=loss_init["mse"], mse_optim=loss_optim["mse"], steps=r["steps"],
                 train_s=r["train_s"])


def _spectrograms(cfg, irs):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    peak = max(np.abs(h).max() for h in irs.values())
    for ax, (stage, h) in zip(axes, irs.items()):
        f, t, s = scipy.signal.stft(h / peak, fs=cfg.fs, nperseg=cfg.spectrogram_window,
                                    noverlap=3 * cfg.spectrogram_window // 4)
        level = 20 * np.log10(np.abs(s) + 1e-12)
        level -= max(20 * np.log10(np.abs(x) + 1e-12).max() for x in
                     (scipy.signal.stft(g / peak, fs=cfg.fs, nperseg=cfg.spectrogram_window,
                                        noverlap=3 * cfg.spectrogram_window // 4)[2] for g in irs.values()))
        sel = (f >= 50) & (f <= 20000)
        mesh = ax.pcolormesh(t, f[sel], level[sel], vmin=-60, vmax=0, shading="auto", cmap="magma")
        ax.set_yscale("log")
        ax.set(xlim=(0, cfg.render_seconds), ylim=(50, 20000), xlabel="time [s]", title=stage)
    axes[0].set_ylabel("frequency [Hz]")
    fig.colorbar(mesh, ax=axes, label="level [dB]")
    fig.suptitle(f"FDN N = {len(cfg.delays)}, {cfg.steps} steps, with the octave-band decay of {cfg.room}")
    return fig


def _journal_form(cfg, journal):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    plot_band_responses(axes[0], journal["initialized"]["freqs"], journal["initialized"]["band_db"],
                        journal["optimized"]["band_db"], cfg.band_hz)
    axes[0].set(xlabel="frequency [Hz]", ylabel="|H| [dB]",
                title=f"magnitude response (per-sample gain {cfg.analysis_gain_per_sample:g})")
    axes[0].legend(fontsize=8)
    before, after = (journal[s]["residues_db"] - journal[s]["residues_db"].mean() for s in ("initialized", "optimized"))
    plot_residue_histograms(axes[1], before, after)
    axes[1].legend(fontsize=8)
    axes[1].set_title("residue level - its mean, 2 dB bins")
    fig.suptitle("FLAMO Fig. 4 FDN in the form of the journal's Fig. 6")
    fig.tight_layout()
    return fig
