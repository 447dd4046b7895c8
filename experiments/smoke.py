"""Smoke test of the runner: one-pole filter impulse response.

The impulse response of ``H(z) = 1 / (1 - p z^-1)`` is ``h[n] = p^n``.  We
compute it in closed form with torch (in the run's dtype and device) and
compare it with :func:`scipy.signal.lfilter` applied to a unit impulse
(float64). Each pole is one task (:mod:`experiments.tasks`): the smallest
example of the task form.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.signal
import torch

from experiments.tasks import Task

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


def tasks(cfg: Config) -> list[Task]:
    """One task per pole; each carries the lengths it needs."""
    n_plot = min(cfg.n_samples, int(round(cfg.plot_ms * 1e-3 * cfg.fs)))
    return [Task(f"p={p:+.2f}", {"pole": p, "n_samples": cfg.n_samples, "n_plot": n_plot})
            for p in cfg.poles]


def run_task(params: dict, tctx) -> dict:
    """Closed-form and recursive impulse responses of one pole: error and the plotted part."""
    p, n_samples = params["pole"], params["n_samples"]
    n = torch.arange(n_samples, device=tctx.device, dtype=tctx.dtype)
    closed = torch.pow(torch.tensor(p, device=tctx.device, dtype=tctx.dtype), n).cpu().double().numpy()
    impulse = np.zeros(n_samples)
    impulse[0] = 1.0
    reference = scipy.signal.lfilter([1.0], [1.0, -p], impulse)
    err = float(np.max(np.abs(closed - reference)))
    tctx.log(f"max |error| = {err:.3e}")
    return {"max_abs_error": err, "closed": closed[:params["n_plot"]],
            "reference": reference[:params["n_plot"]]}


def reduce(cfg: Config, results: dict, ctx) -> None:
    """Error table, figure and headline from the per-pole results."""
    dtype = str(ctx.dtype).removeprefix("torch.")
    rows = [{"pole": p, "n_samples": cfg.n_samples, "dtype": dtype, "max_abs_error": r["max_abs_error"]}
            for p, r in zip(cfg.poles, results.values())]
    ctx.write_csv(pd.DataFrame(rows), "errors.csv")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for p, r in zip(cfg.poles, results.values()):
        t_ms = np.arange(r["closed"].size) / cfg.fs * 1e3
        (line,) = ax.plot(t_ms, r["closed"], label=f"p = {p:+.2f} (closed form)")
        ax.plot(t_ms, r["reference"], "--", color=line.get_color(), label=f"p = {p:+.2f} (lfilter)")
    ax.set_xlabel("time [ms]")
    ax.set_ylabel("amplitude [linear]")
    ax.set_title("One-pole impulse responses")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ctx.save_figure(fig, "impulse_responses.png")

    ctx.headline(max_abs_error=max(r["max_abs_error"] for r in rows), n_poles=len(rows))
