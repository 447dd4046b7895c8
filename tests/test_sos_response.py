"""flamo.functional.sos_response: the shifted-basis evaluation and its custom backward."""

import numpy as np
import pytest
import scipy.signal
import torch

import flamo
import flamo.functional.sos as sos_mod
from flamo.functional import biquad, sos_response
from tests.conftest import random_stable_sos, sosfreqz_on

FS = 48000.0


def _low_and_high_sections():
    """(8, 6) float64 RBJ sections with poles and zeros near (not on) z = 1 and z = -1."""
    kinds = [("peak", 20.0, 12.0), ("peak", 31.25, -9.0), ("lowshelf", 25.0, -6.0),
             ("peak", 40.0, 4.0), ("lowshelf", 60.0, 6.0), ("peak", 16000.0, -6.0),
             ("peak", 23500.0, 9.0), ("highshelf", 22000.0, -12.0)]
    f64 = dict(dtype=torch.float64)
    sos = torch.cat([biquad(kind, torch.tensor([f], **f64), torch.tensor([0.9], **f64),
                            torch.tensor([g], **f64), FS) for kind, f, g in kinds])
    return sos / sos[:, 3:4]  # a0 = 1, scipy's convention


def _relative_error(h, ref):
    return np.max(np.abs(h - ref) / np.abs(ref))


def test_complex64_accuracy_near_dc_and_nyquist():
    """complex64 keeps ~1e-6 relative accuracy where the direct form loses ~1e-3."""
    sos = _low_and_high_sections()
    grid = flamo.Grid(nfft=2 ** 16, fs=FS)
    ref = sosfreqz_on(sos.numpy(), grid)
    error = _relative_error(sos_response(sos, grid).numpy(), ref)
    # The direct form b0 + b1 z^-1 + b2 z^-2 with float32 coefficients in complex64:
    zi = 1 / grid.replace(dtype=torch.float64).z.numpy()
    c = sos.numpy().astype(np.float32)
    direct = np.prod([(s[0] + s[1] * zi + s[2] * zi * zi) / (s[3] + s[4] * zi + s[5] * zi * zi)
                      for s in c], axis=0)
    assert error < 1e-5
    assert _relative_error(direct, ref) > 100 * error


@pytest.mark.parametrize("radius, tol", [(0.9, 2e-5), (0.99, 1e-4), (0.999, 1e-3)])
def test_complex64_accuracy_random_sections(radius, tol):
    """Poles at any angle: the error grows like eps / (1 - r), as in the direct form."""
    rng = np.random.default_rng(1)
    sos = random_stable_sos(rng, 8, max_radius=radius)
    sos[:, 5] = radius ** 2  # every pole at the given radius
    grid = flamo.Grid(nfft=2 ** 14)
    ref = sosfreqz_on(sos, grid)
    h = sos_response(torch.from_numpy(sos), grid).numpy()
    assert h.dtype == np.complex64
    assert _relative_error(h, ref) < tol


@pytest.fixture
def small_blocks(monkeypatch):
    """Force many frequency blocks (and a short last one) on small grids."""
    monkeypatch.setattr(sos_mod, "BLOCK_ELEMENTS", 1)


def test_blocks_match_scipy_with_batch_shapes(small_blocks):
    rng = np.random.default_rng(2)
    sos = np.stack([[random_stable_sos(rng, 3) for _ in range(2)] for _ in range(3)])  # (3, 2, 3, 6)
    grid = flamo.Grid(nfft=300, alias_decay_db=0.0, dtype=torch.float64)  # M = 151: 3 blocks
    h = sos_response(torch.from_numpy(sos), grid)
    assert h.shape == (3, grid.M, 2)  # frequency before the channel axis
    for i in range(3):
        for j in range(2):
            np.testing.assert_allclose(h[i, :, j].numpy(), sosfreqz_on(sos[i, j], grid), rtol=1e-12)


def test_gradcheck_in_blocks(small_blocks):
    sos = torch.from_numpy(np.stack([random_stable_sos(np.random.default_rng(s), 2) for s in (3, 4)]))
    grid = flamo.Grid(nfft=256, alias_decay_db=20.0, dtype=torch.float64)
    sos.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: sos_response(s, grid), (sos,))


def test_gradient_with_a_zero_on_the_grid(small_blocks):
    """A lowpass has b(z) = 0 at z = -1, a grid point when gamma = 1: h / N_k is 0 / 0 there."""
    f64 = dict(dtype=torch.float64)
    sos = torch.cat([biquad("lowpass", torch.tensor([3000.0], **f64), torch.tensor([0.7], **f64),
                            torch.tensor([0.0], **f64), FS),
                     torch.from_numpy(random_stable_sos(np.random.default_rng(5), 1))])
    grid = flamo.Grid(nfft=256, fs=FS, dtype=torch.float64)
    assert sos_response(sos, grid)[-1].abs() < 1e-15
    sos.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: sos_response(s, grid), (sos,))


def test_second_derivatives():
    sos = torch.from_numpy(random_stable_sos(np.random.default_rng(6), 2)).requires_grad_(True)
    grid = flamo.Grid(nfft=32, alias_decay_db=10.0, dtype=torch.float64)
    assert torch.autograd.gradgradcheck(lambda s: sos_response(s, grid), (sos,))


def test_float32_gradient_agrees_with_float64():
    """Gradients w.r.t. the physical parameters (freq, Q, gain) of low- and high-frequency
    peak filters on a diagonal: float32 within 1e-4 of float64. (Gradients w.r.t. raw
    direct-form coefficients are ill-conditioned in float32 whatever the evaluation.)"""
    freq = [20.0, 31.25, 45.0, 16000.0, 23000.0]
    target = torch.linspace(0.5, 2.0, 8193, dtype=torch.float64)
    grads = []
    for dtype in (torch.float32, torch.float64):
        module = flamo.Biquad("peak", torch.tensor(freq, dtype=torch.float64), q=0.9,
                              gain_db=torch.tensor([6.0, -3.0, 9.0, -6.0, 4.0], dtype=torch.float64)).to(dtype)
        h = module.response(flamo.Grid(nfft=2 ** 14, fs=FS, dtype=dtype))
        mag = torch.diagonal(h, dim1=-2, dim2=-1).abs()
        ((mag - target.to(dtype)[:, None]) ** 2).mean().backward()
        grads.append(torch.cat([p.grad.double().flatten() for p in module.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-4 * grads[1].abs().max().item())


def test_shifted_coefficients_pick_the_smaller_end():
    """u = 1 - z^-1 around DC for a polynomial small there, v = 1 + z^-1 near Nyquist."""
    poly = torch.tensor([[1.0, -1.99, 0.995], [1.0, 1.99, 0.995]], dtype=torch.float64)
    coef = sos_mod.shifted_coefficients(poly)
    assert torch.all(coef[0, 3:] == 0) and torch.all(coef[1, 1:3] == 0)
    for c, p in zip(coef, poly):  # same polynomial at a few points
        for w in (0.0, 0.3, np.pi):
            zi = np.exp(-1j * w)
            u, v = 1 - zi, 1 + zi
            value = c[0] + c[1] * u + c[2] * u * u + c[3] * v + c[4] * v * v
            assert abs(value - (p[0] + p[1] * zi + p[2] * zi * zi)) < 1e-14


@pytest.mark.parametrize("fold_into_basis", [True, False], ids=["cpu-order", "gpu-order"])
def test_both_backward_orders(monkeypatch, fold_into_basis):
    """The backward's two orders of multiplication (CPU's, GPU's) give the same gradient."""
    monkeypatch.setattr(sos_mod, "BLOCK_ELEMENTS", 1)
    monkeypatch.setattr(sos_mod, "fold_weight_into_basis", lambda device: fold_into_basis)
    sos = torch.from_numpy(np.stack([random_stable_sos(np.random.default_rng(s), 3) for s in (7, 8)]))
    grid = flamo.Grid(nfft=256, alias_decay_db=20.0, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s: sos_response(s, grid), (sos.requires_grad_(True),))
