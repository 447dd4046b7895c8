"""Recursion.characteristic(z) = I - F(z) B(z): closed forms, the loop determinant, and the
eigenvalues of a state-space realization (small delays) as the points where it is singular."""

import numpy as np
import pytest
import torch

import flamo
from flamo.functional import rbj_lowpass

F64 = torch.float64


def _fdn_loop(m, a, sos=None, gains=None):
    """Recursion(Series(Delay, per-line filter), Matrix): P(z) = I - diag(z^-m H_i(z)) A."""
    n = len(m)
    line = flamo.SOS(torch.as_tensor(sos)) if sos is not None else flamo.Gain(torch.as_tensor(gains))
    return flamo.Recursion(flamo.Series(flamo.Delay(torch.tensor(m, dtype=F64)), line),
                           flamo.Matrix(n, kind="free", init=torch.as_tensor(a))).double()


def _state_space(m, a, sos):
    """Transition matrix of the FDN with a biquad after each delay line (direct form II
    transposed): state = delay registers (sum m), then s1 (N), then s2 (N)."""
    n, total = len(m), int(sum(m))
    offsets = np.concatenate([[0], np.cumsum(m)[:-1]]).astype(int)
    size = total + 2 * n
    s1, s2 = total + np.arange(n), total + n + np.arange(n)
    w = np.zeros((n, size))  # line outputs of the delays: the last register of each line
    w[np.arange(n), offsets + np.asarray(m) - 1] = 1
    b0, b1, b2, _, a1, a2 = (sos[:, 0, k] for k in range(6))
    v = b0[:, None] * w  # biquad outputs v = b0 w + s1
    v[np.arange(n), s1] += 1
    t = np.zeros((size, size))
    t[offsets] = a @ v  # x_i = sum_j A_ij v_j enters register 0 of line i
    for i in range(n):
        for k in range(1, m[i]):
            t[offsets[i] + k, offsets[i] + k - 1] = 1
    t[s1] = b1[:, None] * w - a1[:, None] * v
    t[s1, s2] += 1
    t[s2] = b2[:, None] * w - a2[:, None] * v
    return t


def test_characteristic_is_the_closed_form_at_any_points():
    rng = np.random.default_rng(0)
    m, a, g = [3, 5, 8], rng.normal(size=(3, 3)) / 2, np.array([0.9, 0.8, 0.7])
    loop = _fdn_loop(m, a, gains=g)
    z = torch.tensor(rng.normal(size=6) + 1j * rng.normal(size=6))
    p = loop.characteristic(z).detach().numpy()
    zz = z.numpy()[:, None] ** -np.asarray(m, dtype=float)  # (M, N)
    ref = np.eye(3) - (g * zz)[:, :, None] * a[None]
    np.testing.assert_allclose(p, ref, rtol=1e-13, atol=1e-14)
    # on a grid: det P equals the solve's loop determinant
    grid = flamo.Grid(nfft=64, alias_decay_db=20, dtype=F64)
    det = torch.linalg.det(loop.characteristic(grid))
    ld = loop.loop_determinant(grid)
    torch.testing.assert_close(det, torch.polar(ld.log_abs.exp(), ld.phase).to(det.dtype))


def test_eigenvalues_of_a_state_space_realization_make_it_singular():
    """A loop with a biquad per line (not FDN-shaped: the loop path is frequency dependent):
    each of the sum(m) + 2N eigenvalues is a zero of det P(z)."""
    rng = np.random.default_rng(1)
    m = [2, 5, 7]
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    sos = np.stack([rbj_lowpass(torch.tensor(f, dtype=F64), torch.tensor(0.7, dtype=F64), 8000.0)
                    .numpy().reshape(1, 6) for f in (900.0, 1500.0, 2500.0)])  # (N, 1, 6)
    sos = sos / sos[..., 3:4]
    loop = _fdn_loop(m, 0.9 * q, sos=sos)
    poles = np.linalg.eigvals(_state_space(m, 0.9 * q, sos))
    assert poles.size == sum(m) + 6 and np.abs(poles).max() < 1
    p = loop.characteristic(torch.tensor(poles)).detach().numpy()
    smallest = np.linalg.svd(p, compute_uv=False)[:, -1] / np.linalg.norm(p, 2, axis=(-2, -1))
    assert smallest.max() < 1e-9, smallest.max()
    away = loop.characteristic(torch.tensor(poles * 1.05)).detach().numpy()  # and not elsewhere
    assert (np.linalg.svd(away, compute_uv=False)[:, -1] / np.linalg.norm(away, 2, axis=(-2, -1))).min() > 1e-4
    # the poles of the frequency-sampled response: probe blows up next to each one
    h = flamo.Series(flamo.Gain(np.ones((3, 1))), loop, flamo.Gain(np.ones((1, 3)))).double()
    near = h.probe(torch.tensor(poles[:3] * (1 + 1e-7)))[:, 0, 0].abs()
    assert (near > 1e3).all()


def test_characteristic_is_differentiable_and_takes_hz_points():
    loop = flamo.Recursion(flamo.Series(flamo.Delay([4.0, 6.0]),
                                        flamo.HomogeneousAttenuation([4.0, 6.0], 0.5)),
                           flamo.Matrix(2, seed=0)).double()
    z = torch.exp(1j * torch.tensor([0.3, 1.1], dtype=F64))
    with pytest.raises(ValueError, match="sample rate"):
        loop.characteristic(z)
    p = loop.characteristic(z, fs=8000.0)
    assert p.shape == (2, 2, 2)
    p.abs().sum().backward()
    assert loop.feedback_path.raw.grad is not None
