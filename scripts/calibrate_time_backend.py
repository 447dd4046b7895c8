"""Fit the cost model of ``response(grid, method="auto")`` (flamo.timedomain.backend).

Times one gradient step (response on a grid, squared-error loss, backward) by each method
for plain FDNs, FDNs with a GEQ per line and an 8-section SOS cascade, interleaved in one
process with one torch thread, and fits the seconds per feature of each method by
non-negative least squares on relative errors. Prints the data, the fit and how often the
model picks the faster method; the constants go into backend.TIME_COSTS /
FREQUENCY_COSTS and the table into docs/design.md ("Time domain").

    python scripts/calibrate_time_backend.py [--repeats 2] [--quick]   (from the checkout's root)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
import scipy.optimize
import torch

sys.path.insert(0, ".")  # the checkout, not an installed flamo
import flamo  # noqa: E402
from flamo.reverb import build_fdn  # noqa: E402
from flamo.timedomain import backend  # noqa: E402
from flamo.timedomain.render import realize_system  # noqa: E402

FS = 48000


def fdn(n, geq=False):
    rng = np.random.default_rng(n)
    delays = np.sort(rng.choice(np.arange(480, 2400), size=n, replace=False))
    kwargs = dict(delays=delays, matrix="orthogonal", input_gains=1.0, output_gains=1.0 / n,
                  seed=n, learnable_attenuation=True)
    if geq:
        kwargs["attenuation"] = lambda cfg: flamo.GEQAttenuation(cfg.delays, t60=np.linspace(2, 0.5, 10))
    else:
        kwargs["t60"] = 1.0
    return build_fdn(**kwargs)


def sos_cascade():
    rng = np.random.default_rng(0)
    r, th = rng.uniform(0.9, 0.999, 8), rng.uniform(0.01, math.pi - 0.01, 8)
    a = np.stack([np.ones(8), -2 * r * np.cos(th), r * r], 1)
    return flamo.SOS(np.concatenate([rng.normal(size=(8, 3)), a], 1)[None].astype(np.float32))


def step(system, grid, method):
    params = [p for p in system.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    t0 = time.perf_counter()
    loss = system.response(grid, method=method).abs().pow(2).sum()
    loss.backward()
    return time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a few small cases only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    # nfft up to 2^19 (8 s at 48 kHz, the longest IR of the speed comparison): a model
    # fitted on short grids only extrapolates to long ones
    cases = [("fdn", n, e) for n in (4, 16, 64) for e in (13, 15, 16) if not (n == 64 and e == 16)]
    cases += [("fdn", n, e) for n in (4, 8, 16, 32) for e in (17, 18, 19)]
    cases += [("fdn_geq", n, e) for n in (4, 16) for e in (13, 15)] + [("fdn_geq", 4, 17)]
    cases += [("sos8", 1, e) for e in (13, 15, 16, 18)]
    if args.quick:
        cases = [("fdn", 4, 13), ("fdn_geq", 4, 13), ("sos8", 1, 13)]
    rows = []
    for kind, n, e in cases:
        system = sos_cascade() if kind == "sos8" else fdn(n, geq=kind == "fdn_geq")
        grid = flamo.Grid(nfft=2 ** e, fs=FS, alias_decay_db=60)
        with torch.no_grad():
            root = realize_system(system, FS)
        times = {"frequency": [], "time": []}
        for _ in range(args.repeats + 1):  # the first round warms up
            for method in times:  # interleaved
                times[method].append(step(system, grid, method))
        measured = {m: min(t[1:]) for m, t in times.items()}
        rows.append(dict(kind=kind, n=n, nfft=2 ** e, measured=measured,
                         features={"frequency": backend.frequency_features(root, grid.M),
                                   "time": backend.time_features(root, grid.nfft)}))
        print(f"{kind:8s} N={n:3d} nfft=2^{e}: frequency {measured['frequency']:.4f} s, "
              f"time {measured['time']:.4f} s", flush=True)
    fits = {}
    for method, keys in (("frequency", list(backend.FREQUENCY_COSTS)), ("time", list(backend.TIME_COSTS))):
        a = np.array([[r["features"][method][k] / r["measured"][method] for k in keys] for r in rows])
        scale = a.max(0) + 1e-300
        c, _ = scipy.optimize.nnls(a / scale, np.ones(len(rows)))
        fits[method] = dict(zip(keys, c / scale))
    print("\nfitted seconds per feature:")
    for method, costs in fits.items():
        print(f"  {method}: " + ", ".join(f'"{k}": {v:.3g}' for k, v in costs.items()))
    print("\n| system | N | nfft | frequency (s) | time (s) | model frequency | model time | picks faster |")
    print("|---|---|---|---|---|---|---|---|")
    right = 0
    for r in rows:
        model = {m: sum(r["features"][m][k] * v for k, v in fits[m].items()) for m in fits}
        ok = min(model, key=model.get) == min(r["measured"], key=r["measured"].get)
        right += ok
        print(f"| {r['kind']} | {r['n']} | {r['nfft']} | {r['measured']['frequency']:.4f} | "
              f"{r['measured']['time']:.4f} | {model['frequency']:.4f} | {model['time']:.4f} | "
              f"{'yes' if ok else 'no'} |")
    print(f"\nthe model picks the faster method in {right} of {len(rows)} cases "
          f"(load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
