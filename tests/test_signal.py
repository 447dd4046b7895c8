"""Filtering time signals on the grid against scipy.signal.lfilter and the alias formula."""

import numpy as np
import pytest
import scipy.signal
import torch

import flamo
from flamo.signal import filter_signal, impulse, irfft, rfft
from conftest import random_stable_sos


def _aliased(y_long, nfft, gamma):
    """sum_k gamma^(k nfft) y[n + k nfft] for n < nfft (the aliased, gamma-weighted sum of
    frequency sampling; Dal Santo et al., FLAMO, ICASSP 2025)."""
    wraps = len(y_long) // nfft
    return sum(gamma ** (k * nfft) * y_long[k * nfft:(k + 1) * nfft] for k in range(wraps))


@pytest.mark.parametrize("db", [0.0, 30.0, 60.0])
def test_any_input_signal_matches_lfilter_with_alias_formula(db):
    """Not only impulses: a random signal through a system equals lfilter, aliases included."""
    rng = np.random.default_rng(0)
    r, theta = 0.995, 0.3  # slow decay: the output is far from finished after nfft samples
    sos = np.array([[1.0, 0.5, 0.2, 1.0, -2 * r * np.cos(theta), r * r]])
    grid = flamo.Grid(nfft=512, alias_decay_db=db, dtype=torch.float64)
    x = rng.normal(size=300)
    y = flamo.SOS(sos).double()(torch.as_tensor(x), grid).detach().numpy()
    assert y.shape == (512,)
    x_long = np.zeros(512 * 40)
    x_long[:300] = x
    y_long = scipy.signal.sosfilt(sos, x_long)
    np.testing.assert_allclose(y, _aliased(y_long, 512, grid.gamma), atol=1e-10)
    # the error against the true output is bounded by the attenuated wraps of its tail
    err = np.abs(y - y_long[:512]).max()
    tail = np.abs(y_long[512:]).max()
    q = 10 ** (-db / 20)
    if db == 0:
        assert err > 0.1 * tail  # visible time aliasing
    else:
        assert err <= tail * q / (1 - q) + 1e-9


def test_envelope_on_input_only_would_be_wrong():
    """Weighting the output by gamma^-n without weighting the input by gamma^n fails for a
    non-impulse input: guard the design decision documented in flamo.signal."""
    grid = flamo.Grid(nfft=256, alias_decay_db=40, dtype=torch.float64)
    x = torch.zeros(256, 1, dtype=torch.float64)
    x[10] = 1.0  # a delayed impulse
    module = flamo.Delay([5.0]).double()
    y = module(x, grid)[:, 0]
    assert abs(y[15].item() - 1) < 1e-12 and y.abs().sum().item() == pytest.approx(1, abs=1e-12)
    wrong = irfft(module.response(grid)[:, 0, :] * torch.fft.rfft(x, n=256, dim=0), grid, dim=0)[:, 0]
    assert abs(wrong[15].item() - 1) > 1e-3


def test_rfft_irfft_roundtrip_and_impulse():
    grid = flamo.Grid(nfft=128, alias_decay_db=50, dtype=torch.float64)
    x = torch.randn(3, 100, 2, dtype=torch.float64)
    back = irfft(rfft(x, grid), grid)
    torch.testing.assert_close(back[:, :100], x)
    assert back[:, 100:].abs().max() < 1e-9
    imp = impulse(128, channels=2, dtype=torch.float64)
    torch.testing.assert_close(rfft(imp, grid), torch.ones(grid.M, 2, dtype=torch.complex128))


def test_mimo_and_batched_signals():
    grid = flamo.Grid(nfft=256, alias_decay_db=20, dtype=torch.float64)
    system = flamo.Series(flamo.Delay([3.0, 7.0]), flamo.Gain(np.array([[1.0, 2.0], [0.5, -1.0], [0.0, 1.0]])))
    system = system.double()
    x = torch.randn(4, 50, 2, dtype=torch.float64)
    y = system(x, grid)
    assert y.shape == (4, 256, 3)
    for i in range(4):  # batch consistency
        torch.testing.assert_close(y[i], system(x[i], grid))
    xs = x[0].numpy()
    y = y.detach()
    delayed = np.zeros((256, 2))
    delayed[3:53, 0] = xs[:, 0]
    delayed[7:57, 1] = xs[:, 1]
    ref = delayed @ np.array([[1.0, 2.0], [0.5, -1.0], [0.0, 1.0]]).T
    np.testing.assert_allclose(y[0].numpy(), ref, atol=1e-10)


def test_impulse_response_equals_filtering_an_impulse():
    grid = flamo.Grid(nfft=256, alias_decay_db=30)
    sos = flamo.SOS(random_stable_sos(np.random.default_rng(2), 3))
    torch.testing.assert_close(sos.impulse_response(grid)[:, 0, 0], sos(impulse(256)[:, 0], grid))


def test_signal_errors():
    grid = flamo.Grid(nfft=64)
    with pytest.raises(ValueError, match="more than nfft=64"):
        flamo.Delay([1.0])(torch.zeros(65, 1), grid)
    with pytest.raises(ValueError, match="expects 2 input channels"):
        flamo.Delay([1.0, 2.0])(torch.zeros(10, 3), grid)
    with pytest.raises(ValueError, match="single-input"):
        flamo.Delay([1.0, 2.0])(torch.zeros(10), grid)
    with pytest.raises(TypeError, match="real"):
        rfft(torch.zeros(10, 1, dtype=torch.complex64), grid)
    with pytest.raises(ValueError, match="M=33"):
        irfft(torch.zeros(30, 1, dtype=torch.complex64), grid)
