"""Device check without asv (the GPU machines have torch but no asv): CUDA correctness of
the structured loop solve, then the cuda cases of the asv benchmark classes, called directly.
Run from the repository root: python scripts/bench_device_check.py"""
import subprocess, sys, time, torch
sys.path.insert(0, ".")  # the checkout, not an installed flamo
print(subprocess.run(["git", "log", "-1", "--oneline"], capture_output=True, text=True).stdout,
      torch.__version__, torch.cuda.get_device_name(0), flush=True)
from flamo.functional import diagonal_loop_solve
dev = "cuda"
g = torch.Generator().manual_seed(0)
def c(*s): return torch.complex(torch.randn(*s, generator=g), torch.randn(*s, generator=g)).double()
for sides in (("left",), ("right",), ("left", "right")):
    a, r = c(1, 4, 4) / 2, c(7, 4, 2)
    diags = {side: 0.5 * c(7, 4) for side in sides}
    ref = diagonal_loop_solve(a, r, **diags)
    out = diagonal_loop_solve(a.to(dev), r.to(dev), **{k: v.to(dev) for k, v in diags.items()}).cpu()
    print(sides, "cuda vs cpu", (out - ref).abs().max().item())
    ins = tuple(t.to(dev).requires_grad_(True) for t in (a, r, *diags.values()))
    solve = lambda a, r, *d: diagonal_loop_solve(a, r, **dict(zip(sides, d)))
    print("gradcheck cuda", torch.autograd.gradcheck(solve, ins, eps=1e-6, atol=1e-7, fast_mode=True))
d = torch.tensor([[1.0 + 0j], [0.5 + 0j]], dtype=torch.complex128, device=dev)
out = diagonal_loop_solve(torch.ones(1, 1, 1, dtype=torch.complex128, device=dev), torch.ones(2, 1, 1, dtype=torch.complex128, device=dev), left=d)
print("singular bin -> non-finite:", (~torch.isfinite(out[0])).all().item(), out[1].item())
from benchmarks import bench_fdn as F, bench_sos as S, bench_time_domain as T
from benchmarks.workloads import median_time
def timed(cls, args, methods):
    o = cls(); o.setup(*args)
    for m in methods:
        f = getattr(o, m)
        if m.startswith("track"):
            v = f(*args); print(f"{cls.__name__}.{m}{args} = {v:.4g}", flush=True)
        else:
            t = median_time(lambda: f(*args), o.device, repeat=5); print(f"{cls.__name__}.{m}{args} = {t*1e3:.2f} ms", flush=True)
for n, nfft in ((16, 2**15), (16, 2**17), (64, 2**17)):
    for cls in (F.FDNTime, F.FDNFloorTime):
        timed(cls, ("cuda", n, nfft), ["time_forward", "time_forward_backward"])
    for cls in (F.FDNMemory, F.FDNFloorMemory):
        timed(cls, ("cuda", n, nfft), ["track_cuda_peak_forward_backward"])
for nfft in (2**15, 2**17):
    timed(F.FDNOverFloor, ("cuda", 16, nfft), ["track_time_ratio", "track_peakmem_ratio"])
for ch in (1, 64):
    timed(S.SOSOverFloor, ("cuda", ch), ["track_time_ratio_forward", "track_time_ratio_forward_backward"])
    timed(S.SOSCascade, ("cuda", ch), ["time_forward_backward", "track_cuda_peak_forward_backward"])
timed(T.BlockFDN, ("cuda", 16), ["time_forward", "time_forward_backward"])
timed(T.RecursiveSOS, ("cuda", 1), ["time_forward"])
print("done")
