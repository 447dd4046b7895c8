"""Fractional delays: designs against closed forms and scipy, gradients against finite differences."""

import math

import numpy as np
import pytest
import scipy.signal
import torch

import flamo
from flamo.functional import lagrange_taps, thiran_coefficients
from conftest import response_with

G64 = flamo.Grid(nfft=128, dtype=torch.float64)


@pytest.mark.parametrize("order, d", [(1, 0.3), (3, 1.37), (4, 2.5), (5, 0.0)])
def test_lagrange_taps_interpolate_polynomials_exactly(order, d):
    """An order-N Lagrange interpolator reproduces n^p exactly: sum_n h[n] n^p = D^p, p <= N."""
    vander = np.vander(np.arange(order + 1.0), increasing=True).T  # (p, n)
    ref = np.linalg.solve(vander, d ** np.arange(order + 1.0))
    got = lagrange_taps(torch.tensor(d, dtype=torch.float64), order).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_thiran_coefficients_closed_form():
    order, d = 3, 3.2
    ref = [(-1) ** k * math.comb(order, k)
           * np.prod([(d - order + n) / (d - order + k + n) for n in range(order + 1)])
           for k in range(order + 1)]
    got = thiran_coefficients(torch.tensor(d, dtype=torch.float64), order).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    # maximally flat group delay: D samples at DC (scipy.signal.group_delay)
    _, gd = scipy.signal.group_delay((got[::-1], got), w=[1e-4])
    np.testing.assert_allclose(gd, d, rtol=1e-6)


@pytest.mark.parametrize("kind", ["lagrange", "thiran"])
def test_response_matches_freqz_of_integer_delay_plus_filter(kind):
    samples = np.array([3.0, 7.25, 20.5, 41.9])
    module = flamo.FractionalDelay(samples, order=3, kind=kind).double()
    h = module.response(G64).detach().numpy()
    assert module.diagonal and h.shape == (G64.M, 4, 4)
    s, d = (t.detach().numpy() for t in module.split())
    np.testing.assert_allclose(s + d, samples)
    coeffs = module.filter_coefficients().detach().numpy()
    for i in range(4):
        num, den = (np.r_[np.zeros(int(s[i])), coeffs[i]], 1.0) if kind == "lagrange" else \
            (np.r_[np.zeros(int(s[i])), coeffs[i][::-1]], coeffs[i])
        _, ref = scipy.signal.freqz(num, den, worN=G64.omega.numpy())
        np.testing.assert_allclose(h[:, i, i], ref, rtol=1e-10, atol=1e-12)


def test_designs_approximate_the_exact_delay_at_low_frequencies():
    samples = [10.3, 17.8]
    exact = flamo.Delay(samples).double().response(G64)
    low = G64.omega < 0.2 * math.pi
    for kind in ("lagrange", "thiran"):
        approx = flamo.FractionalDelay(samples, order=5, kind=kind).double().response(G64)
        err = (approx - exact)[low].abs().max().item()
        assert err < 1e-3, (kind, err)
    thiran = flamo.FractionalDelay(samples, order=5, kind="thiran").double().response(G64)
    np.testing.assert_allclose(thiran.diagonal(dim1=-2, dim2=-1).abs().detach().numpy(), 1.0, rtol=1e-12)


def test_lagrange_is_exact_and_continuous_at_integers():
    for m in [0.0, 1.0, 5.0]:
        torch.testing.assert_close(flamo.FractionalDelay([m], order=3).double().response(G64),
                                   flamo.Delay([m]).double().response(G64))
    left = flamo.FractionalDelay([5.0 - 1e-9], order=3).double().response(G64)
    right = flamo.FractionalDelay([5.0 + 1e-9], order=3).double().response(G64)
    assert (left - right).abs().max() < 1e-7


@pytest.mark.parametrize("make", [
    lambda m: flamo.Delay(m, learnable=True, mapping=flamo.functional.identity),
    lambda m: flamo.FractionalDelay(m, order=3, kind="lagrange"),
    lambda m: flamo.FractionalDelay(m, order=2, kind="thiran"),
], ids=["exact", "lagrange", "thiran"])
def test_gradient_wrt_delay_matches_central_differences(make):
    """d H / d m of every entry at every frequency (complex Jacobian by forward-mode AD)."""
    m = torch.tensor([4.3, 9.71], dtype=torch.float64)
    g = flamo.Grid(nfft=64, alias_decay_db=6, dtype=torch.float64)
    module = make(m).double()
    raw = module.raw.detach().clone()
    for i in range(2):
        tangent = torch.zeros_like(raw)
        tangent[i] = 1
        _, jvp = torch.func.jvp(lambda v: response_with(module, ["raw"], (v,), g), (raw,), (tangent,))
        plus, minus = raw.clone(), raw.clone()
        plus[i] += 1e-6
        minus[i] -= 1e-6
        fd = (response_with(module, ["raw"], (plus,), g) - response_with(module, ["raw"], (minus,), g)) / 2e-6
        torch.testing.assert_close(jvp, fd, rtol=1e-7, atol=1e-8)
        assert jvp.abs().max() > 0.1  # the gradient is not trivially zero


def test_exact_delay_gradient_is_the_phase_ramp():
    """d z^-m / dm = (log gamma - j omega) z^-m: magnitude grows linearly to ~pi at Nyquist."""
    g = flamo.Grid(nfft=64, alias_decay_db=6, dtype=torch.float64)
    module = flamo.Delay(torch.tensor([7.4], dtype=torch.float64), learnable=True,
                         mapping=flamo.functional.identity)
    raw = module.raw.detach().clone()
    _, jvp = torch.func.jvp(lambda v: response_with(module, ["raw"], (v,), g), (raw,), (torch.ones_like(raw),))
    z = g.z.numpy()
    ref = (np.log(g.gamma) - 1j * g.omega.numpy()) * z ** -7.4
    np.testing.assert_allclose(jvp[:, 0, 0].numpy(), ref, rtol=1e-9)


@pytest.mark.parametrize("kind, order", [("lagrange", 3), ("thiran", 2)])
def test_gradcheck(kind, order):
    module = flamo.FractionalDelay([2.3, 5.7], order=order, kind=kind).double()
    g = flamo.Grid(nfft=16, alias_decay_db=10, dtype=torch.float64)
    raw = module.raw.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: response_with(module, ["raw"], (v,), g), (raw,))


@pytest.mark.parametrize("make, match", [
    (lambda: flamo.FractionalDelay([-0.5]), "delays must be >= 0"),
    (lambda: flamo.FractionalDelay([np.nan]), "finite"),
    (lambda: flamo.FractionalDelay([np.inf]), "finite"),
    (lambda: flamo.FractionalDelay([[1.0]]), "dimensions"),
    (lambda: flamo.FractionalDelay([1.0], order=3, kind="thiran"), r"delays must be >= 2.5"),
    (lambda: flamo.FractionalDelay([1.0], order=0), "order must be an int >= 1"),
    (lambda: flamo.FractionalDelay([1.0], kind="sinc"), "kind must be one of"),
])
def test_bad_input(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_thiran_that_learned_too_short_a_delay_raises():
    module = flamo.FractionalDelay([3.0], order=3, kind="thiran")
    with torch.no_grad():
        module.raw.fill_(1.5)
    with pytest.raises(ValueError, match="unstable"):
        module.response(G64)
