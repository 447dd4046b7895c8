r"""Wall time and accuracy: frequency sampling vs the time-domain baselines, same system.

The system is the FDN of the colorless-FDN paper (Dal Santo, Prawda, Schlecht, Valimaki,
"Differentiable feedback delay network for colorless reverberation", DAFx 2023): N = 6
delay lines of 887, 911, 941, 1699, 1951, 2053 samples, an orthogonal feedback matrix
(drawn by :func:`flamo.reverb.build_fdn` from seed 0), input and output gains b = c = 1 and
per-line gains 0.9999^m.  It is built once with the library's builder and evaluated

* by frequency sampling (``system.impulse_response(grid)``, nfft = 2^16 >= 1 s at 48 kHz,
  alias_decay_db = 60),
* in the time domain by the block FDN on the same parameters (:func:`baselines.render`).

An FDN is not a biquad cascade, so the recursive-IIR baseline is measured twice: the FDN
with per-line attenuation filters inside the loop (K peaking-EQ cuts per line, run by the
block FDN's in-loop IIR recursion), and separately a K-biquad cascade alone, via
:func:`baselines.sosfilt` (scipy, torch cascade, and torch one section at a time) vs the
library's ``flamo.SOS`` module.

Timing: torch with 1 thread, median of ``--repeats`` runs after one warm-up, of the
forward pass (IR only, under ``torch.no_grad``) and of forward + backward of the loss
``sum(h[:T]^2)`` w.r.t. the module parameters.  Accuracy: max |h - h_ref| over the first
T samples, where h_ref is the float64 time-domain IR (for the SOS cascade:
scipy.signal.sosfilt in float64), and for the FDN rows the max relative difference of the
parameter gradients from those of the float64 time-domain run.

Denormals are flushed to zero (``torch.set_flush_denormal(True)`` sets the CPU's
flush-to-zero flags, which also covers the scipy calls on the same thread), as audio code
usually does: otherwise the float32 cascades slow down several-fold once the IR decays
below ~1e-38.

Prints a table; writes nothing.  Run: ``python -m baselines.bench_colorless``.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time

import numpy as np
import scipy.signal
import torch

import flamo
from flamo.reverb import build_fdn

from .convert import render
from .iir import lfilter

DELAYS = (887, 911, 941, 1699, 1951, 2053)
FS = 48000
NFFT = 2**16
ALIAS_DECAY_DB = 60.0


def peaking_cut(f0: float, gain_db: float, q: float, fs: float = FS) -> np.ndarray:
    """One peaking-EQ biquad (RBJ Audio EQ Cookbook), (6,) scipy layout, a0 = 1.

    A cut (``gain_db <= 0``) has magnitude in [10^(gain_db/20), 1] at every frequency, so
    a cascade of cuts inside an FDN loop only adds loss.
    """
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2 * math.pi * f0 / fs
    alpha = math.sin(w0) / (2 * q)
    b = np.array([1 + alpha * amp, -2 * math.cos(w0), 1 - alpha * amp])
    a = np.array([1 + alpha / amp, -2 * math.cos(w0), 1 - alpha / amp])
    return np.r_[b, a] / a[0]


def attenuation_sos(delays, sections: int, fs: float = FS) -> np.ndarray:
    """(N, K, 6) per-line attenuation: K octave-spaced peaking cuts from 63 Hz up.

    The extra decay rate rises linearly from 0 dB/s in the lowest band to 60 dB/s in the
    highest (a shorter reverberation time at high frequencies); a line of m samples
    gets a cut of -m / fs * rate dB per band.
    """
    centers = 62.5 * 2.0 ** np.arange(sections)
    rates = np.linspace(0.0, 60.0, sections)  # dB per second
    return np.stack([[peaking_cut(f, -m / fs * r, math.sqrt(2), fs) for f, r in zip(centers, rates)]
                     for m in delays])


def paper_fdn(sos=None) -> flamo.Series:
    """The colorless-FDN paper system from the library's builder (float32 as built), with
    the (N, K, 6) attenuation filters ``sos`` after the line gains when given; every value
    learnable except the delays."""
    gains = flamo.Gain(0.9999 ** np.asarray(DELAYS, dtype=float))
    attenuation = gains if sos is None else flamo.Series(gains, flamo.SOS(sos))
    return build_fdn(delays=DELAYS, attenuation=attenuation, input_gains=1.0, output_gains=1.0,
                     seed=0)


def median_time(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in seconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(module, ir, T: int, repeats: int):
    """Forward and forward+backward times of ``ir()`` (IR of ``module``), the IR, grads."""
    def forward():
        with torch.no_grad():
            return ir()

    def forward_backward():
        module.zero_grad()
        (ir()[:T] ** 2).sum().backward()

    t_fwd = median_time(forward, repeats)
    t_fb = median_time(forward_backward, repeats)
    h = forward()[:T].double()
    grads = torch.cat([p.grad.double().flatten() for p in module.parameters()])
    return t_fwd, t_fb, h, grads


def per_section_sosfilt(sos: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One torch-backend :func:`lfilter` per section (the torch sosfilt before the
    cascade-as-one-system backend), for comparison."""
    for k in range(sos.shape[-2]):
        x = lfilter(sos[..., k, :3], sos[..., k, 3:], x, backend="torch")
    return x


def run(T: int = FS, sections: int = 8, repeats: int = 5) -> list:
    """All measurements; one dict per row."""
    rows = []
    grid = {dt: flamo.Grid(NFFT, fs=FS, alias_decay_db=ALIAS_DECAY_DB, dtype=dt)
            for dt in (torch.float64, torch.float32)}
    sos = attenuation_sos(DELAYS, sections)

    for label, system in (("FDN", paper_fdn()),
                          (f"FDN + {sections} SOS/line", paper_fdn(sos))):
        ref_h = ref_g = None
        for dtype, dname in ((torch.float64, "float64"), (torch.float32, "float32")):
            mod = copy.deepcopy(system).to(dtype)
            for method, ir in (("time-domain block (render)", lambda m=mod: render(m, T)),
                               ("frequency sampling", lambda m=mod, g=grid[dtype]:
                                m.impulse_response(g)[:, 0, 0])):
                t_fwd, t_fb, h, grads = measure(mod, ir, T, repeats)
                if ref_h is None:  # float64 time domain comes first
                    ref_h, ref_g = h, grads
                rows.append(dict(system=label, method=method, dtype=dname, fwd_ms=1e3 * t_fwd,
                                 fwd_bwd_ms=1e3 * t_fb,
                                 max_abs_diff=(h - ref_h).abs().max().item(),
                                 grad_rel_diff=((grads - ref_g).abs().max()
                                                / ref_g.abs().max()).item(),
                                 peak=ref_h.abs().max().item()))

    # the K-biquad cascade alone (the attenuation filter of the longest line)
    cascade = sos[-1]
    x = np.zeros(T)
    x[0] = 1.0
    ref_h = torch.from_numpy(scipy.signal.sosfilt(cascade, x))
    for dtype, dname in ((torch.float64, "float64"), (torch.float32, "float32")):
        mod = flamo.SOS(cascade).to(dtype)
        impulse = torch.zeros(T, dtype=dtype)
        impulse[0] = 1.0
        variants = (
            ("sosfilt scipy (render)", lambda m=mod: render(m, T, backend="scipy")),
            ("sosfilt torch cascade (render)", lambda m=mod: render(m, T, backend="torch")),
            ("sosfilt torch per-section", lambda m=mod, u=impulse: per_section_sosfilt(m.sos, u)),
            ("frequency sampling", lambda m=mod, g=grid[dtype]: m.impulse_response(g)[:, 0, 0]),
        )
        for method, ir in variants:
            t_fwd, t_fb, h, _ = measure(mod, ir, T, repeats)
            rows.append(dict(system=f"{sections}-biquad cascade", method=method, dtype=dname,
                             fwd_ms=1e3 * t_fwd, fwd_bwd_ms=1e3 * t_fb,
                             max_abs_diff=(h - ref_h).abs().max().item(),
                             grad_rel_diff=float("nan"), peak=ref_h.abs().max().item()))
    return rows


def format_table(rows: list) -> str:
    """Fixed-width text table of the rows."""
    cols = [("system", 22, "s"), ("method", 31, "s"), ("dtype", 8, "s"), ("fwd_ms", 9, ".2f"),
            ("fwd_bwd_ms", 11, ".2f"), ("max_abs_diff", 13, ".3e"), ("grad_rel_diff", 14, ".3e")]
    lines = [" ".join(name.ljust(w) if f == "s" else name.rjust(w) for name, w, f in cols)]
    for r in rows:
        lines.append(" ".join(format(r[name], f"<{w}{f}" if f == "s" else f">{w}{f}")
                              for name, w, f in cols))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=FS, help="IR length T in samples")
    parser.add_argument("--sections", type=int, default=8, help="biquads per line / cascade")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    rows = run(args.length, args.sections, args.repeats)
    print(f"T = {args.length} samples at {FS} Hz; frequency sampling: nfft = {NFFT}, "
          f"alias_decay_db = {ALIAS_DECAY_DB:g}; torch {torch.__version__}, 1 thread, "
          f"median of {args.repeats}")
    print(f"peak |h|: FDN {rows[0]['peak']:.3g}, cascade {rows[-1]['peak']:.3g}; "
          f"max_abs_diff vs float64 time domain (cascade: scipy float64), grad_rel_diff = "
          f"max |grad - grad_ref| / max |grad_ref|")
    print(format_table(rows))


if __name__ == "__main__":
    main()
