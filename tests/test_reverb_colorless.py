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


def _released_line_outputs(W, b, c, m, gain, z):
    """The released code's model, written out: A = expm(U - U^T), U = triu(W, 1),
    H_i(z) = c_i [(diag(z^m) - A Gamma)^-1 b]_i with Gamma = diag(gain^m)."""
    u = torch.triu(W, 1)
    A = torch.linalg.matrix_exp(u - u.T).to(torch.complex128)
    G = torch.diag(gain ** m).to(torch.complex128)
    D = torch.diag_embed(z[:, None] ** m.to(torch.complex128))
    x = torch.linalg.solve(D - A @ G, b.to(torch.complex128).expand(len(z), -1)[..., None])[..., 0]
    return x * c.to(torch.complex128)


@pytest.mark.parametrize("init", ["journal", "dafx23"])
def test_published_fdn_is_the_released_model_in_value_and_gradient(init):
    from flamo.reverb import published_colorless_fdn
    m = torch.tensor([7.0, 11, 13, 17], dtype=torch.float64)
    system = published_colorless_fdn(m.long().tolist(), seed=5, init=init, gain_per_sample=0.99,
                                     dtype=torch.float64)
    parts = fdn_structure(system)
    W = parts.feedback.raw.detach().clone().requires_grad_(True)
    b = parts.input.raw.detach()[:, 0].clone().requires_grad_(True)
    c = parts.output.raw.detach()[0].clone().requires_grad_(True)
    bound = 1 / np.sqrt(4)
    if init == "journal":
        assert W.abs().max() <= bound
    rng = np.random.default_rng(0)
    z = torch.from_numpy(np.exp(1j * rng.uniform(0, np.pi, 300)))
    ours = line_outputs(system, flamo.Points(z))
    ref = _released_line_outputs(W, b, c, m, 0.99, z)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    # the same loss gives the same gradients on the same raw numbers
    loss = lambda h: ((h.abs() - 1) ** 2).mean() + ((h.sum(-1).abs() - 1) ** 2).mean()  # noqa: E731
    loss(ours).backward()
    loss(ref).backward()
    torch.testing.assert_close(parts.feedback.raw.grad.triu(1), W.grad.triu(1), rtol=1e-9, atol=1e-12)
    assert torch.count_nonzero(parts.feedback.raw.grad.tril()) == 0
    torch.testing.assert_close(parts.input.raw.grad[:, 0], b.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(parts.output.raw.grad[0], c.grad, rtol=1e-9, atol=1e-12)
    # the residues of the built system are those of the released model's transfer function
    modes = flamo.reverb.modal_decomposition(system)
    k = 3
    zk = z[k:k + 1].numpy()
    np.testing.assert_allclose(modes.transfer(zk), ref.sum(-1).detach().numpy()[k:k + 1], rtol=1e-8)


def test_published_fdn_energy_normalization_and_bad_arguments():
    from flamo.reverb import LineScale, normalize_energy, published_colorless_fdn
    system = published_colorless_fdn([7, 11, 13, 17], seed=1, gain_per_sample=0.99, dtype=torch.float64)
    grid = flamo.Grid(3998, dtype=torch.float64)  # the released code's 2000 points on [0, pi]
    normalize_energy(system, grid, 1.0)
    h = system.response(grid)[:, 0, 0].detach().abs() ** 2
    weights = torch.full((grid.M,), 2.0, dtype=torch.float64)
    weights[0] = weights[-1] = 1
    assert float((h * weights).sum() / grid.nfft) == pytest.approx(1.0, rel=1e-9)
    with pytest.raises(ValueError, match="init"):
        published_colorless_fdn([7, 11], seed=0, init="other")
    with pytest.raises(ValueError, match="gain_per_sample"):
        published_colorless_fdn([7, 11], seed=0, gain_per_sample=0.0)
    with pytest.raises(ValueError, match="LineScale"):
        LineScale([1.0, 0.0])
    scale = LineScale([2.0, 4.0])
    torch.testing.assert_close(scale.inverse(scale(torch.tensor([1.0, 3.0]))), torch.tensor([1.0, 3.0]))
    with pytest.raises(ValueError, match="preset"):
        fdn_structure(system).output.config()
