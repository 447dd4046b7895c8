"""Where the time of one forward + backward step of the benchmark FDN goes (N = 16,
nfft = 2^17 by default, one thread), and the FLOP rate the batched LU of its loop matrices
reaches against one large LU on this CPU.

Run from the repository root: ``python scripts/profile_fdn.py [--n 16] [--nfft 131072]``.
Prints the torch.profiler table of the step (self CPU time per op, top 15), then the rates:
a complex LU of size n costs about 8 n^3 / 3 real flops (2 n^3 / 3 complex multiply-adds of
4 flops each, Golub & Van Loan 2013, 3.2), a triangular solve pair 8 n^2 per column. Last, the build of the loop matrix into a fresh
buffer against a reused one (the cost of first-touch page faults).
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_fdn import FDNTime  # noqa: E402


def _median_s(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--nfft", type=int, default=2 ** 17)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--big", type=int, default=2048, help="size of the one large LU")
    args = parser.parse_args()
    lib = FDNTime()
    lib.setup("cpu", args.n, args.nfft)
    lib.step()
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        lib.step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    step = _median_s(lib.step, args.repeat)
    m = args.nfft // 2 + 1
    gen = torch.Generator().manual_seed(0)
    loops = torch.randn(m, args.n, args.n, 2, generator=gen)
    loops = torch.view_as_complex(loops) / args.n ** 0.5 + torch.eye(args.n)
    col_major = loops.mT.contiguous().mT
    batched = _median_s(lambda: torch.linalg.lu_factor_ex(col_major.clone()), args.repeat)
    copy = _median_s(lambda: col_major.clone(), args.repeat)
    big = torch.view_as_complex(torch.randn(args.big, args.big, 2, generator=gen))
    one = _median_s(lambda: torch.linalg.lu_factor_ex(big), max(3, args.repeat // 2))
    big_real = torch.randn(args.big, args.big, generator=gen)
    one_real = _median_s(lambda: torch.linalg.lu_factor_ex(big_real), max(3, args.repeat // 2))
    flops_small = 8 / 3 * args.n ** 3 * m
    flops_big = 8 / 3 * args.big ** 3
    lu_s = batched[0] - copy[0]
    print(f"step (forward + backward): median {1e3 * step[0]:.0f} ms [{1e3 * step[1]:.0f}, "
          f"{1e3 * step[2]:.0f}] over {args.repeat}")
    print(f"batched LU of {m} complex64 {args.n} x {args.n}: {1e3 * lu_s:.0f} ms "
          f"(clone {1e3 * copy[0]:.0f} ms subtracted), {flops_small / lu_s / 1e9:.2f} GFLOP/s")
    print(f"one complex64 LU {args.big} x {args.big}: {1e3 * one[0]:.0f} ms, "
          f"{flops_big / one[0] / 1e9:.2f} GFLOP/s")
    print(f"one float32 LU {args.big} x {args.big}: {1e3 * one_real[0]:.0f} ms, "
          f"{2 / 3 * args.big ** 3 / one_real[0] / 1e9:.2f} GFLOP/s (2 n^3 / 3 flops)")
    # The library's kernel end to end (fused build in blocks, factor, solve; no autograd).
    from flamo.functional import diagonal_loop_solve
    a_kernel = loops[:1]
    rhs = torch.ones(1, args.n, 1, dtype=loops.dtype)
    left = loops[:, 0, :] / (2 * loops[:, 0, :].abs().amax(-1, keepdim=True))
    kernel = _median_s(lambda: diagonal_loop_solve(a_kernel, rhs, left=left), args.repeat)
    print(f"diagonal_loop_solve of the same size (build + LU + solve, no grad): "
          f"{1e3 * kernel[0]:.0f} ms [{1e3 * kernel[1]:.0f}, {1e3 * kernel[2]:.0f}]")
    # The loop matrix is built into a fresh (M, N, N) buffer every step (its factors are saved
    # for the backward pass). glibc serves such a block by mmap and unmaps it when freed, so
    # every step pays the first-touch page faults of the buffer: time the build both ways.
    a = loops[:1].mT
    d = loops[:, :1, :].clone()
    kept = torch.empty_like(loops)
    fresh = _median_s(lambda: torch.mul(a, d, out=torch.empty_like(loops)), args.repeat)
    reused = _median_s(lambda: torch.mul(a, d, out=kept), args.repeat)
    print(f"loop build I - D A into a fresh buffer: {1e3 * fresh[0]:.0f} ms [{1e3 * fresh[1]:.0f}, "
          f"{1e3 * fresh[2]:.0f}], into a reused one: {1e3 * reused[0]:.0f} ms [{1e3 * reused[1]:.0f}, "
          f"{1e3 * reused[2]:.0f}] (MALLOC_MMAP_THRESHOLD_ changes the first)")
    print(f"threads: {torch.get_num_threads()}, torch {torch.__version__}, "
          f"{torch.backends.cpu.get_cpu_capability()}")


if __name__ == "__main__":
    main()
