"""The structured loop solve (I - diag(l) A diag(r)) x = rhs: values against numpy, gradients
by gradcheck in float64, broadcasting of batch dims, and use inside Recursion."""

import numpy as np
import pytest
import torch

import flamo
from flamo.functional import diagonal_loop_solve
from conftest import response_with


def _complex(rng, *shape):
    return torch.tensor(rng.normal(size=shape) + 1j * rng.normal(size=shape), dtype=torch.complex128)


SIDES = [("left",), ("right",), ("left", "right")]


def _reference(a, rhs, left=None, right=None):
    """numpy: one np.linalg.solve per point, the loop built with explicit diagonal matrices."""
    a, rhs = a.detach().numpy(), rhs.detach().numpy()
    m = max(t.shape[-2] for t in (left, right) if t is not None)
    out = []
    for k in range(m):
        loop = a[0]
        if left is not None:
            loop = np.diag(left.detach().numpy()[k]) @ loop
        if right is not None:
            loop = loop @ np.diag(right.detach().numpy()[k])
        out.append(np.linalg.solve(np.eye(a.shape[-1]) - loop, rhs[min(k, rhs.shape[0] - 1)]))
    return np.stack(out)


@pytest.mark.parametrize("sides", SIDES)
@pytest.mark.parametrize("k", [1, 3])
def test_matches_numpy(sides, k):
    rng = np.random.default_rng(1)
    a, rhs = _complex(rng, 1, 4, 4) / 2, _complex(rng, 7, 4, k)
    diags = {side: 0.5 * _complex(rng, 7, 4) for side in sides}
    np.testing.assert_allclose(diagonal_loop_solve(a, rhs, **diags).numpy(),
                               _reference(a, rhs, **diags), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("sides", SIDES)
@pytest.mark.parametrize("k", [1, 3])
def test_gradcheck_all_inputs(sides, k):
    """rhs as one column (the input gains of an FDN) and as several columns."""
    rng = np.random.default_rng(2)
    inputs = (_complex(rng, 1, 3, 3) / 2, _complex(rng, 3, 3, k),
              *(0.5 * _complex(rng, 3, 3) for _ in sides))
    inputs = tuple(t.requires_grad_(True) for t in inputs)

    def solve(a, rhs, *diags):
        return diagonal_loop_solve(a, rhs, **dict(zip(sides, diags)))

    assert torch.autograd.gradcheck(solve, inputs, eps=1e-6, atol=1e-7, fast_mode=True)


def test_needs_a_diagonal():
    a = torch.eye(2, dtype=torch.complex128).unsqueeze(0)
    with pytest.raises(ValueError, match="give left and/or right"):
        diagonal_loop_solve(a, torch.ones(1, 2, 1, dtype=torch.complex128))


def test_gradcheck_broadcast_batch_dims():
    """Batched diagonals with a shared matrix and a frequency-independent rhs: the
    gradients are summed back to each input's own shape."""
    rng = np.random.default_rng(3)
    d = (0.5 * _complex(rng, 2, 4, 3)).requires_grad_(True)
    a = (_complex(rng, 1, 3, 3) / 2).requires_grad_(True)
    rhs = _complex(rng, 1, 3, 1).requires_grad_(True)
    out = diagonal_loop_solve(a, rhs, left=d)
    assert out.shape == (2, 4, 3, 1)
    assert torch.autograd.gradcheck(lambda d, a, rhs: diagonal_loop_solve(a, rhs, left=d),
                                    (d, a, rhs), eps=1e-6, atol=1e-7, fast_mode=True)


def test_only_some_inputs_need_grad():
    rng = np.random.default_rng(4)
    d = (0.5 * _complex(rng, 5, 3)).requires_grad_(True)
    a, rhs = _complex(rng, 1, 3, 3) / 2, _complex(rng, 5, 3, 1)
    assert torch.autograd.gradcheck(lambda d: diagonal_loop_solve(a, rhs, left=d), (d,), eps=1e-6,
                                    atol=1e-7, fast_mode=True)


def test_singular_frequency_is_not_finite():
    d = torch.tensor([[1.0 + 0j], [0.5 + 0j]], dtype=torch.complex128)  # 1 - d a = 0 at bin 0
    out = diagonal_loop_solve(torch.ones(1, 1, 1, dtype=torch.complex128),
                              torch.ones(2, 1, 1, dtype=torch.complex128), left=d)
    assert not torch.isfinite(out[0]).all()
    torch.testing.assert_close(out[1], torch.full((1, 1), 2.0, dtype=torch.complex128))


G = flamo.Grid(nfft=16, alias_decay_db=10, dtype=torch.float64)


def _gradcheck_module(module):
    module = module.double()
    names = [n for n, _ in module.named_parameters()]
    inputs = tuple(p.detach().clone().requires_grad_(True) for p in module.parameters())
    return torch.autograd.gradcheck(lambda *v: response_with(module, names, v, G), inputs,
                                    eps=1e-6, atol=1e-7, fast_mode=True)


def test_gradcheck_bare_recursion_without_rhs():
    """Recursion on its own: rhs = identity, N columns solved."""
    loop = flamo.Recursion(flamo.Series(flamo.Delay([2.0, 3.0], learnable=True), flamo.Gain([0.7, 0.6])),
                           flamo.Matrix(2, seed=1))
    assert _gradcheck_module(loop)


def test_gradcheck_matrix_forward_diagonal_feedback():
    """I - A diag(d): the matrix in the forward path, the delays in the feedback path."""
    loop = flamo.Recursion(flamo.Matrix(2, seed=3),
                           flamo.Series(flamo.Delay([2.0, 3.0], learnable=True), flamo.Gain([0.7, 0.6])))
    inner = flamo.Series(flamo.Gain.random((2, 1), seed=0), loop, flamo.Gain.random((1, 2), seed=2))
    assert _gradcheck_module(inner)
    f = loop.forward_path.double().response(G)
    b = loop.feedback_path.double().response(G)
    ref = torch.linalg.solve(torch.eye(2, dtype=f.dtype) - f @ b, f)
    torch.testing.assert_close(loop.double().response(G), ref)


def test_second_order_gradients_need_the_generic_solve():
    """The structured solve is first-order only (it says so); structured_solve=False gives
    the generic solve, whose double backward matches finite differences of the gradient."""
    import flamo

    grid = flamo.Grid(nfft=32, alias_decay_db=10, dtype=torch.float64)

    def fdn(structured):
        return flamo.Series(
            flamo.Gain(torch.ones(2, 1, dtype=torch.float64)),
            flamo.Recursion(flamo.Series(flamo.Delay([3.0, 5.0]), flamo.Gain(torch.tensor([0.8, 0.7], dtype=torch.float64))),
                            flamo.Matrix(2, seed=0).double(), structured_solve=structured),
            flamo.Gain(torch.ones(1, 2, dtype=torch.float64)))

    fast, generic = fdn(True), fdn(False)
    w = generic[1].feedback_path.raw

    def gradient(create_graph=False):
        loss = generic.response(grid).abs().pow(2).sum()
        return torch.autograd.grad(loss, w, create_graph=create_graph)[0]

    v = torch.tensor([[0.3, -1.0], [0.7, 0.2]], dtype=torch.float64)
    g = gradient(create_graph=True)
    (hv,) = torch.autograd.grad((g * v).sum(), w)  # Hessian-vector product H v
    eps = 1e-6
    with torch.no_grad():
        w += eps * v
    g_plus = gradient()
    with torch.no_grad():
        w -= 2 * eps * v
    g_minus = gradient()
    with torch.no_grad():
        w += eps * v
    torch.testing.assert_close(hv, (g_plus - g_minus) / (2 * eps), rtol=1e-5, atol=1e-7)
    assert hv.abs().max() > 1e-3
    torch.testing.assert_close(torch.autograd.grad(fast.response(grid).abs().pow(2).sum(),
                                                   fast[1].feedback_path.raw)[0], g.detach())
    with pytest.raises(RuntimeError, match="first-order gradients only.*structured_solve=False"):
        loss_fast = fast.response(grid).abs().pow(2).sum()
        torch.autograd.grad(loss_fast, fast[1].feedback_path.raw, create_graph=True)


@pytest.mark.parametrize("sides", SIDES)
@pytest.mark.parametrize("rhs_points", [7, 1])
def test_blocks_of_points(monkeypatch, sides, rhs_points):
    """Points processed in blocks (3, 3, 1 of 7): values and log |det| against numpy,
    gradients by gradcheck, with a per-point rhs and one broadcast over the points."""
    from flamo.functional import loop_solve

    monkeypatch.setattr(loop_solve, "BLOCK_POINTS", 3)
    rng = np.random.default_rng(5)
    a, rhs = _complex(rng, 1, 4, 4) / 2, _complex(rng, rhs_points, 4, 2)
    diags = {side: 0.5 * _complex(rng, 7, 4) for side in sides}
    x, det = diagonal_loop_solve(a, rhs, **diags, determinant=True)
    np.testing.assert_allclose(x.numpy(), _reference(a, rhs, **diags), rtol=1e-11, atol=1e-12)
    loops = torch.eye(4, dtype=a.dtype) - (diags.get("left", torch.ones(7, 4, dtype=a.dtype))
                                           .unsqueeze(-1) * a
                                           * diags.get("right", torch.ones(7, 4, dtype=a.dtype))
                                           .unsqueeze(-2))
    sign, logabs = np.linalg.slogdet(loops.numpy())
    np.testing.assert_allclose(det.log_abs.numpy(), logabs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(det.phase.numpy(), np.angle(sign), rtol=1e-10, atol=1e-10)
    inputs = tuple(t.clone().requires_grad_(True) for t in (a, rhs, *diags.values()))
    assert torch.autograd.gradcheck(
        lambda a, rhs, *d: diagonal_loop_solve(a, rhs, **dict(zip(diags, d))), inputs,
        eps=1e-6, atol=1e-7, fast_mode=True)
