"""Issue 15's table: forward + backward time of the N = 16, nfft = 2^17 FDN with an
attenuation filter per line in each arrangement, over the plain FDN and the plain-torch floor,
all measured in this one process, interleaved round by round (the machine is shared: a round
times every case once, back to back, and each ratio is taken within its round).

Run from the repository root: ``python scripts/bench_arrangements.py [--rounds 7]``. One torch
thread (as the asv suite). Prints a markdown table: the median time of each case and the
median, min and max over rounds of its ratio to the plain FDN. The rows "alone" time the
filters by themselves (their response on the grid, a loss, the backward to their
parameters): the part of a filtered FDN's step that the plain FDN does not do, so
1 + that ratio is about what the filtered FDN can reach without a faster filter evaluation.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's flamo, benchmarks

from benchmarks.bench_fdn import FDNAttenuationOverPlain, FDNOverFloor, FilterAlone  # noqa: E402
from benchmarks.workloads import ARRANGEMENTS, interleaved_table  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--nfft", type=int, default=2 ** 17)
    parser.add_argument("--filters", default="geq,sos")
    args = parser.parse_args()
    cases = {}
    plain = FDNOverFloor()  # the library FDN and its floor
    plain.setup("cpu", args.n, args.nfft)
    cases["plain FDN (no filter)"] = plain.library.step
    cases["plain-torch floor"] = plain.floor.step
    for kind in args.filters.split(","):
        for arrangement in ARRANGEMENTS:
            case = FDNAttenuationOverPlain()
            case.setup("cpu", kind, arrangement, args.n, args.nfft)
            cases[f"{kind}, {arrangement}"] = case.filtered.step
        alone = FilterAlone()
        alone.setup("cpu", kind, args.n, args.nfft)
        cases[f"{kind} alone (its response + loss + backward)"] = alone.step
    rows = interleaved_table(cases, "plain FDN (no filter)", args.rounds)
    print(f"N = {args.n}, nfft = {args.nfft}, {args.rounds} interleaved rounds, one thread")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
