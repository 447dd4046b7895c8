"""Forward + backward time of the benchmark FDN with a Householder feedback matrix (nfft =
2^17, one thread): the Sherman-Morrison loop solve against the LU structured path (the same
matrix values as a ``kind="free"`` Matrix) and, for N = 16, the plain-torch floor, measured in
this one process, interleaved round by round (each ratio within its round; the machine is
shared), with the load average before and after.

Run from the repository root: ``python scripts/bench_householder.py [--n 16,64] [--rounds 7]
[--lossless]``. Prints a markdown table: the median time of each case and the median, min and
max over rounds of its ratio to the Sherman-Morrison step. ``--lossless``: the same FDN without
attenuation on a grid of 1 dB alias decay, where every line is near its resonance on about
2^-6 s / pi of the grid and those points take the LU solve (their share is printed).
"""
import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's flamo, benchmarks

from benchmarks.bench_fdn import HouseholderFDN  # noqa: E402
from benchmarks.workloads import fdn_delays, interleaved_table  # noqa: E402


def lossless(bench, n):
    """The benchmark's FDNs without attenuation, on a grid of 1 dB alias decay (no floor)."""
    from flamo.reverb import build_fdn

    for case in (bench.rank_one, bench.lu):
        matrix = case.system["loop"].feedback_path
        case.system = build_fdn(delays=fdn_delays(n), matrix=matrix, seed=0)
        case.grid = case.grid.replace(alias_decay_db=1.0)
    bench.floor = None


def lu_points(case):
    """How many loop matrices of one forward pass go through an LU factorization."""
    count, inner = [0], torch.linalg.lu_factor_ex

    def counted(a, *args, **kwargs):
        count[0] += a.shape[:-2].numel()
        return inner(a, *args, **kwargs)

    torch.linalg.lu_factor_ex = counted
    try:
        case.forward()
    finally:
        torch.linalg.lu_factor_ex = inner
    return count[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", default="16,64")
    parser.add_argument("--nfft", type=int, default=2 ** 17)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--lossless", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load average before: {os.getloadavg()}")
    for n in (int(v) for v in args.n.split(",")):
        bench = HouseholderFDN()
        bench.setup("cpu", n, args.nfft)
        if args.lossless:
            lossless(bench, n)
        cases = {"Sherman-Morrison": bench.rank_one.step, "LU structured": bench.lu.step}
        if bench.floor is not None:
            cases["plain-torch floor"] = bench.floor.step
        if args.lossless:
            print(f"\nN = {n}, lossless: {lu_points(bench.rank_one)} of {bench.rank_one.grid.M} points "
                  f"take the LU solve")
        rows = interleaved_table(cases, "Sherman-Morrison", args.rounds)
        print(f"\nN = {n}, nfft = {args.nfft}, {args.rounds} interleaved rounds, one thread, "
              f"load average now {os.getloadavg()}")
        print("\n".join(rows))


if __name__ == "__main__":
    main()
