"""Tests of experiments/colorless_scattering.py: the modes of the scattering FDN
(flamo.reverb.loop_modes) against those of the same FDN unrolled into a constant-matrix FDN
(fdn_modes) and against its frequency-sampled response."""

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


def unrolled_fdn(system) -> dict:
    """The scattering FDN as an FDN with a constant feedback matrix and (K + 2) N lines: the
    main delays (gains g, input b, output c), then the stage delays D_0..D_K (gain 1); main
    lines -> D_0 (identity), D_{k-1} -> D_k through U_k, D_K -> main lines (identity): the
    same signal flow, so the same poles and residues (an independent route to them)."""
    fdn = flamo.reverb.fdn_structure(system)
    stage = fdn.feedback.delays.double().numpy()
    u = fdn.feedback.matrices.detach().double().numpy()
    m = fdn.m.double().numpy()
    n, groups = m.size, stage.shape[0] + 1
    big = np.zeros((groups * n, groups * n))
    block = lambda i: slice(i * n, (i + 1) * n)  # noqa: E731
    big[block(1), block(0)] = np.eye(n)
    for k in range(u.shape[0]):
        big[block(k + 2), block(k + 1)] = u[k]
    big[block(0), block(groups - 1)] = np.eye(n)
    pad = np.zeros((groups - 1) * n)
    return {"delays": np.concatenate([m, stage.reshape(-1)]).astype(np.int64), "A": big,
            "b": np.concatenate([fdn.b.detach().double().numpy()[:, 0], pad]),
            "c": np.concatenate([fdn.c.detach().double().numpy()[0], pad]),
            "g": np.concatenate([fdn.gains.double().numpy(), np.ones_like(pad)]), "d": 0.0}


def test_scattering_modes_match_the_unrolled_fdn_and_the_response():
    system = cs.initial_fdn(_small(), seed=3, dtype=torch.float64)
    args = unrolled_fdn(system)
    stage = flamo.reverb.fdn_structure(system).feedback.delays
    assert args["delays"].sum() == 7 + 11 + 13 + 17 + int(stage.sum())
    decomposition = fdn_modes(**args)
    assert decomposition.converged and decomposition.poles.size == args["delays"].sum()
    grid = flamo.Grid(256, dtype=torch.float64)
    expected = system.response(grid)[:, 0, 0].detach().numpy()
    np.testing.assert_allclose(decomposition.transfer(grid.z.numpy()), expected, rtol=1e-8, atol=1e-10)
    assert np.abs(decomposition.poles).max() < 1  # lossy main lines, lossless stages
    used = cs.modes(system)  # loop_modes
    assert used.converged and used.poles.size == decomposition.poles.size
    np.testing.assert_allclose(np.sort(20 * np.log10(np.abs(used.residues))),
                               np.sort(20 * np.log10(np.abs(decomposition.residues))), atol=1e-6)
    # modal_decomposition takes the generic route for a filter feedback matrix (it raised)
    routed = flamo.reverb.modal_decomposition(system)
    np.testing.assert_allclose(np.sort(20 * np.log10(np.abs(routed.residues))),
                               np.sort(20 * np.log10(np.abs(decomposition.residues))), atol=1e-6)


def test_modes_of_both_arms_and_validation():
    for feedback in cs.FEEDBACKS:
        system = cs.initial_fdn(_small(feedback), seed=1, dtype=torch.float64)
        d = cs.modes(system)
        grid = flamo.Grid(128, dtype=torch.float64)
        np.testing.assert_allclose(d.transfer(grid.z.numpy()), system.response(grid)[:, 0, 0].detach().numpy(),
                                   rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="feedbacks"):
        cs.tasks(dataclasses.replace(cs.Config.quick(), feedbacks=("velvet",)))
