"""Colorless-FDN glue: per-line outputs, criteria, and one optimization step."""

import numpy as np
import pytest
import torch

import flamo
from flamo.optim import Trainer
from flamo.reverb import colorless_criteria, colorless_fdn, fdn_structure, line_outputs

DELAYS = [7, 11, 13, 17]


def test_line_outputs_sum_to_the_transfer_function():
    system = colorless_fdn(DELAYS, seed=1, dtype=torch.float64)
    grid = flamo.Grid(256, dtype=torch.float64)
    lines = line_outputs(system, grid)
    assert lines.shape == (grid.M, 4)
    torch.testing.assert_close(lines.sum(-1), system.response(grid)[:, 0, 0])
    # independent closed form: c_i [(I - D A)^-1 D b]_i with numpy, D = diag(g^m z^-m)
    p = fdn_structure(system)
    z = grid.z.numpy()
    k = 37
    D = np.diag(p.gains.numpy() * z[k] ** (-p.m.numpy()))
    x = np.linalg.solve(np.eye(4) - D @ p.A.detach().numpy(), D @ p.b.detach().numpy()[:, 0])
    np.testing.assert_allclose(lines[k].detach().numpy(), p.c.detach().numpy()[0] * x, rtol=1e-10,
                               atol=1e-12)


def test_line_gains_follow_the_per_sample_gain():
    system = colorless_fdn(DELAYS, seed=0, gain_per_sample=0.99, dtype=torch.float64)
    np.testing.assert_allclose(fdn_structure(system).gains.numpy(), 0.99 ** np.array(DELAYS),
                               rtol=1e-15)
    with pytest.raises(ValueError, match="gain_per_sample"):
        colorless_fdn(DELAYS, gain_per_sample=1.5)


def test_one_step_reduces_the_loss_and_keeps_the_matrix_orthogonal():
    # a lossier loop than the paper's 0.9999 keeps the short test FDN's peaks resolvable
    system = colorless_fdn(DELAYS, seed=3, gain_per_sample=0.98, dtype=torch.float64)
    grid = flamo.Grid(512, dtype=torch.float64)
    criteria = colorless_criteria(system, sparsity_weight=0.5)
    trainer = Trainer(system, criteria, data=(torch.zeros(()), torch.zeros(())),
                      forward=lambda model, _: line_outputs(model, grid), lr=1e-3,
                      steps_per_epoch=1, progress=False)

    def total():
        with torch.no_grad():
            return sum(w * fn(line_outputs(system, grid), None) for fn, w in criteria.values())

    before = float(total())
    A0 = fdn_structure(system).feedback.matrix.detach().clone()
    trainer.fit(max_steps=1)
    after = float(total())
    A = fdn_structure(system).feedback.matrix.detach()
    assert after < before
    assert not torch.allclose(A, A0)  # the step moved A ...
    torch.testing.assert_close(A @ A.T, torch.eye(4, dtype=A.dtype))  # ... and kept it orthogonal


def test_criteria_weights_and_bad_weight():
    system = colorless_fdn(DELAYS, seed=0)
    crit = colorless_criteria(system, sparsity_weight=2.0)
    assert set(crit) == {"spectral", "sparsity"} and crit["sparsity"][1] == 2.0
    with pytest.raises(ValueError, match="sparsity_weight"):
        colorless_criteria(system, sparsity_weight=-1.0)
