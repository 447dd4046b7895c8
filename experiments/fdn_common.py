"""Helpers shared by the aliasing experiments (not an experiment itself).

Their FDN has homogeneous decay and is built by the library's builder
(:func:`flamo.reverb.build_fdn`); its ground truth is the float64 time-domain block
baseline run on the same system (:func:`baselines.render`).
"""

from __future__ import annotations

import numpy as np
import torch

from baselines import render
from flamo.optim.energy_decay import schroeder_edc
from flamo.reverb import build_fdn

__all__ = ["homogeneous_fdn", "ground_truth", "relative_l2_db", "edc_db", "DTYPE_NAMES"]

DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64"}


def homogeneous_fdn(delays, t60: float, seed: int = 0):
    """float64 FDN with b = c = 1, an orthogonal A drawn from ``seed`` and a
    :class:`flamo.HomogeneousAttenuation` of ``t60`` seconds (at the sample rate of each
    evaluation), so every mode decays at the same rate; nothing learnable. Shape (1, 1), no
    direct path."""
    return build_fdn(delays=[int(m) for m in delays], t60=float(t60), seed=seed,
                     input_gains=1.0, output_gains=1.0, learnable_matrix=False,
                     learnable_gains=False, dtype=torch.float64)


def ground_truth(system, length: int, fs: float) -> np.ndarray:
    """(length,) impulse response of ``system`` at ``fs`` Hz from the time-domain block
    baseline, as numpy (float64 for the float64 systems of :func:`homogeneous_fdn`)."""
    with torch.no_grad():
        return render(system, int(length), fs=fs).double().numpy()


def relative_l2_db(estimate, truth) -> float:
    """20 log10(||estimate - truth|| / ||truth||) over the common length (dB)."""
    estimate = np.asarray(estimate, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    return float(20 * np.log10(np.linalg.norm(estimate - truth) / np.linalg.norm(truth)))


def edc_db(h) -> np.ndarray:
    """Schroeder energy decay curve in dB (0 dB at n = 0) of a numpy IR, float64."""
    return schroeder_edc(torch.as_tensor(np.asarray(h, dtype=np.float64)), db=True).numpy()
