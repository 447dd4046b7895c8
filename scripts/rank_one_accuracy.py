"""Accuracy of the Sherman-Morrison loop solve where Delta = I - diag(l) is nearly singular,
against the LU solve: the evidence behind ``flamo.functional.RANK_ONE_MIN_DIAGONAL``.

Loops I - diag(l) A with A a random N x N Householder reflection and lossless lines
(|l_i| = 1) at random phases, one to three lines per point at phase +-delta (so min_i |1 - l_i|
is about delta); complex64 inputs, the reference a float64 dense solve of the same rounded
inputs. The points of all deltas are binned by r = min_i |Delta_ii| / s (s the bound on P's
entries that the threshold is relative to); per bin: the normwise relative error of the LU
kernel and of the Sherman-Morrison formula used at every point (the fallback switched off),
each divided by eps cond(P) (what a backward-stable solve attains, up to a modest factor), as
median / 99th percentile / max over the points. The fallback sends the points with
r < RANK_ONE_MIN_DIAGONAL = 2^-6 to the LU.

Run from the repository root: ``python scripts/rank_one_accuracy.py [--n 16] [--points 2000]``.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's flamo

from flamo.functional import IdentityPlusRankOne, diagonal_loop_solve, loop_solve  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    n, m = args.n, args.points
    eps = np.finfo(np.float32).eps
    errors = {"r": [], "LU": [], "Sherman-Morrison everywhere": []}
    for delta in (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4, 1e-5):
        u = torch.tensor(rng.normal(size=(1, n)))
        p, q = (t.to(torch.complex64) for t in (-2 * u / (u * u).sum(-1, keepdim=True), u))
        theta = rng.uniform(-np.pi, np.pi, size=(m, n))
        for k in range(m):
            lines = rng.choice(n, 1 + rng.integers(0, 3), replace=False)
            theta[k, lines] = rng.choice([-1, 1], lines.size) * delta * rng.uniform(0.5, 1.5, lines.size)
        left = torch.polar(torch.ones(m, n, dtype=torch.float64), torch.tensor(theta)).to(torch.complex64)
        rhs = torch.tensor(rng.normal(size=(m, n, 1)) + 1j * rng.normal(size=(m, n, 1))).to(torch.complex64)
        a = IdentityPlusRankOne(p, q).dense()
        loops = np.eye(n) - left.to(torch.complex128).numpy()[:, :, None] * a.to(torch.complex128).numpy()
        ref = np.linalg.solve(loops, rhs.to(torch.complex128).numpy())
        bound = eps * np.linalg.cond(loops)
        scale = loop_solve.diagonal_loop_scale(a, left=left).numpy()
        errors["r"].append(np.abs(1 - left.numpy()).min(-1) / scale)
        threshold = loop_solve.RANK_ONE_MIN_DIAGONAL
        for name, a_or_factors, tau in (("LU", a, threshold), ("Sherman-Morrison everywhere",
                                                               IdentityPlusRankOne(p, q), 0.0)):
            loop_solve.RANK_ONE_MIN_DIAGONAL = tau
            try:
                x = diagonal_loop_solve(a_or_factors, rhs, left=left).numpy()
            finally:
                loop_solve.RANK_ONE_MIN_DIAGONAL = threshold
            errors[name].append(np.linalg.norm(x - ref, axis=(1, 2)) / np.linalg.norm(ref, axis=(1, 2)) / bound)
    errors = {name: np.concatenate(values) for name, values in errors.items()}
    print(f"N = {n}, complex64, error / (eps cond(P)): median / 99% / max over the points of a bin")
    print("| r = min abs(Delta_ii) / s | points | LU | Sherman-Morrison everywhere |")
    print("|---|---|---|---|")
    edges = [np.inf] + [2.0 ** -k for k in range(4, 16, 2)] + [0.0]
    for high, low in zip(edges, edges[1:]):
        inside = (errors["r"] >= low) & (errors["r"] < high)
        if not inside.any():
            continue
        cells = [f"{np.median(v[inside]):.2g} / {np.quantile(v[inside], 0.99):.2g} / {v[inside].max():.2g}"
                 for v in (errors["LU"], errors["Sherman-Morrison everywhere"])]
        label = lambda v: "0" if v == 0 else "inf" if v == np.inf else f"2^{np.log2(v):.0f}"  # noqa: E731
        print(f"| [{label(low)}, {label(high)}) "
              f"| {inside.sum()} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
