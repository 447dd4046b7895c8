"""Reproduction of FLAMO (Dal Santo et al., ICASSP 2025) Fig. 1: chaining modules in series,
in parallel and in feedback loops.

The poster's Fig. 1 is one system: a pre-filter and input gains in series, two branches in
parallel (per-channel biquads and per-channel delays), a feedback loop (delays with gains
in the forward path, an orthogonal matrix in the feedback path) and output gains,

    H(z) = c (I - F(z) A)^-1 F(z) (S(z) + D'(z)) b H_0(z),   F(z) = diag(g_i z^-m_i).

It is built with the library as one system (``Series``, ``Parallel``, ``Recursion``),
evaluated on a grid, and its transfer equation is computed independently with numpy at the
same points z_k (complex128 powers of z, polynomial ratios for the biquads,
``numpy.linalg.solve`` for the loop); ``block_diagram.png`` draws it. Beyond the figure
(extension), the three configurations alone and a loop nested in a loop's feedback path
are checked the same way. The CSV holds the max absolute and relative deviation per
configuration, dtype and alias_decay_db.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import flamo
from experiments.fdn_common import DTYPE_NAMES

DESCRIPTION = ("reproduction of FLAMO (ICASSP 2025) Fig. 1: the series/parallel/recursion composite "
               "as one system vs numpy, drawn as a block diagram; extension: each configuration alone")


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

    return {COMPOSITE: _composite(rng), "series": (series, series_np),
            "parallel": (parallel, parallel_np), "recursion": (recursion, recursion_np),
            "nested": (nested, nested_np)}


COMPOSITE = "fig1_composite"


def _composite(rng):
    """The poster's Fig. 1 as one system and its numpy transfer equation."""
    sos0 = np.array([[0.6, 0.3, 0.05, 1.0, -0.6, 0.2]])  # pre-filter H_0
    sos_branch = np.stack([[[1.0, -0.5, 0.1, 1.0, -1.1, 0.45]], [[0.7, 0.2, 0.0, 1.0, 0.3, 0.2]],
                           [[0.4, 0.0, -0.4, 1.0, -0.2, 0.5]]])  # diag S(z), 3 channels
    m_branch = [4, 9, 13]  # D'(z)
    m_loop = [17, 23, 29]
    g_loop = np.array([0.9, 0.85, 0.8])  # loop gain <= 0.9 with an orthogonal A
    A = flamo.Matrix(3, kind="orthogonal", seed=3).matrix.detach().double().numpy()
    b = rng.normal(size=(3, 1))
    c = rng.normal(size=(1, 3))
    system = flamo.Series({
        "pre_filter": flamo.SOS(sos0),
        "input": flamo.Gain(b),
        "branches": flamo.Parallel({"filters": flamo.SOS(sos_branch), "delays": flamo.Delay(m_branch)}),
        "loop": flamo.Recursion(flamo.Series({"delays": flamo.Delay(m_loop), "gains": flamo.Gain(g_loop)}),
                                flamo.Matrix(3, kind="free", init=A)),
        "output": flamo.Gain(c),
    })

    def transfer(z):
        S = np.stack([np.diag(v) for v in zip(*(_sos_np(s, z) for s in sos_branch))])
        branches = S + _delay_np(m_branch, z)
        loop = _loop_np(_delay_np(m_loop, z) * g_loop[None, None, :], np.broadcast_to(A, (len(z), 3, 3)))
        return c @ loop @ branches @ b * _sos_np(sos0, z)[:, None, None]

    return system, transfer


def _block_diagram(errors: pd.DataFrame):
    """Block diagram of the Fig. 1 composite with its transfer equation and measured error."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(12, 4.6))
    ax.set(xlim=(0, 12), ylim=(0, 4.6))
    ax.axis("off")

    def box(x, y, text, w=1.1, h=0.6, color="0.93"):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05",
                                    fc=color, ec="0.25"))
        ax.text(x, y, text, ha="center", va="center", fontsize=10)

    def node(x, y, text="+"):
        ax.add_patch(plt.Circle((x, y), 0.17, fc="white", ec="0.25"))
        ax.text(x, y, text, ha="center", va="center", fontsize=10)

    def arrow(p, q, **kw):
        ax.add_patch(FancyArrowPatch(p, q, arrowstyle="-|>", mutation_scale=12, color="0.2",
                                     shrinkA=0, shrinkB=0, **kw))

    y = 2.6
    ax.text(0.25, y, "x", ha="center", va="center", fontsize=12)
    box(1.3, y, "$H_0(z)$\nbiquad")
    box(2.8, y, "$b$\n3 x 1")
    box(4.6, y + 0.75, "$S(z)$\ndiag biquads", w=1.4)
    box(4.6, y - 0.75, "$D'(z)$\ndiag $z^{-m'}$", w=1.4)
    node(6.1, y)
    node(7.0, y)
    box(8.3, y, "$F(z)$\ndiag $g_i z^{-m_i}$", w=1.5)
    box(8.3, y - 1.5, "$A$ (3 x 3)\northogonal", w=1.5, color="0.86")
    box(10.3, y, "$c$\n1 x 3")
    ax.text(11.6, y, "y", ha="center", va="center", fontsize=12)
    arrow((0.45, y), (0.75, y))
    arrow((1.85, y), (2.25, y))
    arrow((3.35, y), (3.6, y))
    arrow((3.6, y), (3.9, y + 0.75))
    arrow((3.6, y), (3.9, y - 0.75))
    arrow((5.3, y + 0.75), (6.0, y + 0.1))
    arrow((5.3, y - 0.75), (6.0, y - 0.1))
    arrow((6.27, y), (6.83, y))
    arrow((7.17, y), (7.55, y))
    arrow((9.05, y), (9.75, y))
    arrow((10.85, y), (11.45, y))
    arrow((9.4, y), (9.4, y - 1.5), connectionstyle="arc3")
    arrow((9.4, y - 1.5), (9.05, y - 1.5))
    arrow((7.55, y - 1.5), (7.0, y - 1.5))
    arrow((7.0, y - 1.5), (7.0, y - 0.17))
    ax.text(4.6, y + 1.45, "parallel", ha="center", fontsize=9, style="italic", color="0.35")
    ax.text(8.3, y + 0.6, "recursion", ha="center", fontsize=9, style="italic", color="0.35")
    ax.text(1.9, y + 0.6, "series", ha="center", fontsize=9, style="italic", color="0.35")
    sub = errors[errors.configuration == COMPOSITE]
    worst = ", ".join(f"{dt} {sub[sub.dtype == dt].max_rel_error.max():.1e}" for dt in sorted(sub.dtype.unique()))
    ax.text(6.0, 0.45, r"$H(z) = c\,(I - F(z) A)^{-1} F(z)\,(S(z) + D'(z))\,b\,H_0(z)$"
            f"      max relative deviation from numpy: {worst}", ha="center", fontsize=11)
    ax.set_title("FLAMO Fig. 1 as one system: series, parallel and recursion (flamo.Series / "
                 "Parallel / Recursion)", fontsize=12)
    fig.tight_layout()
    return fig


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
    fig.suptitle("Extension of FLAMO Fig. 1: each chaining configuration alone, and a nested loop")
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
    ctx.save_figure(_block_diagram(errors), "block_diagram.png")
    ctx.save_figure(_draw_diagrams(errors[errors.configuration != COMPOSITE]), "diagrams.png")

    def worst(dt, composite):
        sel = errors[(errors.dtype == dt) & ((errors.configuration == COMPOSITE) == composite)]
        return float(sel.max_rel_error.max()) if len(sel) else float("nan")

    ctx.headline(composite_float64_max_rel_error=worst("float64", True),
                 composite_float32_max_rel_error=worst("float32", True),
                 worst_float64_rel_error=worst("float64", False),
                 worst_float32_rel_error=worst("float32", False),
                 configurations=len(systems))
