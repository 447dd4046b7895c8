"""Filtering time signals on the grid against scipy.signal.lfilter and the alias formula."""

import numpy as np
import pytest
import scipy.signal
import torch

import flamo
from flamo.signal import impulse, irfft, rfft
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


def test_a_diagonal_module_filters_each_channel_without_a_dense_matrix(monkeypatch):
    """C cascades on C channels equal scipy's sosfilt channel by channel (no wrap: the tails
    have decayed below 1e-12 within nfft), and no (M, C, C) matrix is formed on the way:
    the competitor matrix measured that detour at 64 channels (4.7x the direct cost)."""
    rng = np.random.default_rng(5)
    sos = np.stack([random_stable_sos(rng, 4, max_radius=0.9) for _ in range(5)])  # (5, 4, 6)
    grid = flamo.Grid(nfft=1024, alias_decay_db=0.0, dtype=torch.float64)
    x = rng.normal(size=(200, 5))

    def no_dense(self):
        raise AssertionError("filter_signal formed a dense matrix of a diagonal response")

    monkeypatch.setattr(flamo.response.Response, "dense", no_dense)
    y = flamo.SOS(sos).double()(torch.as_tensor(x), grid).detach().numpy()
    padded = np.zeros((1024, 5))
    padded[:200] = x
    for c in range(5):
        np.testing.assert_allclose(y[:, c], scipy.signal.sosfilt(sos[c], padded[:, c]), atol=1e-10)


def test_a_loop_filters_its_input_columns_like_its_response():
    """A Recursion with N inputs on an N-channel signal (solved for the signal's column, not
    for the N x N response) equals the response applied to the spectrum, values and the
    gradient with respect to the signal."""
    grid = flamo.Grid(nfft=2048, alias_decay_db=30.0, dtype=torch.float64)
    loop = flamo.Recursion(flamo.Delay([101.0, 233.0, 317.0, 421.0]),
                           flamo.Series(flamo.Matrix(4, seed=1), flamo.Gain([0.9] * 4))).double()
    x = torch.randn(2, 700, 4, dtype=torch.float64, requires_grad=True)
    y = loop(x, grid)
    reference = irfft((loop.response(grid) @ rfft(x, grid).unsqueeze(-1)).squeeze(-1), grid)
    torch.testing.assert_close(y, reference, rtol=1e-12, atol=1e-12)
    weight = torch.randn_like(y)
    grad, = torch.autograd.grad((y * weight).sum(), x)
    grad_reference, = torch.autograd.grad((reference * weight).sum(), x)
    torch.testing.assert_close(grad, grad_reference, rtol=1e-10, atol=1e-12)


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
