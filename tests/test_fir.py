"""FIR module against scipy.signal.freqz and direct polynomial evaluation."""

import numpy as np
import pytest
import scipy.signal
import torch

import flamo
from conftest import response_with

G64 = flamo.Grid(nfft=256, dtype=torch.float64)


def _freqz(h, grid):
    return scipy.signal.freqz(h, worN=grid.omega.numpy())[1]


def test_single_fir_matches_freqz():
    h = np.random.default_rng(0).normal(size=37)
    r = flamo.FIR(h).double().response(G64)
    assert r.shape == (G64.M, 1, 1) and r.dtype == torch.complex128
    np.testing.assert_allclose(r[:, 0, 0].detach().numpy(), _freqz(h, G64), rtol=1e-10, atol=1e-12)


def test_diagonal_and_full_fir_match_freqz_per_entry():
    rng = np.random.default_rng(1)
    diag = rng.normal(size=(3, 9))
    r = flamo.FIR(diag).double().response(G64)
    assert r.shape == (G64.M, 3, 3) and flamo.FIR(diag).diagonal
    for i in range(3):
        np.testing.assert_allclose(r[:, i, i].detach().numpy(), _freqz(diag[i], G64), rtol=1e-10, atol=1e-12)
    assert r[:, 0, 1].abs().max() == 0
    full = rng.normal(size=(2, 4, 5))
    rf = flamo.FIR(full).double().response(G64)
    assert rf.shape == (G64.M, 2, 4) and not flamo.FIR(full).diagonal
    for i in range(2):
        for j in range(4):
            np.testing.assert_allclose(rf[:, i, j].detach().numpy(), _freqz(full[i, j], G64), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("length", [20, 64, 65, 200])
def test_off_circle_and_longer_than_nfft_match_direct_evaluation(length):
    """sum_n h[n] z^-n at z = e^jw / gamma, including L > nfft (folded)."""
    g = flamo.Grid(nfft=64, alias_decay_db=30, dtype=torch.float64)
    h = np.random.default_rng(length).normal(size=length)
    z = g.z.numpy()
    ref = (h[None, :] * z[:, None] ** -np.arange(length)[None, :]).sum(1)
    got = flamo.FIR(h).double().response(g)[:, 0, 0].detach().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())


def test_impulse_response_is_the_taps():
    h = torch.randn(2, 10, dtype=torch.float64)
    g = flamo.Grid(nfft=32, alias_decay_db=20, dtype=torch.float64)
    ir = flamo.FIR(h).double().impulse_response(g)
    torch.testing.assert_close(ir[:10, 1, 1], h[1])
    assert ir[10:].abs().max() < 1e-12


@pytest.mark.parametrize("shape", [(5,), (2, 4), (2, 3, 3)])
def test_gradcheck(shape):
    module = flamo.FIR(torch.randn(shape)).double()
    g = flamo.Grid(nfft=8, alias_decay_db=10, dtype=torch.float64)
    raw = module.raw.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: response_with(module, ["raw"], (v,), g), (raw,))


@pytest.mark.parametrize("taps, match", [
    ([np.nan, 1.0], "finite"),
    (np.zeros((1, 1, 1, 2)), "dimensions"),
    (np.zeros((0,)), "at least one tap"),
    ([1 + 1j], "real"),
])
def test_bad_input(taps, match):
    with pytest.raises((ValueError, TypeError), match=match):
        flamo.FIR(taps)
