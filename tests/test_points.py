"""Evaluation at explicit points: flamo.Points, module.probe(z) and the functional layer,
against closed forms, scipy and numpy solves, and against response(grid) at the grid's points."""

import math

import numpy as np
import pytest
import scipy.signal
import torch

import flamo
from flamo.functional import delay_response, fir_response, sos_response
from flamo.reverb import allpass_fdn, build_fdn, colorless_fdn, fdn_structure, line_outputs
from conftest import fdn_transfer_numpy, random_stable_sos, response_with

FS = 48000.0


def _random_points(rng, m, low=0.8, high=1.25):
    """m points with radii in [low, high] and angles in [0, pi], complex128."""
    z = rng.uniform(low, high, m) * np.exp(1j * rng.uniform(0, np.pi, m))
    return torch.from_numpy(z)


def _close(a, b, rtol):
    a, b = np.asarray(a), np.asarray(b)
    scale = np.abs(b).max()
    np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)


# -- the point set -------------------------------------------------------------------------

@pytest.mark.parametrize("z, exc, match", [
    (torch.tensor([1, 2]), TypeError, "complex or real floating"),
    (torch.ones(2, 2, dtype=torch.complex128), ValueError, "1-D"),
    (torch.zeros(0, dtype=torch.complex128), ValueError, "non-empty"),
    (torch.tensor([1.0, 0.0], dtype=torch.complex128), ValueError, "nonzero"),
    (torch.tensor([1.0, math.inf], dtype=torch.complex128), ValueError, "finite"),
])
def test_bad_points(z, exc, match):
    with pytest.raises(exc, match=match):
        flamo.Points(z)


def test_points_dtype_follows_z_and_is_constant():
    z = torch.tensor([1.0 + 0j, 1j], dtype=torch.complex128, requires_grad=True)
    p = flamo.Points(z)
    assert p.dtype == torch.float64 and p.z.dtype == torch.complex128 and not p.z.requires_grad
    assert flamo.Points(z.detach().to(torch.complex64)).dtype == torch.float32
    assert flamo.Points(z.detach(), dtype=torch.float32).z.dtype == torch.complex64
    assert p.M == len(p) == 2 and p.fs is None
    with pytest.raises(ValueError, match="sample rate"):
        p.hz_to_rad(1000.0)


def test_inverse_powers_match_numpy_at_any_point():
    rng = np.random.default_rng(0)
    z = _random_points(rng, 50)
    m = torch.tensor([0.0, 1.0, 7.5, 2053.0], dtype=torch.float64)
    expected = z.numpy()[:, None] ** (-m.numpy())
    _close(flamo.Points(z).inverse_powers(m).numpy(), expected, 1e-12)


def test_grid_primitives_equal_the_generic_ones_at_grid_points():
    """The grid's exact phases and its FFT agree with the direct forms at its own points."""
    grid = flamo.Grid(nfft=96, alias_decay_db=20.0, dtype=torch.float64)
    points = flamo.Points(grid.z)
    m = torch.tensor([3.0, 250.0, 0.25], dtype=torch.float64)
    _close(grid.inverse_powers(m).numpy(), points.inverse_powers(m).numpy(), 1e-12)
    taps = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 200)))  # longer than nfft
    _close(grid.polynomial(taps).numpy(), points.polynomial(taps).numpy(), 1e-12)


# -- functional responses take a Grid, Points or a tensor z --------------------------------

def test_functional_responses_at_explicit_points():
    rng = np.random.default_rng(2)
    z = _random_points(rng, 40)
    zi = 1 / z.numpy()
    sos = random_stable_sos(rng, 3)
    expected = np.prod([np.polyval(s[2::-1], zi) / np.polyval(s[:2:-1], zi) for s in sos], axis=0)
    _close(sos_response(torch.from_numpy(sos), z).numpy(), expected, 1e-12)
    taps = rng.normal(size=(2, 9))  # two filters: (M, 2)
    h = fir_response(torch.from_numpy(taps), z)
    assert h.shape == (40, 2)
    _close(h.numpy(), np.stack([np.polyval(t[::-1], zi) for t in taps], -1), 1e-12)
    m = torch.tensor([[5.0, 11.0]], dtype=torch.float64)
    assert delay_response(m, z).shape == (1, 40, 2)
    _close(delay_response(m, z)[0].numpy(), zi[:, None] ** m.numpy()[0], 1e-12)


def test_functional_responses_reject_other_types():
    with pytest.raises(TypeError, match="Grid, flamo.Points"):
        sos_response(torch.ones(1, 6), [1.0, 1j])


# -- probe(z) equals response(grid) at the grid's points -----------------------------------

GRID = flamo.Grid(nfft=64, fs=FS, alias_decay_db=12.0, dtype=torch.float64)


def _modules():
    rng = np.random.default_rng(3)
    n = 3
    loop = flamo.Recursion(flamo.Series(flamo.Delay([5.0, 7.0, 11.0]),
                                        flamo.HomogeneousAttenuation([5.0, 7.0, 11.0], 0.05)),
                           flamo.Matrix(n, kind="orthogonal", seed=0))
    return {
        "gain": flamo.Gain(rng.normal(size=(2, 3))),
        "matrix": flamo.Matrix(3, kind="householder", seed=1),
        "delay": flamo.Delay([3.0, 100.0, 2.5]),
        "sos": flamo.SOS(np.stack([random_stable_sos(rng, 2) for _ in range(2)])),
        "fir full, longer than nfft": flamo.FIR(rng.normal(size=(2, 3, 90))),
        "fir single": flamo.FIR(rng.normal(size=5)),
        "biquad": flamo.Biquad("lowshelf", [200.0, 5000.0], gain_db=[-6.0, 3.0]),
        "peq": flamo.PEQ([100.0, 1000.0, 8000.0], gain_db=[3.0, -4.0, 2.0]),
        "geq": flamo.GEQ(torch.linspace(-6, 6, 10)),
        "geq attenuation": flamo.GEQAttenuation([50.0, 70.0], torch.linspace(2.0, 0.5, 10)),
        "fractional delay": flamo.FractionalDelay([4.3, 9.7], kind="thiran"),
        "delay matrix": flamo.DelayMatrix([[1.0, 2.0], [3.0, 4.5]]),
        "paraunitary": flamo.Paraunitary([[0.0, 1.0], [2.0, 3.0]], seed=0),
        "recursion in a series": flamo.Series(flamo.Gain(rng.normal(size=(3, 1))), loop,
                                              flamo.Gain(rng.normal(size=(1, 3)))),
        "parallel": flamo.Parallel(flamo.Delay([2.0]), flamo.SOS(random_stable_sos(rng, 1))),
        "rotation": flamo.Matrix(5, kind="rotation", seed=2),
        "velvet filter": flamo.VelvetNoiseFilter.random(2, 0.02, 400.0, FS, seed=0),
        "velvet matrix": flamo.VelvetNoiseMatrix(4, stages=2, spread=40, seed=0),
        "filterbank": flamo.FilterBank([500.0, 1000.0], fraction=1),
        "allpass matrix": flamo.AllpassFDNMatrix(2, seed=0),
        "allpass fdn": allpass_fdn([3, 4], seed=1),
    }


@pytest.mark.parametrize("name", list(_modules()))
def test_probe_equals_response_on_the_grid(name):
    module = _modules()[name].double()
    on_grid = module.response(GRID).detach()
    probed = module.probe(GRID.z, fs=FS).detach()
    assert probed.shape == on_grid.shape == (GRID.M, *module.shape)
    _close(probed.numpy(), on_grid.numpy(), 1e-10)


# -- closed forms at points off the unit circle --------------------------------------------

def test_probe_of_a_feedback_loop_matches_its_closed_form():
    """Recursion(g z^-m, 1): H = g z^-m / (1 - g z^-m), inside and outside the circle."""
    rng = np.random.default_rng(4)
    z = _random_points(rng, 64)
    m, g = 13.0, 0.9
    loop = flamo.Recursion(flamo.Series(flamo.Delay([m]), flamo.Gain(np.array([g]))),
                           flamo.Gain([[1.0]])).double()
    d = g * z.numpy() ** -m
    _close(loop.probe(z)[:, 0, 0].detach().numpy(), d / (1 - d), 1e-11)


@pytest.mark.parametrize("structured", [True, False])
def test_probe_of_a_nested_fdn_matches_a_numpy_solve(structured):
    rng = np.random.default_rng(5)
    n = 4
    m = [7, 11, 13, 17]
    A = np.linalg.qr(rng.normal(size=(n, n)))[0]
    b, c, g = rng.normal(size=n), rng.normal(size=n), np.full(n, 0.8)
    system = build_fdn(delays=m, matrix="free", matrix_init=A, input_gains=b, output_gains=c,
                       direct_gain=0.3, line_gains=g, dtype=torch.float64)
    fdn_structure(system).loop.structured_solve = structured
    z = _random_points(rng, 30, low=1.0, high=1.3)
    _close(system.probe(z)[:, 0, 0].detach().numpy(),
           fdn_transfer_numpy(z.numpy(), m, A, b, c, 0.3, g), 1e-10)


def test_probe_of_a_biquad_matches_scipy_freqz_in_hz():
    module = flamo.Biquad("peak", 1000.0, q=2.0, gain_db=6.0).double()
    f = np.array([20.0, 999.0, 1000.0, 15000.0])
    z = torch.from_numpy(np.exp(2j * np.pi * f / FS))
    sos = module.sos_at(FS).detach().numpy()[0]
    _, h = scipy.signal.freqz(sos[:3], sos[3:], worN=f, fs=FS)
    _close(module.probe(z, fs=FS)[:, 0, 0].detach().numpy(), h, 1e-12)


def test_gradients_at_explicit_points():
    rng = np.random.default_rng(6)
    z = _random_points(rng, 8)
    points = flamo.Points(z)
    delay = flamo.Delay([4.5, 9.25], learnable=True).double()
    assert torch.autograd.gradcheck(lambda v: response_with(delay, ["raw"], [v], points),
                                    (delay.raw.detach().clone().requires_grad_(True),))
    sos = flamo.SOS(random_stable_sos(rng, 2)).double()
    assert torch.autograd.gradcheck(lambda v: response_with(sos, ["raw"], [v], points),
                                    (sos.raw.detach().clone().requires_grad_(True),))


def test_time_domain_needs_a_grid():
    points = flamo.Points(GRID.z)
    with pytest.raises(TypeError, match="flamo.Grid"):
        flamo.Delay([1.0]).impulse_response(points)


def test_singular_loop_names_the_point():
    z = torch.tensor([1.5 + 0j, 1.0 + 0j], dtype=torch.complex128)  # 1 - z^-1 = 0 at z = 1
    loop = flamo.Recursion(flamo.Delay([1.0]), flamo.Gain([[1.0]])).double()
    with pytest.raises(ValueError, match=r"point 1 \(z = 1"):
        loop.probe(z)


# -- the colorless FDN on a minibatch of random frequencies --------------------------------

def test_colorless_line_outputs_on_random_frequencies():
    """line_outputs at 2000 random points of the unit circle: the per-line terms c_i x_i(z)
    of a numpy solve, and gradients for A, b and c from one backward."""
    delays = flamo.reverb.COLORLESS_FDN_DELAYS["N6"]
    system = colorless_fdn(delays, seed=0, dtype=torch.float64)
    rng = np.random.default_rng(7)
    z = torch.from_numpy(np.exp(1j * rng.uniform(0, np.pi, 2000)))
    lines = line_outputs(system, flamo.Points(z))
    assert lines.shape == (2000, 6)
    parts = fdn_structure(system)
    A = parts.A.detach().numpy()
    b = parts.b.detach().numpy()[:, 0]
    c = parts.c.detach().numpy()[0]
    g = parts.gains.detach().numpy()
    m = np.asarray(delays, dtype=float)
    for k in (0, 777, 1999):
        D = np.diag(g * z[k].item() ** -m)
        x = np.linalg.solve(np.eye(6) - D @ A, D @ b)
        _close(lines[k].detach().numpy(), c * x, 1e-9)
    criteria = flamo.reverb.colorless_criteria(system)
    loss = sum(w * fn(lines, None) for fn, w in criteria.values())
    loss.backward()
    grads = [p.grad for p in system.parameters()]
    assert len(grads) == 3 and all(gr is not None and torch.isfinite(gr).all() for gr in grads)
