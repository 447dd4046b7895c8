"""Workloads shared by the asv benchmarks: seeded systems, their plain-torch floors, and
device helpers.

Every workload exists twice: through the library (``flamo`` modules) and as a *floor*, the
same math written directly in torch with no library code, so the library's overhead can be
tracked as a ratio. The FDN is built by the library's builder (:func:`flamo.reverb.build_fdn`)
and the floors take their numbers (delays, matrix, gains) from that system, read back by
:func:`flamo.reverb.fdn_structure`. The time-domain baselines (``baselines``) are imported
lazily by the benchmarks that need them, to keep this module's import light.

All parameters are drawn from seeded generators, so every process builds the same systems.
"""

from __future__ import annotations

import importlib
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

FS = 48000
#: T60 of the benchmark FDN (s): a HomogeneousAttenuation, gains g_i = 10^(-3 m_i / (fs T60)).
T60 = 1.5
#: Range of the FDN delay lengths in samples, [low, high).
DELAY_RANGE = (500, 3000)
SOS_SECTIONS = 8
SOS_NFFT = 2 ** 16


try:  # asv's "skipped" inside a benchmark body (NotImplementedError only works in setup)
    from asv_runner.benchmarks.mark import SkipNotImplemented
except ImportError:  # run without asv (e.g. by a plain script on a device machine)
    SkipNotImplemented = NotImplementedError


# -- devices ------------------------------------------------------------------------------
def _devices() -> list:
    """The ``device`` parameter of every benchmark: "cpu" and "cuda", or the comma-separated
    list in FLAMO_BENCH_DEVICES (e.g. "cuda" on a GPU machine, where the CPU cases would
    spend its time measuring its host)."""
    devices = os.environ.get("FLAMO_BENCH_DEVICES", "cpu,cuda").split(",")
    if not devices or not set(devices) <= {"cpu", "cuda"}:
        raise ValueError(f"FLAMO_BENCH_DEVICES must list 'cpu' and/or 'cuda' separated by "
                         f"commas, got {os.environ['FLAMO_BENCH_DEVICES']!r}")
    return devices


DEVICES = _devices()

# asv itself runs one benchmark at a time (its --parallel builds environments only); this
# refuses the other way to time under contention: inside a task of the experiment runner,
# which may share the machine with other workers (FLAMO_TASK is experiments.tasks.TASK_ENV).
if os.environ.get("FLAMO_TASK"):
    raise RuntimeError(f"the benchmarks refuse to run inside a task of the experiment runner "
                       f"(FLAMO_TASK={os.environ['FLAMO_TASK']!r}): timings under contention "
                       f"from parallel workers are not comparable")


def import_baselines():
    """The ``baselines`` package of this checkout, which ``pip install .`` does not install.

    ``asv run --python=same`` finds it through ASV_PYTHONPATH; ``asv continuous`` installs
    only each commit's wheel, so the checkout holding ``benchmarks/`` is appended to
    ``sys.path`` (after site-packages: the installed ``flamo`` still wins).
    """
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.append(root)
    return importlib.import_module("baselines")


def prepare(device: str, seed: int = 0) -> torch.device:
    """Common setup of every benchmark: one thread, seeded RNGs, the device checked.

    Raises
    ------
    NotImplementedError
        For ``device="cuda"`` without a CUDA device (asv then reports the case as skipped).
    """
    if device == "cuda" and not torch.cuda.is_available():
        raise NotImplementedError("CUDA is not available")
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    if device == "cuda":
        torch.cuda.manual_seed_all(seed)
    return torch.device(device)


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so a timed body measures the computation, not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_cuda_peak(device: torch.device) -> None:
    if device.type == "cuda":
        sync(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def cuda_peak_bytes(fn, device: torch.device) -> float:
    """Peak CUDA memory allocated (bytes) while running ``fn()``, above what was live before."""
    reset_cuda_peak(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    sync(device)
    return float(torch.cuda.max_memory_allocated(device) - before)


def median_time(fn, device: torch.device, repeat: int = 5) -> float:
    """Median wall time (s) of ``fn()`` over ``repeat`` calls after one warm-up call."""
    fn()
    sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def interleaved_ratio(fn_a, fn_b, device: torch.device, repeat: int = 5) -> float:
    """Median over ``repeat`` rounds of time(fn_a) / time(fn_b), the two timed back to back
    in each round (after one warm-up call of each): on a shared machine the load changes
    between rounds, so a ratio is taken within a round, not of two separate medians."""
    def timed(fn):
        t0 = time.perf_counter()
        fn()
        sync(device)
        return time.perf_counter() - t0

    fn_a(), fn_b()
    sync(device)
    ratios = sorted(timed(fn_a) / timed(fn_b) for _ in range(repeat))
    return ratios[len(ratios) // 2]


def interleaved_table(cases: dict, base: str, rounds: int) -> list:
    """Markdown rows timing ``cases`` (name -> callable) interleaved: one warm-up call each,
    then ``rounds`` rounds that call every case once, back to back. Each row: the case's
    median time (ms) and the median, min and max over rounds of its ratio to case ``base``
    in the same round (the machine is shared: ratios are taken within a round)."""
    for step in cases.values():
        step()
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, step in cases.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    rows = [f"| case | median ms | / {base}: median [min, max] |", "|---|---|---|"]
    for name, t in times.items():
        ratios = [a / b for a, b in zip(t, times[base])]
        rows.append(f"| {name} | {1e3 * statistics.median(t):.0f} | {statistics.median(ratios):.2f} "
                    f"[{min(ratios):.2f}, {max(ratios):.2f}] |")
    return rows


# -- the FDN ------------------------------------------------------------------------------
def fdn_delays(n: int, seed: int = 0) -> torch.Tensor:
    """(n,) integer delay lengths in samples drawn from DELAY_RANGE with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(*DELAY_RANGE, (n,), generator=gen)


def library_fdn(n: int, seed: int = 0, attenuation=None, matrix="orthogonal"):
    """The benchmark FDN from :func:`flamo.reverb.build_fdn`, float32 on the CPU.

    H(z) = c^T (I - D(z) A)^-1 D(z) b, D(z) = diag(z^-m_i Gamma_i(z)), A = expm(W - W^T)
    orthogonal [Dal Santo et al., "Differentiable feedback delay network for colorless
    reverberation", DAFx 2023]; W, b, c drawn by the builder from ``seed``; fixed integer
    delays (:func:`fdn_delays`). ``attenuation``: an N x N module, default a learnable
    :class:`flamo.HomogeneousAttenuation` of T60. ``matrix``: the builder's matrix family
    (b and c do not depend on it).
    """
    from flamo.reverb import build_fdn

    loss = (dict(t60=T60, learnable_attenuation=True) if attenuation is None
            else dict(attenuation=attenuation))
    return build_fdn(delays=fdn_delays(n, seed), seed=seed, matrix=matrix, **loss)


#: Where :func:`arrange_fdn` puts the attenuation filters of the loop (the builder's
#: layout, "forward", first).
ARRANGEMENTS = ("forward", "feedback_before", "feedback_after")


def arrange_fdn(system, arrangement: str):
    """The builder's FDN with its attenuation moved to where ``arrangement`` says.

    ``system`` is a :func:`library_fdn` (``Series`` input, loop, output); its loop is
    ``Recursion(Series(delays, attenuation), matrix)``. "forward" returns it unchanged;
    otherwise :func:`flamo.reverb.build_fdn` builds the FDN of the same delays and gains
    (lossless lines) with the feedback path ``Series(attenuation, matrix)`` for
    "feedback_before" (the filters act before the matrix) or ``Series(matrix, attenuation)``
    for "feedback_after", FLAMO's own examples' layout. The attenuation and matrix modules
    are reused.
    """
    from flamo import Series
    from flamo.reverb import build_fdn, fdn_structure

    if arrangement not in ARRANGEMENTS:
        raise ValueError(f"arrange_fdn: arrangement must be one of {ARRANGEMENTS}, "
                         f"got {arrangement!r}")
    if arrangement == "forward":
        return system
    loop = system["loop"]
    attenuation, matrix = loop.forward_path["attenuation"], loop.feedback_path
    feedback = Series({"attenuation": attenuation, "matrix": matrix}
                      if arrangement == "feedback_before"
                      else {"matrix": matrix, "attenuation": attenuation})
    fdn = fdn_structure(system)
    with torch.no_grad():
        return build_fdn(delays=[int(m) for m in fdn.m.tolist()], matrix=feedback,
                         input_gains=fdn.b.detach().clone(), output_gains=fdn.c.detach().clone(),
                         dtype=fdn.b.dtype)


class FDNParams:
    """The benchmark FDN's numbers as plain tensors (float32, on ``device``), read from the
    builder's system: delays ``m``, the orthogonal matrix's ``base`` and learnable ``w``
    (A = base expm(w - w^T)), per-line gains ``g``, input and output gains ``b``, ``c``."""

    def __init__(self, n: int, device: torch.device, seed: int = 0):
        from flamo.reverb import fdn_structure

        self.n, self.seed, self.device = n, seed, device
        fdn = fdn_structure(library_fdn(n, seed), fs=FS)
        with torch.no_grad():
            values = dict(m=fdn.m, base=fdn.feedback.base, w=fdn.feedback.raw, g=fdn.gains,
                          b=fdn.b[:, 0], c=fdn.c[0])
        for name, value in values.items():
            setattr(self, name, value.detach().to(torch.float32).clone().to(device))

    def leaves(self):
        """Fresh learnable copies (W, g, b, c) of the parameters."""
        return [t.detach().clone().requires_grad_(True) for t in (self.w, self.g, self.b, self.c)]

    def library_system(self):
        """The same FDN through the library (learnable W, T60, b, c; fixed delays)."""
        return library_fdn(self.n, self.seed).to(self.device)


def floor_fdn_response(m, base, w, g, b, c, nfft: int) -> torch.Tensor:
    """The FDN response written directly in torch, no library code: the floor.

    A = base expm(w - w^T); z^-m per line (phase 2 pi (k m mod nfft) / nfft in float64, then
    complex64), the loop matrix I - diag(d) A at every frequency, one batched
    ``torch.linalg.solve`` with the input-gain column as right-hand side, then the output
    gains.

    Returns
    -------
    torch.Tensor
        (M,) complex64 response, M = nfft // 2 + 1.
    """
    n_bins = nfft // 2 + 1
    k = torch.arange(n_bins, dtype=torch.float64, device=m.device).unsqueeze(-1)
    phase = (2 * math.pi / nfft) * torch.remainder(k * m.to(torch.float64), nfft)
    z_m = torch.polar(torch.ones_like(phase), -phase).to(torch.complex64)  # (M, N)
    a = (base @ torch.linalg.matrix_exp(w - w.T)).to(torch.complex64)
    d = z_m * g.to(torch.complex64)  # (M, N) diagonal of D(z)
    eye = torch.eye(len(g), dtype=torch.complex64, device=m.device)
    loop = eye - d.unsqueeze(-1) * a  # (M, N, N)
    x = torch.linalg.solve(loop, (d * b.to(torch.complex64)).unsqueeze(-1))  # (M, N, 1)
    return (c.to(torch.complex64) @ x).squeeze(-1)


def spectral_loss(h: torch.Tensor) -> torch.Tensor:
    """A colorless-style loss: mean squared deviation of |H| from 1."""
    return ((h.abs() - 1) ** 2).mean()


# -- the biquad cascade -------------------------------------------------------------------
def random_sos(channels: int, sections: int = SOS_SECTIONS, seed: int = 0,
               device="cpu") -> torch.Tensor:
    """(channels, sections, 6) stable biquads (pole radii in [0.5, 0.99)), float32."""
    gen = torch.Generator().manual_seed(seed)
    shape = (channels, sections)
    r = 0.5 + 0.49 * torch.rand(shape, generator=gen)
    theta = math.pi * torch.rand(shape, generator=gen)
    b = torch.randn(*shape, 3, generator=gen)
    a = torch.stack([torch.ones(shape), -2 * r * torch.cos(theta), r * r], dim=-1)
    return torch.cat([b, a], dim=-1).to(device)


def floor_sos_response(sos: torch.Tensor, nfft: int) -> torch.Tensor:
    """Plain complex64 product of section responses, (channels, M): the floor of the cascade."""
    n_bins = nfft // 2 + 1
    w = torch.arange(n_bins, dtype=torch.float32, device=sos.device) * (2 * math.pi / nfft)
    zi = torch.polar(torch.ones_like(w), -w)
    powers = torch.stack([torch.ones_like(zi), zi, zi * zi])  # (3, M)
    coeffs = sos.to(torch.complex64)
    return torch.prod((coeffs[..., :3] @ powers) / (coeffs[..., 3:] @ powers), dim=-2)


# -- host memory --------------------------------------------------------------------------
def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def host_peak_bytes(fn) -> float:
    """Peak resident memory (bytes) of this process while running ``fn()``, above the
    resident memory before it (Linux: resets the high-water mark through
    /proc/self/clear_refs). Tensors above glibc's mmap threshold return to the OS when
    freed, so the large buffers of one call do not hide those of the next.

    Raises
    ------
    NotImplementedError
        Where /proc/self/clear_refs is not available (not Linux).
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError as err:
        raise NotImplementedError(f"cannot reset the peak RSS: {err}") from err
    before = _status_kib("VmRSS")
    fn()
    return 1024.0 * (_status_kib("VmHWM") - before)
