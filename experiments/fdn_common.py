"""Helpers shared by the aliasing experiments (not an experiment itself).

An FDN with homogeneous decay is built twice from the same values: as a flamo system
(frequency sampling) and as plain float64 tensors for the time-domain block baseline
(:func:`baselines.fdn_impulse_response`), which is the ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import flamo
from flamo.optim.decay import schroeder_edc
from baselines import fdn_impulse_response

__all__ = ["FDN", "make_fdn", "relative_l2_db", "edc_db", "DTYPE_NAMES"]

DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64"}


@dataclass
class FDN:
    """One FDN: the flamo system and the plain float64 values it was built from.

    Attributes
    ----------
    system : flamo.Series
        b (N x 1) -> Recursion(Delay, diag(g); A) -> c (1 x N), shape (1, 1), float64 values.
    delays : list of int
        Delay lengths m_i (samples).
    A : torch.Tensor
        (N, N) orthogonal feedback matrix, float64.
    b, c, g : torch.Tensor
        (N,) input, output and per-line gains, float64; g_i = 10^(-3 m_i / (fs T60)).
    t60, fs : float
        Reverberation time (s) and sample rate (Hz).
    """

    system: flamo.Series
    delays: list
    A: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor
    g: torch.Tensor
    t60: float
    fs: float

    def ground_truth(self, length: int) -> np.ndarray:
        """(length,) float64 impulse response from the time-domain block baseline."""
        h = fdn_impulse_response(int(length), self.delays, self.A, self.b, self.c, 0.0, g=self.g)
        return h.numpy()

    def impulse_response(self, grid) -> torch.Tensor:
        """(nfft,) impulse response by frequency sampling on ``grid`` (no autograd)."""
        with torch.no_grad():
            return self.system.impulse_response(grid)[:, 0, 0]

    def response(self, grid) -> torch.Tensor:
        """(M,) sampled transfer function on ``grid`` (no autograd)."""
        with torch.no_grad():
            return self.system.response(grid)[:, 0, 0]


def make_fdn(delays, t60: float, fs: float = 48000.0, seed: int = 0) -> FDN:
    """FDN with orthogonal A (``flamo.Matrix(kind="orthogonal", seed=seed)``), b = c = 1 and
    per-line gains g_i = 10^(-3 m_i / (fs T60)), so every mode decays at the same rate."""
    delays = [int(m) for m in delays]
    n = len(delays)
    A = flamo.Matrix(n, kind="orthogonal", seed=seed).matrix.detach().double()
    g = torch.tensor([10.0 ** (-3.0 * m / (fs * t60)) for m in delays], dtype=torch.float64)
    b = torch.ones(n, dtype=torch.float64)
    c = torch.ones(n, dtype=torch.float64)
    system = flamo.Series({
        "input": flamo.Gain(b.reshape(n, 1), learnable=False),
        "loop": flamo.Recursion(
            flamo.Series({"delays": flamo.Delay(delays), "gains": flamo.Gain(g, learnable=False)}),
            flamo.Matrix(n, kind="free", init=A, learnable=False)),
        "output": flamo.Gain(c.reshape(1, n), learnable=False),
    })
    return FDN(system.double(), delays, A, b, c, g, float(t60), float(fs))


def relative_l2_db(estimate, truth) -> float:
    """20 log10(||estimate - truth|| / ||truth||) over the common length (dB)."""
    estimate = np.asarray(estimate, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    return float(20 * np.log10(np.linalg.norm(estimate - truth) / np.linalg.norm(truth)))


def edc_db(h) -> np.ndarray:
    """Schroeder energy decay curve in dB (0 dB at n = 0) of a numpy IR, float64."""
    return schroeder_edc(torch.as_tensor(np.asarray(h, dtype=np.float64)), db=True).numpy()
