"""Tests of flamo.reverb.analysis: modal decomposition and echo density."""

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

import flamo
from conftest import fdn_simulate, fdn_transfer_numpy
from flamo.reverb import build_fdn, echo_density, fdn_modes, fdn_structure, modal_decomposition


def state_space(m, A, b, c, g):
    """Explicit sum(m) x sum(m) state-space FDN: the state holds every delay-line sample.

    X[n] = (s_i[n-1], ..., s_i[n-m_i])_i, s[n] = A o[n] + b x[n], o_i[n] = g_i s_i[n-m_i],
    y[n] = d x[n] + c^T o[n]; H(z) = d + C (zI - T)^-1 B.
    """
    K = int(sum(m))
    start = np.concatenate([[0], np.cumsum(m)[:-1]])
    last = start + np.asarray(m) - 1
    T, B, C = np.zeros((K, K)), np.zeros(K), np.zeros(K)
    for i, mi in enumerate(m):
        T[start[i], last] = A[i] * g  # new s_i[n] from every line's output
        for k in range(1, mi):
            T[start[i] + k, start[i] + k - 1] = 1.0  # shift along the line
        B[start[i]] = b[i]
        C[last[i]] = c[i] * g[i]
    return T, B, C


def match(a, b):
    """Index j(i) of the nearest b to each a; asserts it is one-to-one."""
    j = np.abs(a[:, None] - b[None, :]).argmin(1)
    assert len(set(j.tolist())) == len(a)
    return j


@pytest.mark.parametrize("m, kind, seed", [([3, 5, 7, 11], "orthogonal", 0),
                                           ([13, 17, 19, 23, 29], "free", 1),
                                           ([2, 9], "free", 2)])
def test_modes_match_state_space_eigendecomposition(m, kind, seed):
    rng = np.random.default_rng(seed)
    n = len(m)
    A = ortho_group.rvs(n, random_state=seed) if kind == "orthogonal" else rng.normal(size=(n, n)) / n
    b, c = rng.normal(size=n), rng.normal(size=n)
    g = rng.uniform(0.6, 0.99, n)
    T, B, C = state_space(m, A, b, c, g)
    lam, V = np.linalg.eig(T)
    rho = (C @ V) * np.linalg.solve(V, B)
    modes = fdn_modes(m, A, b, c, g=g)
    assert modes.converged and modes.poles.size == sum(m)
    j = match(modes.poles, lam)
    np.testing.assert_allclose(modes.poles, lam[j], atol=1e-10)
    np.testing.assert_allclose(modes.residues, rho[j], atol=1e-9 * np.abs(rho).max())


def test_partial_fractions_reconstruct_library_response_and_impulse_response():
    m = [97, 131, 211, 283, 307]  # 1029 poles
    fdn = build_fdn(delays=m, t60=0.05, seed=3, direct_gain=0.4, dtype=torch.float64)
    modes = modal_decomposition(fdn, fs=8000)
    assert modes.converged and modes.poles.size == sum(m)
    # lossy FDN with an orthogonal matrix: every pole on the circle of radius 10^(-3 / (fs T60))
    np.testing.assert_allclose(np.abs(modes.poles), 10 ** (-3 / (8000 * 0.05)), rtol=1e-10)
    grid = flamo.Grid(512, fs=8000, dtype=torch.float64)
    H = fdn.response(grid)[:, 0, 0].detach().numpy()
    np.testing.assert_allclose(modes.transfer(grid.z.numpy()), H, atol=1e-9 * np.abs(H).max())
    p = fdn_structure(fdn, fs=8000)
    x = np.zeros(700)
    x[0] = 1
    h = fdn_simulate(x, m, p.A.detach().numpy(), p.b.detach().numpy()[:, 0],
                     p.c.detach().numpy()[0], float(p.d.detach()), p.gains.numpy())
    np.testing.assert_allclose(modes.impulse_response(700), h, atol=1e-10)


def test_lossless_modes_on_unit_circle_and_transfer_off_circle():
    m = np.array([41, 53, 67])
    A = ortho_group.rvs(3, random_state=5)
    rng = np.random.default_rng(5)
    b, c = rng.normal(size=3), rng.normal(size=3)
    modes = fdn_modes(m, A, b, c)
    np.testing.assert_allclose(np.abs(modes.poles), 1.0, atol=1e-12)
    z = 1.01 * np.exp(1j * np.linspace(0.1, 3.0, 7))
    np.testing.assert_allclose(modes.transfer(z), fdn_transfer_numpy(z, m, A, b, c, 0.0, np.ones(3)),
                               rtol=1e-8)
    # a real FDN has conjugate-symmetric poles
    gap = np.abs(modes.poles.conj()[:, None] - modes.poles[None, :]).min(1)
    assert gap.max() < 1e-10


@pytest.mark.parametrize("kwargs, match", [
    (dict(delays=[0, 3]), "delays must be a 1-D array of integers >= 1"),
    (dict(delays=[2.5, 3]), "delays must be a 1-D array of integers >= 1"),
    (dict(A=np.eye(3)), r"A must have shape \(2, 2\)"),
    (dict(b=np.ones(3)), r"b must have shape \(2,\)"),
    (dict(g=[1.0, -0.5]), "g must be"),
])
def test_fdn_modes_errors(kwargs, match):
    args = dict(delays=[2, 3], A=np.eye(2), b=np.ones(2), c=np.ones(2))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fdn_modes(**args)


def test_echo_density_of_gaussian_noise_is_about_one():
    rng = np.random.default_rng(0)
    fs = 48000
    noise = rng.normal(size=fs) * np.exp(-np.arange(fs) / fs)  # a slow decay: still ~1
    eta, t = echo_density(noise, fs, hop=16)
    assert abs(eta.mean() - 1) < 0.02 and np.percentile(eta, 5) > 0.85
    assert t.shape == eta.shape
    centre = (round(0.02 * fs) - 1) / 2
    np.testing.assert_allclose(t[:2], [centre / fs, (centre + 16) / fs])


def test_echo_density_of_sparse_clicks_is_about_zero():
    fs = 16000
    clicks = np.zeros(fs)
    clicks[::1000] = np.random.default_rng(1).choice([-1.0, 1.0], clicks[::1000].size)
    eta, _ = echo_density(clicks, fs)
    assert eta.max() < 0.02
    # a Hann window weighs each click by at most 2 / L: one click gives at most 2 / (L erfc(2^-1/2))
    assert eta.max() <= 2 / (0.02 * fs) / 0.3173 + 1e-9


def test_echo_density_errors():
    with pytest.raises(ValueError, match="window"):
        echo_density(np.ones(100), 16000)
    with pytest.raises(ValueError, match="h must be 1-D"):
        echo_density(np.ones((2, 1000)), 16000)
    with pytest.raises(ValueError, match="hop must be an int >= 1"):
        echo_density(np.ones(1000), 16000, hop=0)
