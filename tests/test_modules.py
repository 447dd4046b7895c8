"""Each module against an independent reference: scipy.signal, closed forms, linear algebra."""

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import flamo
from flamo.functional import Interval, LowerBound, hadamard
from conftest import random_stable_sos, response_with, sosfreqz_on

G64 = flamo.Grid(nfft=512, fs=48000, dtype=torch.float64)


def test_gain_full_and_diagonal():
    mat = torch.randn(3, 2, dtype=torch.float64)
    h = flamo.Gain(mat).response(G64)
    assert h.shape == (G64.M, 3, 2) and h.dtype == torch.complex128
    assert torch.equal(h[5].real, mat)
    diag = flamo.Gain([0.5, -2.0]).double()
    assert diag.shape == (2, 2) and diag.diagonal
    np.testing.assert_array_equal(diag.response(G64)[0].real.detach().numpy(), np.diag([0.5, -2.0]))


def test_gain_mapping_inverse_roundtrip():
    gains = torch.tensor([0.1, 0.5, 0.99], dtype=torch.float64)
    module = flamo.Gain(gains, mapping=Interval(0, 1))
    torch.testing.assert_close(module.gains, gains)
    with torch.no_grad():
        module.raw.fill_(1e3)  # any raw value stays inside (0, 1]
    assert (module.gains <= 1).all()
    torch.testing.assert_close(LowerBound(2.0)(LowerBound(2.0).inverse(torch.tensor([2.5, 800.0]))),
                               torch.tensor([2.5, 800.0]))


@pytest.mark.parametrize("n", [1, 2, 4, 12, 20, 28, 36, 64])
def test_hadamard_orders(n):
    h = hadamard(n)
    torch.testing.assert_close(h @ h.T, torch.eye(n, dtype=h.dtype))
    assert torch.allclose(h.abs(), torch.full_like(h, n ** -0.5))


@pytest.mark.parametrize("n", [3, 6, 10, 52])
def test_hadamard_unavailable_orders_raise(n):
    with pytest.raises(ValueError, match=f"n={n}"):
        flamo.Matrix(n, kind="hadamard")


@pytest.mark.parametrize("kind", ["orthogonal", "householder", "hadamard"])
def test_matrix_families_are_orthogonal(kind):
    A = flamo.Matrix(8, kind=kind, seed=3).double().matrix
    torch.testing.assert_close(A @ A.T, torch.eye(8, dtype=torch.float64))


def test_orthogonal_stays_orthogonal_after_steps_and_accepts_any_init():
    q = torch.as_tensor(scipy.stats.ortho_group.rvs(5, random_state=1))
    q[0] *= -1 if torch.linalg.det(q) > 0 else 1  # det = -1: unreachable by expm alone
    module = flamo.Matrix(5, init=q).double()
    torch.testing.assert_close(module.matrix, q)
    opt = torch.optim.SGD(module.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        module.matrix[0, 1].backward()
        opt.step()
    A = module.matrix
    assert not torch.allclose(A, q)
    torch.testing.assert_close(A @ A.T, torch.eye(5, dtype=torch.float64))


def test_householder_closed_form():
    u = torch.tensor([1.0, 2.0, -2.0], dtype=torch.float64)
    A = flamo.Matrix(3, kind="householder", init=u).double().matrix
    expected = np.eye(3) - 2 * np.outer(u, u) / 9.0
    np.testing.assert_allclose(A.detach().numpy(), expected, atol=1e-15)


def test_seeded_random_init_is_reproducible():
    a, b = flamo.Matrix(4, seed=7), flamo.Matrix(4, seed=7)
    assert torch.equal(a.matrix, b.matrix)
    assert torch.equal(flamo.Gain.random((2, 3), seed=1).gains, flamo.Gain.random((2, 3), seed=1).gains)
    d = flamo.Delay.random(5, 100, 200, seed=2)
    assert d.delays.min() >= 100 and d.delays.max() < 200


@pytest.mark.parametrize("db", [0.0, 40.0])
def test_delay_closed_form(db):
    g = flamo.Grid(nfft=1000, alias_decay_db=db, dtype=torch.float64)
    m = np.array([0.0, 1.0, 37.0, 999.0, 2.5])
    h = flamo.Delay(m).double().response(g)
    expected = g.z.numpy()[:, None] ** (-m[None, :])
    np.testing.assert_allclose(np.diagonal(h.numpy(), axis1=1, axis2=2), expected, rtol=1e-12)
    assert h[:, 0, 1].abs().max() == 0  # diagonal module


def test_integer_delay_phase_is_exact_in_float32():
    """A long integer delay keeps an exact phase: the IR is an exact unit impulse."""
    g = flamo.Grid(nfft=2**15)
    ir = flamo.Delay([30011.0]).impulse_response(g)[:, 0, 0]
    assert ir.argmax().item() == 30011
    assert abs(ir[30011].item() - 1) < 1e-5
    assert ir.abs().sort().values[-2].item() < 1e-6


def test_delay_gradient_matches_closed_form():
    g = flamo.Grid(nfft=64, alias_decay_db=20, dtype=torch.float64)
    module = flamo.Delay(torch.tensor([3.3], dtype=torch.float64), learnable=True,
                         mapping=flamo.functional.identity)  # the gradient w.r.t. the length itself
    h = module.response(g)[:, 0, 0]
    w = torch.linspace(0, 1, g.M, dtype=torch.float64)
    (h.real * w).sum().backward()
    z = g.z.numpy()
    dh = (np.log(g.gamma) - 1j * g.omega.numpy()) * z ** -3.3  # d/dm z^-m
    np.testing.assert_allclose(module.raw.grad.item(), (dh.real * w.numpy()).sum(), rtol=1e-10)


def test_sos_matches_sosfreqz_single_and_diagonal():
    rng = np.random.default_rng(0)
    sos = random_stable_sos(rng, 4)
    sos[:, :3] *= 3.0
    sos[:, 3:] *= 3.0  # a0 = 3: normalization must not change the response
    h = flamo.SOS(sos).double().response(G64)
    assert h.shape == (G64.M, 1, 1)
    ref = sosfreqz_on(sos / sos[:, 3:4], G64)  # scipy requires a0 = 1
    np.testing.assert_allclose(h[:, 0, 0].detach().numpy(), ref, rtol=1e-10, atol=1e-12)
    bank = np.stack([random_stable_sos(rng, 3) for _ in range(5)])
    hd = flamo.SOS(bank).double().response(G64)
    assert hd.shape == (G64.M, 5, 5)
    for i in range(5):
        np.testing.assert_allclose(hd[:, i, i].detach().numpy(), sosfreqz_on(bank[i], G64), rtol=1e-10, atol=1e-12)
    assert hd[:, 0, 1].abs().max() == 0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 6))
def test_sos_property_random_stable(seed, k):
    sos = random_stable_sos(np.random.default_rng(seed), k, max_radius=0.99)
    h = flamo.SOS(sos).double().response(G64)[:, 0, 0].detach().numpy()
    ref = sosfreqz_on(sos, G64)
    np.testing.assert_allclose(h, ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())


def test_sos_off_circle_matches_polynomial_evaluation():
    """At radius 1/gamma the SOS equals the rational function evaluated at z (numpy polyval)."""
    g = flamo.Grid(nfft=256, alias_decay_db=50, dtype=torch.float64)
    sos = random_stable_sos(np.random.default_rng(3), 2)
    zi = 1 / g.z.numpy()
    ref = np.prod([np.polyval(s[2::-1], zi) / np.polyval(s[:2:-1], zi) for s in sos], axis=0)
    np.testing.assert_allclose(flamo.SOS(sos).double().response(g)[:, 0, 0].detach().numpy(), ref, rtol=1e-10)


def test_float32_agrees_with_float64():
    sos = random_stable_sos(np.random.default_rng(1), 3)
    g32 = flamo.Grid(nfft=2048)
    g64 = g32.replace(dtype=torch.float64)
    for module in [flamo.SOS(sos), flamo.Delay([5.0, 1234.0]), flamo.Matrix(4, seed=0)]:
        h32 = module.response(g32)
        h64 = module.double().response(g64)
        assert h32.dtype == torch.complex64
        torch.testing.assert_close(h32.to(torch.complex128), h64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: flamo.Gain(torch.randn(2, 3)),
    lambda: flamo.Gain(torch.rand(3), mapping=Interval(0, 1)),
    lambda: flamo.Matrix(3, kind="orthogonal", seed=0),
    lambda: flamo.Matrix(3, kind="householder", seed=0),
    lambda: flamo.Matrix(3, kind="free", seed=0),
    lambda: flamo.Delay([2.3, 5.7], learnable=True),
    lambda: flamo.SOS(random_stable_sos(np.random.default_rng(0), 2)),
    lambda: flamo.SOS(np.stack([random_stable_sos(np.random.default_rng(i), 2) for i in range(2)])),
], ids=["gain", "gain-sigmoid", "orthogonal", "householder", "free", "delay", "sos", "sos-diag"])
def test_gradcheck_every_module(make):
    module = make().double()
    g = flamo.Grid(nfft=16, alias_decay_db=10, dtype=torch.float64)
    names = [n for n, _ in module.named_parameters()]
    assert names, "module has no learnable parameter"
    inputs = tuple(p.detach().clone().requires_grad_(True) for p in module.parameters())
    assert torch.autograd.gradcheck(lambda *v: response_with(module, names, v, g), inputs,
                                    eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("make, match", [
    (lambda: flamo.Delay([-1.0, 2.0]), "delays must be >= 0"),
    (lambda: flamo.Delay([np.nan]), "finite"),
    (lambda: flamo.Delay([[1.0]]), "dimensions"),
    (lambda: flamo.SOS([[1, 0, 0, 0, 0, 0]]), "a0"),
    (lambda: flamo.SOS([[1, 0, 0, 1, 0, 1.2]]), "unstable"),
    (lambda: flamo.SOS([[1, 0, 0, 1, 0]]), "6 columns"),
    (lambda: flamo.Gain([[np.inf]]), "finite"),
    (lambda: flamo.Gain(torch.zeros(2, 2, 2)), "dimensions"),
    (lambda: flamo.Gain("abc"), "real|array"),
    (lambda: flamo.Matrix(0), "positive int"),
    (lambda: flamo.Matrix(3, kind="spiral"), "kind must be one of"),
    (lambda: flamo.Matrix(3, kind="orthogonal", init=torch.ones(3, 3)), "orthogonal"),
    (lambda: flamo.Matrix(3, kind="free", init=torch.ones(2, 2)), r"shape \(3, 3\)"),
    (lambda: flamo.Matrix(3, kind="householder", init=torch.zeros(3)), "nonzero"),
])
def test_bad_module_input(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_one_dtype_rule_for_given_values():
    """Everywhere in flamo (modules and functional designs): tensors keep their dtype, numpy
    arrays theirs, Python numbers and lists and integers take the default float32."""
    from flamo.functional import t60_to_gain

    assert flamo.Gain([1, 2]).gains.dtype == torch.float32
    assert flamo.Gain(np.array([1.0, 2.0])).gains.dtype == torch.float64
    assert flamo.Delay(torch.tensor([3.0, 5.0], dtype=torch.float64)).delays.dtype == torch.float64
    assert t60_to_gain([100, 200], 1.0, 48000).dtype == torch.float32
    exact = t60_to_gain(torch.tensor([100.0], dtype=torch.float64), 0.3, 48000)
    assert exact.dtype == torch.float64 and exact.item() == 10 ** (-3 * 100 / (48000 * 0.3))
    # a module never shares memory with the tensor it was given
    given = torch.tensor([0.5, 0.25])
    gain = flamo.Gain(given)
    given.fill_(9.0)
    assert gain.gains.tolist() == [0.5, 0.25]
