"""Smoke test of the runner: one-pole filter impulse response.

The impulse response of ``H(z) = 1 / (1 - p z^-1)`` is ``h[n] = p^n``.  We
compute it in closed form with torch (in the run's dtype and device) and
compare it with :func:`scipy.signal.lfilter` applied to a unit impulse
(float64).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.signal
import torch

DESCRIPTION = "extension (runner smoke test): one-pole filter, closed-form vs scipy.signal.lfilter impulse response"


@dataclass
class Config:
    """Hyperparameters of the smoke experiment."""

    poles: tuple[float, ...] = (-0.7, 0.5, 0.9, 0.99)  # pole positions p
    n_samples: int = 48000  # impulse response length [samples]
    fs: int = 48000  # sample rate [Hz], for the time axis only
    plot_ms: float = 5.0  # plotted time span [ms]

    @classmethod
    def quick(cls) -> "Config":
        """Short variant for CI (well under a second)."""
        return cls(n_samples=1024)


def run(cfg: Config, ctx) -> None:
    """Compare closed-form and recursive impulse responses for each pole."""
    n = torch.arange(cfg.n_samples, device=ctx.device, dtype=ctx.dtype)
    impulse = np.zeros(cfg.n_samples)
    impulse[0] = 1.0

    rows, irs = [], {}
    for p in ctx.progress(cfg.poles, desc="poles", total=len(cfg.poles)):
        closed = torch.pow(torch.tensor(p, device=ctx.device, dtype=ctx.dtype), n)
        closed = closed.cpu().double().numpy()
        reference = scipy.signal.lfilter([1.0], [1.0, -p], impulse)
        err = float(np.max(np.abs(closed - reference)))
        rows.append({"pole": p, "n_samples": cfg.n_samples, "dtype": str(ctx.dtype).removeprefix("torch."), "max_abs_error": err})
        irs[p] = (closed, reference)
        ctx.log(f"p={p:+.2f}: max |error| = {err:.3e}")

    ctx.write_csv(pd.DataFrame(rows), "errors.csv")

    n_plot = min(cfg.n_samples, int(round(cfg.plot_ms * 1e-3 * cfg.fs)))
    t_ms = np.arange(n_plot) / cfg.fs * 1e3
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for p, (closed, reference) in irs.items():
        (line,) = ax.plot(t_ms, closed[:n_plot], label=f"p = {p:+.2f} (closed form)")
        ax.plot(t_ms, reference[:n_plot], "--", color=line.get_color(), label=f"p = {p:+.2f} (lfilter)")
    ax.set_xlabel("time [ms]")
    ax.set_ylabel("amplitude [linear]")
    ax.set_title("One-pole impulse responses")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ctx.save_figure(fig, "impulse_responses.png")

    ctx.headline(max_abs_error=max(r["max_abs_error"] for r in rows), n_poles=len(rows))
