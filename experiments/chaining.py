"""FLAMO Fig. 1: chaining modules in series, in parallel and in feedback loops.

Each configuration is built with the library and evaluated on a grid; the same transfer
equation is computed independently with numpy at the same points z_k (complex128 powers of
z, polynomial ratios for the biquads, ``numpy.linalg.solve`` for the loops). The CSV holds the
max absolute and relative deviation per configuration, dtype and alias_decay_db.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import flamo
from experiments.fdn_common import DTYPE_NAMES

DESCRIPTION = "FLAMO Fig. 1: series/parallel/recursion/nested systems vs numpy transfer equations"


@dataclass
class Config:
    """Hyperparameters of the chaining experiment."""

    nfft: int = 2**14  # FFT length [samples]
    fs: float = 48000.0  # sample rate [Hz]
    alias_decay_db: tuple[float, ...] = (0.0, 30.0)  # grids evaluated [dB]
    dtypes: tuple[str, ...] = ("float32", "float64")

    @classmethod
    def quick(cls) -> "Config":
        """CI variant: a short grid."""
        return cls(nfft=2**10)


# -- the systems and their numpy transfer equations --------------------------------------
def _sos_np(sos, z):
    """Cascade of biquads (K, 6) at points z, (M,)."""
    zi = 1 / z
    h = np.ones_like(z)
    for b0, b1, b2, a0, a1, a2 in np.asarray(sos, dtype=float):
        h = h * (b0 + b1 * zi + b2 * zi**2) / (a0 + a1 * zi + a2 * zi**2)
    return h


def _delay_np(m, z):
    """diag(z^-m_i) as (M, N, N)."""
    return np.stack([np.diag(zk ** (-np.asarray(m, dtype=float))) for zk in z])


def _loop_np(F, B):
    """(I - F B)^-1 F, (M, n, m), with one numpy solve per frequency."""
    n = F.shape[-2]
    return np.linalg.solve(np.eye(n) - F @ B, F)


def _systems(rng):
    """name -> (flamo system, function z -> (M, out, in) numpy transfer matrix)."""
    sos1 = np.array([[0.3, -0.2, 0.1, 1.0, -1.2, 0.5]])
    sos2 = np.stack([[[1.0, 0.4, 0.2, 1.0, -0.9, 0.3]], [[0.5, -0.1, 0.0, 1.0, 0.5, 0.4]]])
    b_in = rng.normal(size=(2, 1))
    c_out = rng.normal(size=(1, 2))
    mix = rng.normal(size=(2, 2)) / 2
    m3 = [5, 7, 11]
    g3 = np.array([0.9, 0.85, 0.8])
    A3 = flamo.Matrix(3, kind="orthogonal", seed=1).matrix.detach().double().numpy()
    m2 = [3, 4]
    g2 = np.array([0.5, 0.6])
    b3 = rng.normal(size=(3, 1))
    c3 = rng.normal(size=(1, 3))

    def series_np(z):
        D = _delay_np([3, 5], z)
        S = np.stack([np.diag([a, b]) for a, b in zip(_sos_np(sos2[0], z), _sos_np(sos2[1], z))])
        return c_out @ S @ D @ b_in * _sos_np(sos1, z)[:, None, None]

    series = flamo.Series(flamo.SOS(sos1), flamo.Gain(b_in), flamo.Delay([3, 5]), flamo.SOS(sos2),
                          flamo.Gain(c_out))

    def parallel_np(z):
        D = _delay_np([2, 9], z)
        S = np.stack([np.diag([a, b]) for a, b in zip(_sos_np(sos2[0], z), _sos_np(sos2[1], z))])
        return mix[None] + D @ S + 0.5 * np.eye(2)[None]

    parallel = flamo.Parallel(flamo.Gain(mix), flamo.Series(flamo.SOS(sos2), flamo.Delay([2, 9])),
                              flamo.Gain([0.5, 0.5]))

    def recursion_np(z):
        return _loop_np(_delay_np(m3, z) * g3[None, None, :], np.broadcast_to(A3, (len(z), 3, 3)))

    recursion = flamo.Recursion(flamo.Series(flamo.Delay(m3), flamo.Gain(g3)),
                                flamo.Matrix(3, kind="free", init=A3))

    def nested_np(z):
        inner = _loop_np(_delay_np(m2, z) * g2[None, None, :], np.broadcast_to(mix, (len(z), 2, 2)))
        # feedback of the outer loop: A3 in parallel with a 3x3 path through the inner loop
        route_in = np.array([[1.0, 0, 0], [0, 1.0, 0]])  # 3 -> 2
        route_out = route_in.T  # 2 -> 3
        feedback = A3[None] * 0.5 + route_out @ inner @ route_in * 0.3
        forward = _delay_np(m3, z) * (g3 * _sos_np(sos1, z)[:, None])[:, None, :]
        return c3 @ _loop_np(forward, feedback) @ b3

    inner = flamo.Recursion(flamo.Series(flamo.Delay(m2), flamo.Gain(g2)), flamo.Gain(mix))
    route_in = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    feedback = flamo.Parallel(flamo.Gain(A3 * 0.5),
                              flamo.Series(flamo.Gain(route_in), inner, flamo.Gain(route_in.T * 0.3)))
    forward = flamo.Series(flamo.Delay(m3), flamo.Gain(g3),
                           flamo.SOS(np.broadcast_to(sos1, (3, 1, 6)).copy()))
    nested = flamo.Series(flamo.Gain(b3), flamo.Recursion(forward, feedback), flamo.Gain(c3))

    return {"series": (series, series_np), "parallel": (parallel, parallel_np),
            "recursion": (recursion, recursion_np), "nested": (nested, nested_np)}


_DIAGRAMS = {
    "series": "x -> SOS -> b (2x1) -> diag(z^-m) -> diag(SOS) -> c (1x2) -> y\nH = c S(z) D(z) b H1(z)",
    "parallel": "x -> [ M | diag(SOS) diag(z^-m) | 0.5 I ] -> sum -> y\nH = M + D(z) S(z) + 0.5 I",
    "recursion": "x -> (+) -> diag(g z^-m) -> y,  y -> A -> (+)\nH = (I - D(z) A)^-1 D(z)",
    "nested": "b -> loop[ F = diag(g H1 z^-m),\n  B = 0.5 A + R' (I - D2 M)^-1 D2 R * 0.3 ] -> c\n(a loop inside the feedback path of a loop)",
}


def _draw_diagrams(errors: pd.DataFrame):
    fig, axes = plt.subplots(2, 2, figsize=(10, 5.5))
    for ax, (name, text) in zip(axes.flat, _DIAGRAMS.items()):
        ax.axis("off")
        sub = errors[(errors.configuration == name)]
        worst = {dt: sub[sub.dtype == dt].max_rel_error.max() for dt in sub.dtype.unique()}
        err_text = ", ".join(f"{dt}: {v:.1e}" for dt, v in worst.items())
        ax.set_title(name, fontsize=12, fontweight="bold")
        ax.text(0.02, 0.62, text, family="monospace", fontsize=8.5, va="center", transform=ax.transAxes,
                bbox=dict(boxstyle="round", fc="0.95", ec="0.6"))
        ax.text(0.02, 0.12, f"max relative deviation from numpy\n{err_text}", fontsize=9,
                transform=ax.transAxes)
    fig.suptitle("Chaining configurations (FLAMO Fig. 1) and their transfer equations")
    fig.tight_layout()
    return fig


def run(cfg: Config, ctx) -> None:
    """Evaluate every configuration on each grid and dtype and compare with numpy."""
    rng = np.random.default_rng(ctx.seed)
    systems = _systems(rng)
    rows = []
    jobs = [(name, db, dt) for name in systems for db in cfg.alias_decay_db for dt in cfg.dtypes]
    for name, db, dt_name in ctx.progress(jobs, desc="configurations", total=len(jobs)):
        dtype = {v: k for k, v in DTYPE_NAMES.items()}[dt_name]
        system, reference = systems[name]
        grid = flamo.Grid(cfg.nfft, cfg.fs, db, dtype=dtype, device=ctx.device)
        with torch.no_grad():
            got = system.to(ctx.device).response(grid).cpu().to(torch.complex128).numpy()
        z = grid.replace(dtype=torch.float64, device="cpu").z.numpy()
        want = reference(z)
        abs_err = np.abs(got - want)
        rows.append({"configuration": name, "dtype": dt_name, "alias_decay_db": db, "nfft": cfg.nfft,
                     "shape": "x".join(map(str, system.shape)),
                     "max_abs_error": float(abs_err.max()),
                     "max_rel_error": float(abs_err.max() / np.abs(want).max()),
                     "max_abs_response": float(np.abs(want).max())})
    errors = pd.DataFrame(rows)
    ctx.write_csv(errors, "errors.csv")
    ctx.save_figure(_draw_diagrams(errors), "diagrams.png")
    f64 = errors[errors.dtype == "float64"]
    f32 = errors[errors.dtype == "float32"]
    ctx.headline(worst_float64_rel_error=float(f64.max_rel_error.max()) if len(f64) else float("nan"),
                 worst_float32_rel_error=float(f32.max_rel_error.max()) if len(f32) else float("nan"),
                 configurations=len(systems))
