"""Tests of baselines.iir against scipy.signal (float64 ground truth). Signals are time
first, (T,) or (..., T, C); scipy's are time last, so references are transposed."""

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from baselines import lfilter, sosfilt

BACKENDS = ["scipy", "torch"]
f64 = torch.float64


def random_sos(rng, K, rmax=0.95):
    """K random stable biquads: conjugate pole pairs and zeros, radius < rmax."""
    sos = np.zeros((K, 6))
    for k in range(K):
        rp, tp = rng.uniform(0.0, rmax), rng.uniform(0, np.pi)
        rz, tz = rng.uniform(0.0, 1.5), rng.uniform(0, np.pi)
        sos[k, :3] = rng.uniform(0.5, 2.0) * np.array([1, -2 * rz * np.cos(tz), rz**2])
        sos[k, 3:] = rng.uniform(0.5, 2.0) * np.array([1, -2 * rp * np.cos(tp), rp**2])
    return sos


def unit_a0(sos):
    """Normalize each section by a0 (scipy.signal.sosfilt requires a0 = 1)."""
    return sos / sos[..., 3:4]


biquad = st.tuples(
    st.floats(0.0, 0.94), st.floats(0.0, np.pi),  # pole radius, angle
    st.floats(-2.0, 2.0), st.floats(-2.0, 2.0), st.floats(-2.0, 2.0),  # numerator
    st.floats(0.25, 4.0),  # a0 (checks normalization)
)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.filterwarnings("ignore:lfilter.*more channels")  # T = 1 with 2 channels is legal
@settings(max_examples=25, deadline=None)
@given(q=biquad, T=st.integers(1, 300), seed=st.integers(0, 2**16))
def test_lfilter_matches_scipy_random_biquads(backend, q, T, seed):
    r, th, b0, b1, b2, a0 = q
    b = np.array([b0, b1, b2])
    a = a0 * np.array([1.0, -2 * r * np.cos(th), r * r])
    x = np.random.default_rng(seed).standard_normal((T, 2))
    y = lfilter(torch.tensor(b), torch.tensor(a), torch.tensor(x), backend=backend)
    ref = scipy.signal.lfilter(b, a, x, axis=0)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


@pytest.mark.parametrize("backend", BACKENDS)
def test_lfilter_batched_broadcast(backend):
    rng = np.random.default_rng(1)
    sos = random_sos(rng, 6)
    # (3, 2, nb) with (3, 1, na) and x (T, 2): per-filter coefficients over (batch, channel)
    b = rng.standard_normal((3, 2, 3))
    a = sos[:3, None, 3:]
    x = rng.standard_normal((500, 2))
    y = lfilter(torch.tensor(b), torch.tensor(a), torch.tensor(x), backend=backend)
    assert y.shape == (3, 500, 2)
    for i in range(3):
        for j in range(2):
            ref = scipy.signal.lfilter(b[i, j], a[i, 0], x[:, j])
            np.testing.assert_allclose(y[i, :, j].numpy(), ref, rtol=1e-10, atol=1e-10)
    # a 1-D signal through C filters: one output channel per filter, (T, C)
    y = lfilter(torch.tensor(b[0]), torch.tensor(a[0]), torch.tensor(x[:, 0]), backend=backend)
    assert y.shape == (500, 2)
    np.testing.assert_allclose(y[:, 1].numpy(), scipy.signal.lfilter(b[0, 1], a[0, 0], x[:, 0]),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lfilter_high_order_and_fir(backend):
    rng = np.random.default_rng(2)
    b, a = scipy.signal.sos2tf(random_sos(rng, 4, rmax=0.9))  # order 8
    x = rng.standard_normal((1000, 3))
    y = lfilter(torch.tensor(b), torch.tensor(a), torch.tensor(x), backend=backend)
    np.testing.assert_allclose(y.numpy(), scipy.signal.lfilter(b, a, x, axis=0), rtol=1e-9, atol=1e-9)
    # FIR (na = 1) and nb < na
    y = lfilter(torch.tensor(b), torch.tensor([2.0], dtype=f64), torch.tensor(x), backend=backend)
    np.testing.assert_allclose(y.numpy(), scipy.signal.lfilter(b, [2.0], x, axis=0), atol=1e-12)
    y = lfilter(torch.tensor([0.5], dtype=f64), torch.tensor(a), torch.tensor(x), backend=backend)
    np.testing.assert_allclose(y.numpy(), scipy.signal.lfilter([0.5], a, x, axis=0), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sosfilt_matches_scipy(backend):
    rng = np.random.default_rng(3)
    sos = random_sos(rng, 4)
    x = rng.standard_normal((700, 3))
    y = sosfilt(torch.tensor(sos), torch.tensor(x), backend=backend)
    np.testing.assert_allclose(y.numpy(), scipy.signal.sosfilt(unit_a0(sos), x, axis=0),
                               rtol=1e-9, atol=1e-9)
    # one cascade per channel
    sos3 = np.stack([random_sos(rng, 2) for _ in range(3)])
    y = sosfilt(torch.tensor(sos3), torch.tensor(x), backend=backend)
    for i in range(3):
        np.testing.assert_allclose(y[:, i].numpy(), scipy.signal.sosfilt(unit_a0(sos3[i]), x[:, i]),
                                   rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32(backend):
    rng = np.random.default_rng(4)
    sos = random_sos(rng, 2, rmax=0.9)
    x = rng.standard_normal(300)
    y = sosfilt(torch.tensor(sos, dtype=torch.float32), torch.tensor(x, dtype=torch.float32),
                backend=backend)
    assert y.dtype == torch.float32
    ref = scipy.signal.sosfilt(unit_a0(sos), x)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batched", [False, True])
def test_lfilter_gradcheck(backend, batched):
    rng = np.random.default_rng(5)
    nf = 2 if batched else 1
    sos = random_sos(rng, nf, rmax=0.9)
    b = torch.tensor(np.concatenate([sos[:, :3], rng.standard_normal((nf, 1))], -1),
                     requires_grad=True)  # nb = 4 > na = 3
    a = torch.tensor(sos[:, 3:], requires_grad=True)
    if not batched:
        b, a = b[0].detach().requires_grad_(), a[0].detach().requires_grad_()
    x = torch.randn(12, 2 if not batched else 1, dtype=f64, requires_grad=True)  # short: gradgradcheck is O(T^2)
    fn = lambda b_, a_, x_: lfilter(b_, a_, x_, backend=backend)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (b, a, x))
    assert torch.autograd.gradgradcheck(fn, (b, a, x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_sosfilt_gradcheck(backend):
    rng = np.random.default_rng(6)
    sos = torch.tensor(random_sos(rng, 3, rmax=0.9), requires_grad=True)
    x = torch.randn(30, 2, dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s, x_: sosfilt(s, x_, backend=backend), (sos, x))


def test_backends_agree_on_gradients():
    rng = np.random.default_rng(7)
    sos = random_sos(rng, 2)
    x = torch.tensor(rng.standard_normal((400, 2)))
    grads = []
    for backend in BACKENDS:
        s = torch.tensor(sos, requires_grad=True)
        (sosfilt(s, x, backend=backend) ** 2).sum().backward()
        grads.append(s.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-9)


def test_bad_inputs():
    x = torch.randn(10, dtype=f64)
    b = torch.tensor([1.0, 0.5], dtype=f64)
    with pytest.raises(ValueError, match="unstable|stable"):
        lfilter(b, torch.tensor([1.0, -1.2], dtype=f64), x)
    with pytest.raises(ValueError, match=r"a\[..., 0\]"):
        lfilter(b, torch.tensor([0.0, 0.5], dtype=f64), x)
    with pytest.raises(TypeError, match="b"):
        lfilter([1.0, 0.5], torch.tensor([1.0], dtype=f64), x)
    with pytest.raises(TypeError, match="x"):
        lfilter(b, torch.tensor([1.0], dtype=f64), torch.arange(10))
    with pytest.raises(ValueError, match="backend"):
        lfilter(b, torch.tensor([1.0], dtype=f64), x, backend="numba")
    with pytest.raises(ValueError, match="broadcast"):
        lfilter(torch.ones(3, 2, dtype=f64), torch.ones(1, dtype=f64), torch.ones(10, 4, dtype=f64))
    with pytest.raises(ValueError, match="finite"):
        lfilter(b, torch.tensor([1.0, float("nan")], dtype=f64), x)
    with pytest.raises(ValueError, match="sos"):
        sosfilt(torch.ones(2, 5, dtype=f64), x)
    unstable = torch.tensor([[1.0, 0, 0, 1.0, 0, 0], [1.0, 0, 0, 1.0, 0.0, -1.1]], dtype=f64)
    with pytest.raises(ValueError, match="section 1"):
        sosfilt(unstable, x)
    # the check can be disabled
    lfilter(b, torch.tensor([1.0, -1.2], dtype=f64), x, check_stability=False)


def test_torch_cascade_long_and_batched():
    """The torch sosfilt runs K sections as one state-space system: check a long cascade
    with batch broadcasting, T not a multiple of the block length, against scipy, and its
    autograd gradients against the adjoint-filter gradients of the scipy backend."""
    rng = np.random.default_rng(8)
    K, T = 8, 1000
    sos = np.stack([[random_sos(rng, K, rmax=0.9) for _ in range(3)] for _ in range(2)])
    x = rng.standard_normal((T, 3))
    y = sosfilt(torch.tensor(sos), torch.tensor(x), backend="torch")  # (2, 3, K, 6) with (T, 3)
    assert y.shape == (2, T, 3)
    for i in range(2):
        for j in range(3):
            ref = scipy.signal.sosfilt(unit_a0(sos[i, j]), x[:, j])
            np.testing.assert_allclose(y[i, :, j].numpy(), ref, rtol=1e-9,
                                       atol=1e-10 * np.abs(ref).max())
    grads = []
    for backend in BACKENDS:
        s = torch.tensor(sos[0, 0], requires_grad=True)
        xt = torch.tensor(x, requires_grad=True)
        (sosfilt(s, xt, backend=backend) ** 2).sum().backward()
        grads.append((s.grad, xt.grad))
    for g_scipy, g_torch in zip(*grads):
        torch.testing.assert_close(g_torch, g_scipy, rtol=1e-8, atol=1e-8 * g_scipy.abs().max().item())


def test_time_last_signal_is_refused_where_detectable():
    """A (C, T) signal read as (T, C) has a 2-sample time axis: a warning names the layout."""
    x = torch.randn(2, 400, dtype=f64)
    with pytest.warns(UserWarning, match="time first"):
        lfilter(torch.tensor([1.0], dtype=f64), torch.tensor([1.0, -0.5], dtype=f64), x)
