"""Circulant matrices, gain-delay matrices and paraunitary filter feedback matrices."""

import numpy as np
import pytest
import torch

import flamo
from flamo.reverb import build_fdn
from flamo.functional import circulant
from conftest import response_with

G64 = flamo.Grid(nfft=256, dtype=torch.float64)  # gamma = 1: the unit circle


def _gradcheck(module, grid=None):
    grid = grid or flamo.Grid(nfft=16, alias_decay_db=10, dtype=torch.float64)
    names = [n for n, _ in module.named_parameters()]
    assert names
    inputs = tuple(p.detach().clone().requires_grad_(True) for p in module.parameters())
    assert torch.autograd.gradcheck(lambda *v: response_with(module, names, v, grid), inputs)


# -- circulant --------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 6, 7])
def test_circulant_matches_numpy_dft_construction(n):
    phases = np.random.default_rng(n).uniform(-np.pi, np.pi, (n - 1) // 2)
    spectrum = np.ones(n, dtype=complex)
    spectrum[1:(n - 1) // 2 + 1] = np.exp(1j * phases)
    spectrum[n - (n - 1) // 2:] = np.conj(np.exp(1j * phases))[::-1]
    column = np.fft.ifft(spectrum)
    assert np.abs(column.imag).max() < 1e-12
    ref = np.array([[column[(i - j) % n].real for j in range(n)] for i in range(n)])
    got = flamo.Matrix(n, kind="circulant", init=phases).double().matrix.detach().numpy()
    np.testing.assert_allclose(got, ref, atol=1e-12)
    np.testing.assert_allclose(got @ got.T, np.eye(n), atol=1e-12)


def test_circulant_gradcheck_and_batched_phases():
    _gradcheck(flamo.Matrix(5, kind="circulant", seed=0).double())
    batch = circulant(torch.randn(4, 3, dtype=torch.float64), 7)
    assert batch.shape == (4, 7, 7)
    torch.testing.assert_close(batch @ batch.transpose(-1, -2), torch.eye(7, dtype=torch.float64).expand(4, 7, 7))


def test_circulant_bad_init():
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        flamo.Matrix(5, kind="circulant", init=[0.1, 0.2, 0.3])


# -- block rotations ----------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_rotation_matrix_is_the_block_diagonal_of_plane_rotations(n):
    angles = np.random.default_rng(n).uniform(-np.pi, np.pi, n // 2)
    ref = np.eye(n)
    for k, a in enumerate(angles):  # the closed form, block by block
        ref[2 * k:2 * k + 2, 2 * k:2 * k + 2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    module = flamo.Matrix(n, kind="rotation", init=torch.tensor(angles))
    got = module.matrix.detach().numpy()
    assert module.matrix.dtype == torch.float64
    np.testing.assert_allclose(got, ref, atol=1e-15)
    assert np.abs(got @ got.T - np.eye(n)).max() < 1e-12
    assert abs(np.linalg.det(got) - 1) < 1e-12


def test_rotation_stays_orthogonal_while_learning_and_gradcheck():
    module = flamo.Matrix(6, kind="rotation", seed=0).double()
    assert [n for n, _ in module.named_parameters()] == ["raw"] and module.raw.shape == (3,)
    with torch.no_grad():
        module.raw.mul_(37.0).add_(5.0)  # any angle, however large
    a = module.matrix.detach()
    assert (a @ a.T - torch.eye(6, dtype=torch.float64)).abs().max() < 1e-12
    _gradcheck(module)
    same = flamo.Matrix(4, kind="rotation", init=0.3).matrix
    torch.testing.assert_close(same[2:, 2:], same[:2, :2])
    with pytest.raises(ValueError, match=r"kind='rotation' must hold n // 2 angles, shape \(2,\)"):
        flamo.Matrix(5, kind="rotation", init=[0.1, 0.2, 0.3])


# -- gain-delay matrix ---------------------------------------------------------------------
def test_delay_matrix_matches_numpy():
    g = flamo.Grid(nfft=128, alias_decay_db=20, dtype=torch.float64)
    rng = np.random.default_rng(0)
    m = rng.uniform(0, 60, (3, 2))
    m[0, 0] = 17  # an integer entry too
    gains = rng.normal(size=(3, 2))
    h = flamo.DelayMatrix(m, gains).double().response(g).detach().numpy()
    z = g.z.numpy()
    ref = gains[None] * z[:, None, None] ** -m[None]
    assert h.shape == (g.M, 3, 2)
    np.testing.assert_allclose(h, ref, rtol=1e-10)


def test_delay_matrix_gradcheck():
    _gradcheck(flamo.DelayMatrix(np.array([[1.5, 3.0], [2.2, 0.7]]), np.ones((2, 2)),
                                 learnable_delays=True).double())


@pytest.mark.parametrize("kwargs, match", [
    (dict(delays=[[-1.0, 2.0]]), "delays must be >= 0"),
    (dict(delays=[[np.nan, 2.0]]), "finite"),
    (dict(delays=[1.0, 2.0]), "dimensions"),
    (dict(delays=[[1.0, 2.0]], gains=[[1.0]]), "gains must have the shape"),
])
def test_delay_matrix_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        flamo.DelayMatrix(**kwargs)


# -- paraunitary ---------------------------------------------------------------------------
def _paraunitary_numpy(delays, mats, z):
    """D_K U_K ... U_1 D_0 at each z, numpy."""
    out = []
    for zk in z:
        a = np.diag(zk ** -delays[0])
        for k in range(len(mats)):
            a = np.diag(zk ** -delays[k + 1]) @ mats[k] @ a
        out.append(a)
    return np.array(out)


def test_paraunitary_matches_numpy_cascade():
    g = flamo.Grid(nfft=64, alias_decay_db=15, dtype=torch.float64)
    module = flamo.VelvetNoiseMatrix(4, stages=3, spread=40, seed=1, orthogonal="random", learnable=True).double()
    h = module.response(g).detach().numpy()
    ref = _paraunitary_numpy(module.delays.numpy(), module.matrices.detach().numpy(), g.z.numpy())
    np.testing.assert_allclose(h, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paraunitary_is_lossless_at_every_frequency(seed):
    module = flamo.VelvetNoiseMatrix(6, stages=4, spread=100, seed=seed, orthogonal="random", learnable=True).double()
    with torch.no_grad():  # move away from the initial U_k: losslessness must not depend on them
        module.raw.normal_()
    h = module.response(G64)
    eye = torch.eye(6, dtype=h.dtype)
    energy = (h.mH @ h - eye).abs().max().item()
    det = (torch.linalg.det(h).abs() - 1).abs().max().item()
    assert energy < 1e-12 and det < 1e-12, (energy, det)
    x = torch.randn(G64.M, 6, 1, dtype=h.dtype)  # any input vector keeps its energy
    torch.testing.assert_close((h @ x).abs().square().sum((-1, -2)), x.abs().square().sum((-1, -2)))
    assert (h - h[0]).abs().max() > 0.1  # and it is truly frequency dependent


def test_paraunitary_fdn_loop_is_lossless_and_solvable():
    """FDN with the paraunitary matrix as feedback: the loop D(z) A(z) is unitary on the unit
    circle (poles on it), finite with alias_decay_db > 0, and equals the numpy solve."""
    m = np.array([7.0, 11.0, 13.0, 17.0])
    fb = flamo.VelvetNoiseMatrix(4, stages=2, spread=12, seed=3, orthogonal="random", learnable=True).double()
    b, c = np.ones((4, 1)), np.ones((1, 4))
    fdn = build_fdn(delays=m, matrix=fb, input_gains=b, output_gains=c, dtype=torch.float64)
    loop = flamo.Series(fb, flamo.Delay(m)).double().response(G64)
    assert (loop.mH @ loop - torch.eye(4, dtype=loop.dtype)).abs().max() < 1e-12
    g = flamo.Grid(nfft=128, alias_decay_db=30, dtype=torch.float64)
    h = fdn.response(g)[:, 0, 0].detach().numpy()
    assert np.isfinite(h).all()
    a = fb.response(g).detach().numpy()
    ref = []
    for k, zk in enumerate(g.z.numpy()):
        d = np.diag(zk ** -m)
        ref.append((c @ np.linalg.solve(np.eye(4) - d @ a[k], d @ b))[0, 0])
    np.testing.assert_allclose(h, ref, rtol=1e-9)


def test_paraunitary_gradcheck():
    _gradcheck(flamo.Paraunitary([[0.0, 1.0, 2.0], [3.0, 0.0, 1.0]], seed=0).double())


@pytest.mark.parametrize("make, match", [
    (lambda: flamo.Paraunitary([[1.0, 2.0]]), "K \\+ 1 >= 2 rows"),
    (lambda: flamo.Paraunitary([[1.0, -2.0], [0.0, 0.0]]), "delays must be >= 0"),
    (lambda: flamo.Paraunitary([[1.0, np.nan], [0.0, 0.0]]), "finite"),
    (lambda: flamo.Paraunitary(np.zeros((2, 2)), matrices=np.ones((1, 2, 2))), "orthogonal"),
    (lambda: flamo.Paraunitary(np.zeros((3, 2)), matrices=np.eye(2)[None]), r"shape \(2, 2, 2\)"),
    (lambda: flamo.VelvetNoiseMatrix(4, stages=0, spread=10, orthogonal="random", learnable=True), "stages >= 1"),
])
def test_paraunitary_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make", [
    lambda: flamo.FIR(torch.randn(2, 3, 5)),
    lambda: flamo.FractionalDelay([2.5, 7.1], kind="thiran", order=2),
    lambda: flamo.DelayMatrix(torch.rand(2, 3) * 5, learnable_delays=True),
    lambda: flamo.VelvetNoiseMatrix(3, stages=2, spread=10, seed=0, orthogonal="random", learnable=True),
    lambda: flamo.Matrix(5, kind="circulant", seed=0),
], ids=["fir", "fractional", "delay-matrix", "paraunitary", "circulant"])
def test_batched_parameters_give_batched_responses(make):
    """Leading batch dims on the raw parameters (hyperconditioning) flow through."""
    module = make().double()
    g = flamo.Grid(nfft=32, alias_decay_db=5, dtype=torch.float64)
    names = [n for n, _ in module.named_parameters()]
    values = [p.detach() + 0.01 * torch.arange(4.0, dtype=p.dtype).reshape(4, *[1] * p.ndim) for p in module.parameters()]
    batched = response_with(module, names, values, g)
    assert batched.shape == (4, g.M, *module.shape)
    for i in range(4):
        torch.testing.assert_close(batched[i], response_with(module, names, [v[i] for v in values], g))
