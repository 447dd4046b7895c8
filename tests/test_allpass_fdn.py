"""AllpassFDNMatrix and the allpass FDN around it: |H| = 1 (paraunitary) for any parameters."""

import numpy as np
import pytest
import torch

import flamo
from flamo.reverb import allpass_fdn
from conftest import response_with

G64 = flamo.Grid(nfft=512, dtype=torch.float64)  # the unit circle


def test_matrix_has_the_published_block_form():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    g = np.array([0.5, -0.3, 0.9])
    s = flamo.AllpassFDNMatrix(3, orthogonal=torch.tensor(q), gains=torch.tensor(g)).matrix.detach().numpy()
    G = np.diag(g)
    ref = np.block([[-q @ G, q], [np.eye(3) - G @ G, G]])
    np.testing.assert_allclose(s, ref, atol=1e-14)


# |g| up to 0.995 on the unit circle: poles close to it, which the loop check rightly notes
@pytest.mark.filterwarnings("ignore::flamo.exceptions.LoopResolutionWarning")
@pytest.mark.parametrize("delays", [[1], [7], [3, 8, 5, 2]])
def test_allpass_fdn_is_paraunitary_and_the_closed_form(delays):
    system = allpass_fdn(delays, seed=len(delays), dtype=torch.float64)
    matrix = system["loop"].forward_path
    with torch.no_grad():  # far from the initial values: the mappings keep the form, hence allpass
        matrix.raw.normal_(std=3.0)
        matrix.raw_gains.copy_(torch.tensor([6.0, -4.0, 2.5, -0.1][:len(delays)]))
    h = system.response(G64)
    eye = torch.eye(len(delays), dtype=h.dtype)
    assert (h.mH @ h - eye).abs().max() < 1e-10
    if len(delays) == 1:
        assert (h.abs() - 1).abs().max() < 1e-10
    q, g = matrix.orthogonal.detach().numpy(), matrix.gains.detach().numpy()
    z = G64.z.numpy()[:, None] ** -np.asarray(delays, dtype=float)  # (M, n) z^-m
    ref = q[None] * ((z - g) / (1 - g * z))[:, None, :]  # Q diag(Schroeder allpass)
    np.testing.assert_allclose(h.detach().numpy(), ref, atol=1e-10)


def test_allpass_fdn_time_domain_matches_a_difference_equation():
    """n = 1: y[t] = -g x[t] + (1 - g^2) s[t - m] ... with s[t] = x[t] + g s[t - m]."""
    system = allpass_fdn([4], matrix=flamo.AllpassFDNMatrix(1, orthogonal=[[1.0]], gains=[0.6]),
                         dtype=torch.float64)
    grid = flamo.Grid(nfft=4096, alias_decay_db=100, dtype=torch.float64)
    h = system.impulse_response(grid)[:200, 0, 0].detach().numpy()
    x = np.zeros(200)
    x[0] = 1
    s, y, g, m = np.zeros(200), np.zeros(200), 0.6, 4
    for t in range(200):
        s_m = s[t - m] if t >= m else 0.0
        s[t] = x[t] + g * s_m
        y[t] = -g * x[t] + (1 - g * g) * s_m
    np.testing.assert_allclose(h, y, atol=1e-9)


def test_gradcheck_and_errors():
    system = allpass_fdn([3, 5], seed=0, dtype=torch.float64)
    names = [n for n, _ in system.named_parameters()]
    assert sorted(names) == ["loop.forward_path.raw", "loop.forward_path.raw_gains"]
    grid = flamo.Grid(nfft=16, alias_decay_db=10, dtype=torch.float64)
    inputs = tuple(p.detach().clone().requires_grad_(True) for p in system.parameters())
    assert torch.autograd.gradcheck(lambda *v: response_with(system, names, v, grid), inputs)
    with pytest.raises(ValueError, match=r"gains must be \(2,\) values in \(-1, 1\)"):
        flamo.AllpassFDNMatrix(2, gains=[0.5, 1.0])
    with pytest.raises(ValueError, match="must be orthogonal"):
        flamo.AllpassFDNMatrix(2, orthogonal=[[1.0, 1.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="AllpassFDNMatrix of n = 2"):
        allpass_fdn([3, 5], matrix=flamo.AllpassFDNMatrix(3))
