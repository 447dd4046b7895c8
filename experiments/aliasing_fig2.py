"""Reproduction of FLAMO (Dal Santo et al., ICASSP 2025) Fig. 2: the impulse response of a
T60 = 9 s FDN with and without time aliasing; extension: its error analysis.

The poster's figure (``fig2.png``): an FDN (:func:`experiments.fdn_common.homogeneous_fdn`:
N = 6, delays 887 ... 2053 samples, b = c = 1, orthogonal A from seed 0, per-line gains
g_i = 10^(-3 m_i / (fs T60))) evaluated by frequency sampling
at nfft = 96000, fs = 48 kHz, without anti-aliasing (aliased) and with alias_decay_db = 60
(mitigated): the normalized linear IR over 0 .. 1.5 s and the envelope gamma^n (falling
30 dB/s) dashed. In numbers: before the first echo (n < 887) the true IR is zero, so the
aliased IR holds only the wrapped tail; the ratio of its RMS there to the mitigated IR's is
the suppression of the wrap (claims row ``flamo.fig2.pre_echo_suppression``).

Extension (not in the poster): at nfft = ``analysis_nfft`` the same FDN is evaluated with
alias_decay_db = 0, a fixed setting and the one recommended by
:func:`flamo.recommend_alias_decay_db`, in float32 and float64, against the float64
time-domain block baseline over the same window (``errors.csv``,
``extension_error_analysis.png``), and the float32 precision loss is located stage by stage
(``precision_stages.csv``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import flamo
from experiments.fdn_common import (DTYPE_NAMES, edc_db, ground_truth, homogeneous_fdn,
                                    relative_l2_db)
from flamo.reverb import fdn_structure

DESCRIPTION = ("reproduction of FLAMO (ICASSP 2025) Fig. 2: T60 = 9 s FDN IR aliased vs mitigated "
               "(nfft 96000, 60 dB); extension: errors against the time-domain ground truth")


@dataclass
class Config:
    """Hyperparameters of the Fig. 2 reproduction."""

    delays: tuple[int, ...] = (887, 911, 941, 1699, 1951, 2053)  # delay lengths [samples]
    t60: float = 9.0  # reverberation time [s]
    fs: float = 48000.0  # sample rate [Hz]
    nfft: int = 96000  # Fig. 2: FFT length = IR length [samples] (2 s)
    alias_decay_db: float = 60.0  # Fig. 2: setting of the mitigated IR [dB]
    fig2_seconds: float = 1.5  # Fig. 2: time shown [s]
    analysis_nfft: int = 2**15  # extension: FFT length of the error analysis [samples]
    fixed_alias_decay_db: tuple[float, ...] = (0.0, 40.0)  # settings besides the recommended [dB]
    matrix_seed: int = 0  # seed of the orthogonal feedback matrix
    stage_alias_decay_db: tuple[float, ...] = (40.0, 60.0, 80.0, 100.0, 120.0)  # precision stages [dB]

    @classmethod
    def quick(cls) -> "Config":
        """Same system (it is already small: about a second)."""
        return cls()


def _settings(cfg):
    """(label, alias_decay_db, dtype) for every evaluation."""
    out = []
    for dtype in (torch.float32, torch.float64):
        dbs = list(cfg.fixed_alias_decay_db)
        rec = flamo.recommend_alias_decay_db(cfg.nfft, cfg.t60, cfg.fs, dtype)
        for db in dbs:
            out.append((f"{db:g} dB", float(db), dtype, False))
        out.append((f"recommended {rec:.1f} dB", rec, dtype, True))
    return out


def _fig2(cfg, fdn, ctx):
    """The poster's figure: aliased and mitigated IRs at nfft = cfg.nfft, and the pre-echo
    suppression in both dtypes (float64 is the headline: the tolerance assumes exact
    arithmetic)."""
    first = min(cfg.delays)  # h[n] = 0 for n < the shortest delay
    rows, shown = [], {}
    for dtype in (torch.float32, torch.float64):
        irs = {}
        for label, db in (("aliased", 0.0), ("mitigated", cfg.alias_decay_db)):
            grid = flamo.Grid(cfg.nfft, cfg.fs, db, dtype=dtype, device=ctx.device)
            with torch.no_grad():
                irs[label] = fdn.impulse_response(grid)[:, 0, 0].cpu().double().numpy()
        rms = {k: float(np.sqrt(np.mean(v[:first] ** 2))) for k, v in irs.items()}
        rows.append({"dtype": DTYPE_NAMES[dtype], "nfft": cfg.nfft, "alias_decay_db": cfg.alias_decay_db,
                     "pre_echo_samples": first, "aliased_pre_echo_rms": rms["aliased"],
                     "mitigated_pre_echo_rms": rms["mitigated"],
                     "pre_echo_suppression_db": 20 * np.log10(rms["aliased"] / rms["mitigated"]),
                     "peak_abs": float(np.abs(irs["mitigated"]).max())})
        shown[DTYPE_NAMES[dtype]] = irs
    table = pd.DataFrame(rows)
    ctx.write_csv(table, "fig2_pre_echo.csv")
    gamma = flamo.Grid(cfg.nfft, cfg.fs, cfg.alias_decay_db).gamma
    ctx.save_figure(_fig2_figure(cfg, shown["float64"], gamma), "fig2.png")
    f64 = table[table.dtype == "float64"].iloc[0]
    return {"pre_echo_suppression_db": float(f64.pre_echo_suppression_db),
            "pre_echo_suppression_float32_db": float(table[table.dtype == "float32"].iloc[0].pre_echo_suppression_db),
            "envelope_db_per_s": float(-20 * np.log10(gamma) * cfg.fs)}


def _fig2_figure(cfg, irs, gamma):
    t = np.arange(cfg.nfft) / cfg.fs
    shown = t <= cfg.fig2_seconds
    fig, axes = plt.subplots(2, 1, figsize=(10, 6.5))
    for ax, end in zip(axes, (cfg.fig2_seconds, 0.05)):
        sel = t <= end
        # the mitigated IR on top: where the aliased one shows, it differs (the wrapped tail)
        for key in ("aliased", "mitigated"):
            color = "k" if key == "aliased" else "tab:purple"
            label = ("aliased (alias_decay_db = 0)" if key == "aliased"
                     else f"mitigated (alias_decay_db = {cfg.alias_decay_db:g})")
            h = irs[key]
            ax.plot(t[sel], h[sel] / np.abs(h[shown]).max(), color=color, lw=0.6, label=label)
        ax.plot(t[sel], gamma ** np.arange(sel.sum()), "--", color="tab:orange", lw=1.5,
                label=f"$\\gamma^n$ ({-20 * np.log10(gamma) * cfg.fs:.0f} dB/s)")
        ax.set(xlim=(0, end), xlabel="time [s]", ylabel="normalized amplitude")
        ax.grid(alpha=0.3)
    axes[0].set_title(f"FDN N = {len(cfg.delays)}, T60 = {cfg.t60:g} s, nfft = {cfg.nfft} "
                      f"({cfg.nfft / cfg.fs:g} s) at {cfg.fs / 1000:g} kHz")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[1].axvline(min(cfg.delays) / cfg.fs, color="0.5", ls=":")
    axes[1].set_ylim(-0.08, 0.08)
    axes[1].set_title(f"first 50 ms, amplitude zoomed (echoes clipped): before the first echo "
                      f"({min(cfg.delays)} samples) only the aliased IR is non-zero (the wrapped tail)",
                      fontsize=10)
    fig.tight_layout()
    return fig


def run(cfg: Config, ctx) -> None:
    """Fig. 2 and the extension's IRs, errors and figure."""
    fdn = homogeneous_fdn(cfg.delays, cfg.t60, seed=cfg.matrix_seed)
    fig2 = _fig2(cfg, fdn, ctx)
    cfg_ext = dataclasses.replace(cfg, nfft=cfg.analysis_nfft)
    _extension(cfg_ext, fdn, ctx, fig2)


def _extension(cfg, fdn, ctx, fig2) -> None:
    """Errors of the frequency-sampled IR against the time-domain ground truth (not in the
    poster); ``cfg.nfft`` is the analysis length here."""
    truth = ground_truth(fdn, cfg.nfft, cfg.fs)
    rows, irs = [], {}
    settings = _settings(cfg)
    for label, db, dtype, recommended in ctx.progress(settings, desc="settings", total=len(settings)):
        grid = flamo.Grid(cfg.nfft, cfg.fs, db, dtype=dtype, device=ctx.device)
        with torch.no_grad():
            h = fdn.impulse_response(grid)[:, 0, 0].cpu().double().numpy()
        err_db = relative_l2_db(h, truth)
        rho = flamo.aliasing.decay_rate(cfg.t60, cfg.fs)
        rows.append({"setting": label, "alias_decay_db": db, "dtype": DTYPE_NAMES[dtype],
                     "recommended": recommended, "nfft": cfg.nfft, "t60_s": cfg.t60,
                     "rel_l2_error_db": err_db,
                     "predicted_alias_db": float(flamo.aliasing.aliasing_error_db(cfg.nfft, cfg.t60, cfg.fs, db)),
                     "predicted_total_db": float(20 * np.log10(flamo.aliasing.predicted_error(cfg.nfft, cfg.t60, cfg.fs, db, dtype))),
                     "decay_per_wrap_db": float(-20 * cfg.nfft * np.log10(rho))})
        irs[(label, DTYPE_NAMES[dtype])] = h
        ctx.log(f"{DTYPE_NAMES[dtype]} {label}: {err_db:.1f} dB")
    errors = pd.DataFrame(rows)
    ctx.write_csv(errors, "errors.csv")
    stages = _precision_stages(cfg, fdn, truth)
    ctx.write_csv(stages, "precision_stages.csv")
    ctx.save_figure(_figure(cfg, truth, irs, errors), "extension_error_analysis.png")

    f32 = errors[errors.dtype == "float32"]
    f64 = errors[errors.dtype == "float64"]
    ctx.headline(**fig2, aliased_error_db=float(errors[errors.alias_decay_db == 0].rel_l2_error_db.max()),
                 float32_best_error_db=float(f32.rel_l2_error_db.min()),
                 float32_best_alias_decay_db=float(f32.loc[f32.rel_l2_error_db.idxmin(), "alias_decay_db"]),
                 float64_best_error_db=float(f64.rel_l2_error_db.min()),
                 float64_best_alias_decay_db=float(f64.loc[f64.rel_l2_error_db.idxmin(), "alias_decay_db"]))


def _naive_fdn_response(fdn, grid):
    """c^T (I - D A)^-1 D b with z^-m = gamma^m exp(-1j omega m) formed in the grid's dtype
    (omega m rounded in float32 for a float32 grid), as a naive implementation would."""
    parts = fdn_structure(fdn, fs=grid.fs)
    rdt, cdt = grid.dtype, grid.complex_dtype
    omega = grid.omega.to(rdt)[:, None]
    m = parts.m.to(rdt)[None, :]
    gamma = torch.tensor(grid.gamma, dtype=rdt)
    d = torch.polar(gamma**m * parts.gains.to(rdt), -omega * m).to(cdt)  # (M, N)
    A, b, c = parts.A.to(cdt), parts.b[:, 0].to(cdt), parts.c[0].to(cdt)
    loop = torch.eye(m.shape[-1], dtype=cdt) - d[:, :, None] * A
    x = torch.linalg.solve(loop, (d * b)[:, :, None])[..., 0]
    return x @ c


def _precision_stages(cfg, fdn, truth):
    """Where float32 loses precision: each stage in float32, the rest in float64."""
    rows = []
    for db in cfg.stage_alias_decay_db:
        g64 = flamo.Grid(cfg.nfft, cfg.fs, db, dtype=torch.float64)
        g32 = g64.replace(dtype=torch.float32)
        with torch.no_grad():
            h64, h32 = fdn.response(g64)[:, 0, 0], fdn.response(g32)[:, 0, 0]
        irfft = flamo.signal.irfft
        variants = {
            "float64 everywhere": irfft(h64, g64),
            "float64 response stored as complex64, rest float64": irfft(h64.to(torch.complex64).to(torch.complex128), g64),
            "float64 response (loop solve), float32 irfft + envelope": irfft(h64.to(torch.complex64), g32),
            "float32 response (loop solve), float64 irfft + envelope (mixed)": irfft(h32.to(torch.complex128), g64),
            "float32 everywhere (library)": irfft(h32, g32),
            "float32, naive delay phase omega*m in float32": irfft(_naive_fdn_response(fdn, g32), g32),
            "float64, naive delay phase omega*m in float64": irfft(_naive_fdn_response(fdn, g64), g64),
        }
        for name, h in variants.items():
            rows.append({"alias_decay_db": db, "nfft": cfg.nfft, "stages": name,
                         "rel_l2_error_db": relative_l2_db(h.double().numpy(), truth)})
    return pd.DataFrame(rows)


def _smoothed_db(x, win=256):
    """RMS over ``win`` samples in dB (an envelope that is readable over 2^15 samples)."""
    rms = np.sqrt(np.convolve(np.asarray(x) ** 2, np.ones(win) / win, mode="same"))
    return 20 * np.log10(rms + 1e-300)


def _figure(cfg, truth, irs, errors):
    t = np.arange(cfg.nfft) / cfg.fs
    fig = plt.figure(figsize=(12, 11))
    grid = fig.add_gridspec(3, 2)
    ax_env, ax_zoom = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    ax_edc, ax_dedc = fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])
    ax_err = fig.add_subplot(grid[2, :])
    colors = {"0 dB": "tab:red", "40 dB": "tab:orange"}
    shown = [k for k in irs if k[1] == "float32"]
    color_of = lambda label: colors.get(label, "tab:blue")  # noqa: E731
    fig.suptitle(f"Extension of FLAMO Fig. 2: FDN N = {len(cfg.delays)}, T60 = {cfg.t60:g} s, "
                 f"nfft = {cfg.nfft} ({cfg.nfft / cfg.fs:.2f} s), fs = {cfg.fs:g} Hz: frequency "
                 "sampling (float32) vs time-domain ground truth")

    ax_env.plot(t, _smoothed_db(truth), color="k", lw=2, label="ground truth (time domain, float64)")
    for key in shown:
        ax_env.plot(t, _smoothed_db(irs[key]), lw=1, ls="--", color=color_of(key[0]), label=f"{key[0]}")
    ax_env.set(xlabel="time [s]", ylabel="IR level, RMS over 256 samples [dB]",
               ylim=(-70, 5), title="Impulse responses (smoothed level; silent before the first echo)")
    ax_env.legend(fontsize=8)
    ax_env.grid(alpha=0.3)

    n_zoom = int(0.06 * cfg.fs)
    ax_zoom.plot(t[:n_zoom] * 1e3, truth[:n_zoom], color="k", lw=1.5, label="ground truth")
    for key in shown:
        ax_zoom.plot(t[:n_zoom] * 1e3, irs[key][:n_zoom], lw=0.8, color=color_of(key[0]), alpha=0.8,
                     label=key[0])
    ax_zoom.set(xlabel="time [ms]", ylabel="h[n] [linear]",
                title="First 60 ms: the aliased IR is not silent before the first echo")
    ax_zoom.legend(fontsize=8)
    ax_zoom.grid(alpha=0.3)

    edc_truth = edc_db(truth)
    ax_edc.plot(t, edc_truth, color="k", lw=2.5, label="ground truth")
    for key in shown:
        ax_edc.plot(t, edc_db(irs[key]), lw=1.2, ls="--", color=color_of(key[0]), label=key[0])
    ax_edc.set(xlabel="time [s]", ylabel="energy decay curve [dB]", ylim=(-40, 1),
               title="Schroeder EDC over the window")
    ax_edc.legend(fontsize=8)
    ax_edc.grid(alpha=0.3)

    valid = edc_truth > -40
    for key in shown:
        ax_dedc.plot(t[valid], edc_db(irs[key])[valid] - edc_truth[valid], lw=1.2,
                     color=color_of(key[0]), label=key[0])
    ax_dedc.set_yscale("symlog", linthresh=1e-4)
    ax_dedc.set(xlabel="time [s]", ylabel="EDC - EDC of ground truth [dB]",
                title="EDC deviation (symmetric log scale)")
    ax_dedc.legend(fontsize=8)
    ax_dedc.grid(alpha=0.3)

    for (label, dt), h in irs.items():
        if label == "0 dB":
            continue
        ax_err.plot(t, _smoothed_db(h - truth), lw=1, ls="-" if dt == "float32" else ":",
                    color=color_of(label), label=f"{label} ({dt})")
    ax_err.plot(t, _smoothed_db(truth), color="k", lw=1, label="ground truth level")
    ax_err.set(xlabel="time [s]", ylabel="error, RMS over 256 samples [dB]",
               ylim=(-220, 5),
               title="Error vs time: aliasing (flat) and rounding noise amplified by gamma^-n (rising)")
    ax_err.legend(fontsize=8, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 0.22))
    ax_err.grid(alpha=0.3)
    fig.tight_layout()
    return fig
