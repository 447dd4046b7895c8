"""Tests of experiments/colorless_scattering.py: the unrolled scattering FDN's modes against
the frequency-sampled response of the FDN itself."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import flamo
from experiments import colorless_scattering as cs
from flamo.reverb import fdn_modes


def _small(feedback="scattering", **kw):
    cfg = dataclasses.replace(cs.Config.quick(), delays=(7, 11, 13, 17), stages=2, inner_delay_max=3,
                              gain_per_sample=0.97, energy_points=64, **kw)
    return SimpleNamespace(**{**dataclasses.asdict(cfg), "feedback": feedback})


def test_unrolled_scattering_fdn_has_the_same_transfer_function():
    system = cs.initial_fdn(_small(), seed=3, dtype=torch.float64)
    args = cs.unrolled_fdn(system)
    stage = flamo.reverb.fdn_structure(system).feedback.delays
    assert args["delays"].sum() == 7 + 11 + 13 + 17 + int(stage.sum())
    decomposition = fdn_modes(**args)
    assert decomposition.converged and decomposition.poles.size == args["delays"].sum()
    grid = flamo.Grid(256, dtype=torch.float64)
    expected = system.response(grid)[:, 0, 0].detach().numpy()
    np.testing.assert_allclose(decomposition.transfer(grid.z.numpy()), expected, rtol=1e-8, atol=1e-10)
    assert np.abs(decomposition.poles).max() < 1  # lossy main lines, lossless stages


def test_modes_of_both_arms_and_validation():
    for feedback in cs.FEEDBACKS:
        system = cs.initial_fdn(_small(feedback), seed=1, dtype=torch.float64)
        d = cs.modes(system)
        grid = flamo.Grid(128, dtype=torch.float64)
        np.testing.assert_allclose(d.transfer(grid.z.numpy()), system.response(grid)[:, 0, 0].detach().numpy(),
                                   rtol=1e-8, atol=1e-10)
    with pytest.raises(TypeError, match="Paraunitary"):
        cs.unrolled_fdn(cs.initial_fdn(_small("orthogonal"), seed=1, dtype=torch.float64))
    with pytest.raises(ValueError, match="feedbacks"):
        cs.tasks(dataclasses.replace(cs.Config.quick(), feedbacks=("velvet",)))
