"""Helpers shared by the colorless-FDN experiments (not an experiment itself).

Measurements of one FDN (modal-excitation spread, magnitude spread, echo density), the
resumable store of finished trials, and the journal-form figure panels (magnitude responses
over a band, histograms of residue levels).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

import flamo
from baselines import render
from experiments import io
from flamo.reverb import echo_density, modal_decomposition, normalize_energy, published_colorless_fdn

__all__ = ["JOURNAL_DELAY_SETS", "initial_fdn", "measure_fdn", "residue_levels_db", "magnitude_db",
           "echo_density_mean", "TrialStore", "histogram", "plot_band_responses",
           "plot_residue_histograms"]

#: Delay sets of Dal Santo et al., arXiv 2402.11216 (samples at 48 kHz): the first sets of
#: the loss test and the second sets of the delay-set figure and listening test. (The
#: library's ``COLORLESS_FDN_DELAYS["N6"]`` is FLAMO's Fig. 4 set; its "N6b" is the N6 here.)
JOURNAL_DELAY_SETS = (
    ("N4", (1499, 1889, 2381, 2999)),
    ("N6", (997, 1153, 1327, 1559, 1801, 2099)),
    ("N8", (809, 877, 937, 1049, 1151, 1249, 1373, 1499)),
    ("N4_second", (797, 839, 3547, 3581)),
    ("N6_second", (887, 911, 941, 2017, 2053, 2129)),
    ("N8_second", (241, 263, 281, 293, 1871, 1973, 1999, 2027)),
)

#: Width of the residue-level histogram bins of the journal's delay-set figure [dB].
HISTOGRAM_BIN_DB = 2.0


def initial_fdn(cfg, delays, seed, dtype, device):
    """:func:`flamo.reverb.published_colorless_fdn` (``cfg.init``, ``cfg.gain_per_sample``)
    with its energy normalized to 1 on ``cfg.energy_points`` frequencies of [0, pi]."""
    system = published_colorless_fdn(delays, seed, init=cfg.init, gain_per_sample=cfg.gain_per_sample,
                                     dtype=dtype).to(device)
    grid = flamo.Grid(2 * (cfg.energy_points - 1), fs=cfg.fs, dtype=dtype, device=device)
    normalize_energy(system, grid, 1.0)
    return system


def measure_fdn(system, cfg, points) -> dict:
    """Modal-excitation spread (and the residue levels), magnitude spread at ``points`` and
    mean echo density (``cfg.ir_seconds``, ``cfg.echo_window``, ``cfg.echo_hop``)."""
    res_db, converged = residue_levels_db(system)
    mag = magnitude_db(system, points)
    eta, _ = echo_density_mean(system, cfg.fs, cfg.ir_seconds, cfg.echo_window, cfg.echo_hop)
    return {"modal_spread_db": float(res_db.std()), "modes": int(res_db.size), "modal_converged": converged,
            "magnitude_spread_db": float(mag.std()), "echo_density": eta, "residues_db": res_db.tolist(),
            "magnitude_db": mag}


def residue_levels_db(system) -> tuple[np.ndarray, bool]:
    """20 log10 |residue| of every mode (exact poles, :func:`flamo.reverb.modal_decomposition`)
    and whether the pole search converged."""
    modes = modal_decomposition(system)
    return 20 * np.log10(np.abs(modes.residues)), bool(modes.converged)


def magnitude_db(system, points) -> np.ndarray:
    """20 log10 |H| of a single-input single-output system at ``points`` (no autograd)."""
    with torch.no_grad():
        h = system.response(points)[:, 0, 0].abs().double().cpu()
    return (20 * torch.log10(h.clamp_min(1e-12))).numpy()


def echo_density_mean(system, fs: float, seconds: float, window: int, hop: int) -> tuple[float, np.ndarray]:
    """Mean normalized echo density (Abel & Huang 2006) of the time-domain impulse response
    (:func:`baselines.render`) over ``seconds``, window ``window`` samples, every ``hop``
    samples; also returns the profile."""
    with torch.no_grad():
        h = render(system, int(round(seconds * fs)), fs=fs).double().cpu().numpy()
    eta, _ = echo_density(h, fs, window_ms=1e3 * window / fs, hop=hop)
    return float(eta.mean()), eta


class TrialStore:
    """Finished trials as JSON files in a folder (the run's ``ctx.resume_dir``), so that an
    interrupted run does not redo them. Each trial also gets a checkpoint folder."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def folder(self, *key) -> Path:
        path = self.root.joinpath(*(str(k) for k in key))
        path.mkdir(parents=True, exist_ok=True)
        return path

    def load(self, *key):
        path = self.folder(*key) / "result.json"
        if not path.is_file():
            return None
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)

    def save(self, result: dict, *key) -> None:
        io.write_json(self.folder(*key) / "result.json", result)


def histogram(values, center=True):
    """Counts of ``values`` (minus their mean if ``center``) in bins of HISTOGRAM_BIN_DB,
    edges on multiples of the width: (edges, counts)."""
    v = np.asarray(values, dtype=float)
    v = v - v.mean() if center else v
    w = HISTOGRAM_BIN_DB
    lo, hi = np.floor(v.min() / w) * w, np.ceil(v.max() / w) * w + w
    edges = np.arange(lo, hi + w / 2, w)
    counts, _ = np.histogram(v, bins=edges)
    return edges, counts


#: Vertical offset of the optimized response in the stacked magnitude plots [dB].
STACK_OFFSET_DB = -40.0


def plot_band_responses(ax, freqs, before_db, after_db, band):
    """Magnitude responses over ``band`` = (lo, hi) Hz, stacked: initialized (gray) and
    optimized (blue, shifted by STACK_OFFSET_DB)."""
    sel = (freqs >= band[0]) & (freqs <= band[1])
    ax.plot(freqs[sel], before_db[sel], color="0.55", lw=0.5, label="initialized")
    ax.plot(freqs[sel], after_db[sel] + STACK_OFFSET_DB, color="tab:blue", lw=0.5,
            label=f"optimized ({STACK_OFFSET_DB:+g} dB)")
    ax.set_xlim(*band)


def plot_residue_histograms(ax, before, after):
    """Histograms of residue level minus its mean (2 dB bins), before and after."""
    for values, color, name in ((before, "0.55", "initialized"), (after, "tab:blue", "optimized")):
        edges, counts = histogram(values)
        ax.stairs(counts / counts.sum(), edges, color=color, lw=1.5,
                  label=f"{name} (std {np.std(values):.2f} dB)")
    ax.set_xlabel("residue level - mean [dB]")
    ax.set_ylabel("fraction of modes")
