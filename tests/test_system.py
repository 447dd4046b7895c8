"""Series, Parallel and Recursion against independent linear algebra and time-domain simulation."""

import pickle

import numpy as np
import pytest
import scipy.signal
import torch

import flamo
from conftest import (fdn_simulate, fdn_transfer_numpy, random_stable_sos, response_with,
                      sosfreqz_on)
from flamo.reverb import build_fdn

G = flamo.Grid(nfft=256, fs=48000, alias_decay_db=20, dtype=torch.float64)


def _free(n, seed, scale=1.0):
    return flamo.Matrix(n, kind="free", init=scale * np.random.default_rng(seed).normal(size=(n, n)))


def test_series_is_product_in_signal_order():
    a = flamo.Gain(np.random.default_rng(0).normal(size=(3, 2)))
    d = flamo.Delay([1.0, 4.0, 9.0])
    b = flamo.Gain(np.random.default_rng(1).normal(size=(1, 3)))
    s = flamo.Series(a, d, b).double()
    assert s.shape == (1, 2)
    ha, hd, hb = (m.response(G).detach().numpy() for m in (a, d, b))
    np.testing.assert_allclose(s.response(G).detach().numpy(), hb @ hd @ ha, rtol=1e-12)


def test_parallel_is_sum_of_mixed_diagonal_and_dense():
    d = flamo.Delay([2.0, 3.0])
    m = _free(2, 0)
    sos = flamo.SOS(np.stack([random_stable_sos(np.random.default_rng(i), 2) for i in range(2)]))
    p = flamo.Parallel(d, m, sos).double()
    ref = sum(x.response(G).detach().numpy() for x in (d, m, sos))
    np.testing.assert_allclose(p.response(G).detach().numpy(), ref, rtol=1e-12)
    assert not p.diagonal and flamo.Parallel(d, sos).diagonal


def test_recursion_is_solve():
    F = flamo.Series(flamo.Delay([3.0, 5.0, 7.0]), flamo.Gain([0.9, 0.8, 0.7]))
    B = _free(3, 2, scale=0.4)
    r = flamo.Recursion(F, B).double()
    f, b = F.double().response(G).detach().numpy(), B.response(G).detach().numpy()
    ref = np.linalg.solve(np.eye(3) - f @ b, f)
    np.testing.assert_allclose(r.response(G).detach().numpy(), ref, rtol=1e-10)


def test_recursion_in_series_equals_full_matrix_product():
    """Applying the loop to the incoming columns (one RHS) equals the full (N x N) solve."""
    rng = np.random.default_rng(4)
    b_in, c_out = flamo.Gain(rng.normal(size=(4, 1))), flamo.Gain(rng.normal(size=(2, 4)))
    loop = flamo.Recursion(flamo.Series(flamo.Delay([5.0, 6.0, 7.0, 11.0]), flamo.Gain([0.9] * 4)),
                           flamo.Matrix(4, seed=0))
    s = flamo.Series(b_in, loop, c_out).double()
    ref = c_out.response(G) @ loop.response(G) @ b_in.response(G)
    torch.testing.assert_close(s.response(G), ref)


def test_diagonal_recursion_is_division():
    F = flamo.Delay([4.0])
    B = flamo.Gain([0.5])
    r = flamo.Recursion(F, B).double()
    assert r.diagonal
    z = G.z.numpy()
    np.testing.assert_allclose(r.response(G)[:, 0, 0].detach().numpy(), z**-4 / (1 - 0.5 * z**-4), rtol=1e-12)


@pytest.mark.parametrize("p", [0.9, -0.95, 0.995])
@pytest.mark.parametrize("db", [0.0, 20.0, 60.0])
def test_one_pole_aliasing_closed_form(p, db):
    """h_hat[n] = p^n / (1 - (gamma p)^nfft) exactly (the geometric sum of the wrapped copies
    gamma^(k nfft) p^(n + k nfft))."""
    g = flamo.Grid(nfft=256, alias_decay_db=db, dtype=torch.float64)
    one_pole = flamo.Recursion(flamo.Gain([[1.0]]), flamo.Series(flamo.Delay([1.0]), flamo.Gain(np.array([[p]]))))
    one_pole = one_pole.double()  # p as float64: a Python list would be rounded to float32
    h = one_pole.impulse_response(g)[:, 0, 0].detach().numpy()
    n = np.arange(g.nfft)
    expected = p**n / (1 - (g.gamma * p) ** g.nfft)
    np.testing.assert_allclose(h, expected, rtol=1e-9, atol=1e-12)


def test_fdn_matches_sample_by_sample_simulation():
    rng = np.random.default_rng(0)
    m = [7, 11, 13, 17]
    A = scipy.stats.ortho_group.rvs(4, random_state=0)
    b, c, d = rng.normal(size=4), rng.normal(size=4), 0.3
    g_lines = 0.97 ** np.asarray(m, dtype=float)
    fdn = build_fdn(delays=m, matrix="free", matrix_init=A, input_gains=b, output_gains=c,
                    direct_gain=d, line_gains=g_lines, dtype=torch.float64)
    grid = flamo.Grid(nfft=4096, alias_decay_db=0, dtype=torch.float64)  # IR decays far below 1e-12
    h = fdn.impulse_response(grid)[:, 0, 0].detach().numpy()
    x = np.zeros(600)
    x[0] = 1
    ref = fdn_simulate(x, m, A, b, c, d, g_lines)
    np.testing.assert_allclose(h[:600], ref, atol=1e-12)
    H = fdn.response(grid)[:, 0, 0].detach().numpy()
    np.testing.assert_allclose(H[:50], fdn_transfer_numpy(grid.z.numpy()[:50], m, A, b, c, d, g_lines), rtol=1e-10)


def test_fdn_with_sos_attenuation_matches_lfilter_chain():
    """A loop with a filter per line against scipy: the diagonal SOS inside Recursion. The
    numerators are scaled so that the loop is stable (largest loop pole radius 0.956, from the
    roots of its characteristic polynomial; at 0.3 it had a pole at 1.014, which the loop check
    now refuses)."""
    sos = np.stack([random_stable_sos(np.random.default_rng(i), 1, max_radius=0.5) * [0.2, 0.2, 0.2, 1, 1, 1]
                    for i in range(2)])
    F = flamo.Series(flamo.Delay([3.0, 5.0]), flamo.SOS(sos))
    B = flamo.Matrix(2, kind="hadamard")
    r = flamo.Recursion(F, B).double()
    grid = flamo.Grid(nfft=128, dtype=torch.float64)
    z = grid.z.numpy()
    filt = np.stack([sosfreqz_on(sos[i], grid) for i in range(2)], axis=1) * z[:, None] ** -np.array([3.0, 5.0])
    A = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
    ref = np.stack([np.linalg.solve(np.eye(2) - np.diag(f) @ A, np.diag(f)) for f in filt])
    np.testing.assert_allclose(r.response(grid).detach().numpy(), ref, rtol=1e-10, atol=1e-13)


def test_gradcheck_recursion():
    r = build_fdn(delays=[2, 3], line_gains=[0.7, 0.6], learnable_attenuation=True,
                  learnable_delays=True, seed=0, dtype=torch.float64)
    g = flamo.Grid(nfft=16, alias_decay_db=10, dtype=torch.float64)
    names = [n for n, _ in r.named_parameters()]
    assert len(names) == 5
    inputs = tuple(p.detach().clone().requires_grad_(True) for p in r.parameters())
    assert torch.autograd.gradcheck(lambda *v: response_with(r, names, v, g), inputs, eps=1e-6, atol=1e-7)


def test_second_backward_and_regrid():
    """No cached state: two backward passes, and a trained system on another grid."""
    fdn = build_fdn(delays=[5, 7], matrix="free", matrix_init=np.eye(2), input_gains=1.0,
                    output_gains=1.0, direct_gain=0.0, line_gains=[0.9, 0.9], dtype=torch.float64)
    for _ in range(2):
        fdn.zero_grad()
        fdn.response(G).abs().sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in fdn.parameters())
    fine = G.replace(nfft=1024)
    assert fdn.response(fine).shape == (fine.M, 1, 1)


def test_shape_errors_name_the_parts():
    with pytest.raises(ValueError, match=r"'0' \(Delay, 2 x 2\) has 2 outputs.*'1' \(Gain, 1 x 3\)"):
        flamo.Series(flamo.Delay([1.0, 2.0]), flamo.Gain(np.ones((1, 3))))
    with pytest.raises(ValueError, match="same \\(out, in\\) shape"):
        flamo.Parallel(flamo.Delay([1.0, 2.0]), flamo.Gain([[1.0]]))
    with pytest.raises(ValueError, match="Recursion: feedback"):
        flamo.Recursion(flamo.Delay([1.0, 2.0]), flamo.Gain(np.ones((3, 3))))
    with pytest.raises(TypeError, match="flamo module"):
        flamo.Series(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="at least one"):
        flamo.Parallel()


def test_singular_loop_raises_with_frequency():
    """A lossless loop with a pole exactly on a grid frequency at gamma = 1."""
    r = flamo.Recursion(flamo.Delay([4.0]), flamo.Gain([[1.0]])).double()  # poles at z^4 = 1
    with pytest.raises(ValueError, match=r"singular to working precision at bin k=0 \(0.000 Hz\)"):
        r.response(flamo.Grid(nfft=64, dtype=torch.float64))
    assert torch.isfinite(r.response(flamo.Grid(nfft=64, alias_decay_db=10, dtype=torch.float64))).all()


def test_named_access_state_dict_pickle():
    fdn = flamo.Series({"input": flamo.Gain(np.ones((2, 1))),
                        "loop": flamo.Recursion(flamo.Delay([3.0, 4.0]), flamo.Matrix(2, seed=0)),
                        "output": flamo.Gain(np.ones((1, 2)))})
    assert fdn["loop"].feedback_path.kind == "orthogonal"
    assert set(fdn.state_dict()) == {"input.raw", "loop.forward_path.raw", "loop.feedback_path.raw",
                                     "loop.feedback_path.base", "output.raw"}
    clone = pickle.loads(pickle.dumps(fdn))
    g = flamo.Grid(nfft=64, alias_decay_db=5)
    torch.testing.assert_close(clone.response(g), fdn.response(g))
    other = flamo.Series({"input": flamo.Gain(np.zeros((2, 1))),
                          "loop": flamo.Recursion(flamo.Delay([3.0, 4.0]), flamo.Matrix(2, seed=5)),
                          "output": flamo.Gain(np.ones((1, 2)))})
    other.load_state_dict(fdn.state_dict())
    torch.testing.assert_close(other.response(g), fdn.response(g))
