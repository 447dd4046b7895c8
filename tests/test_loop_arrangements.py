"""Every loop arrangement of per-line filters and one frequency-independent matrix takes the
structured solve, with the values of a dense solve per point and the gradients of the generic
path (float64, 1e-10); loops that do not fit take the generic path and stay correct.

That the structured kernel ran is observed, not assumed: it refuses double backward
(create_graph=True) with a message naming it, the generic solve does not."""

import numpy as np
import pytest
import torch

import flamo
from conftest import random_stable_sos, response_with

N = 3
GRID = flamo.Grid(nfft=64, alias_decay_db=20, dtype=torch.float64)


def _sos(seed):
    rng = np.random.default_rng(seed)
    sos = np.stack([random_stable_sos(rng, 1, max_radius=0.8) for _ in range(N)])
    radius = np.sqrt(sos[..., 5:])  # |A(z)| >= (1 - r)^2 on the unit circle: |H| <= 1 / 2
    sos[..., :3] *= 0.5 * (1 - radius) ** 2 / np.abs(sos[..., :3]).sum(-1, keepdims=True)
    return flamo.SOS(torch.tensor(sos))


def _delays():
    return flamo.Delay([2.0, 3.0, 5.0], learnable=True)


def _matrix(kind="orthogonal"):
    return flamo.Matrix(N, kind=kind, seed=1)


def _gains():
    return flamo.Gain([0.7, 0.6, 0.8])


# name -> (forward, feedback), all N x N
STRUCTURED = {
    "filters in the forward path": lambda: (flamo.Series(_delays(), _sos(0)), _matrix()),
    "filters before the matrix": lambda: (_delays(), flamo.Series(_sos(0), _matrix())),
    "filters after the matrix": lambda: (_delays(), flamo.Series(_matrix(), _sos(0))),
    "filters on both sides": lambda: (flamo.Series(_delays(), _sos(1)),
                                      flamo.Series(_sos(0), _matrix(), _sos(2), _gains())),
    "matrix in the forward path": lambda: (flamo.Series(_delays(), _matrix(), _sos(1)), _sos(0)),
    "nested series and parallel": lambda: (
        flamo.Series(flamo.Series(_delays(), _gains()), flamo.Parallel(_sos(1), _gains())),
        flamo.Series(flamo.Series(_sos(0), _matrix("free")), _gains())),
    **{f"{kind} matrix": (lambda kind=kind: (flamo.Series(_delays(), _gains()),
                                             flamo.Series(_matrix(kind), _sos(0))))
       for kind in ("householder", "circulant", "free")},
}

GENERIC = {
    "paraunitary feedback": lambda: (flamo.Series(_delays(), _gains()),
                                     flamo.Paraunitary([[0, 1, 0], [1, 0, 2]], seed=0)),
    "delay-matrix feedback": lambda: (_delays(), flamo.DelayMatrix(
        [[0, 1, 2], [1, 0, 1], [2, 1, 0]], torch.full((N, N), 0.2, dtype=torch.float64))),
    "filters between two matrices": lambda: (flamo.Series(_delays(), _matrix()),
                                             flamo.Series(_sos(0), _matrix("householder"))),
}


def _fdn(parts, structured):
    forward, feedback = parts
    loop = flamo.Recursion(forward, feedback, structured_solve=structured)
    return flamo.Series(flamo.Gain.random((N, 1), seed=0), loop,
                        flamo.Gain.random((1, N), seed=2)).double()


def _pair(make):
    """The same system twice, structured and generic, with the same parameter values."""
    fast, generic = _fdn(make(), True), _fdn(make(), False)
    generic.load_state_dict(fast.state_dict())
    return fast, generic


def _reference(fdn):
    """c (I - F B)^-1 F b per point by numpy, from the parts' own responses."""
    b, loop, c = fdn[0], fdn[1], fdn[2]
    with torch.no_grad():
        f, fb_ = loop.forward_path.response(GRID).numpy(), loop.feedback_path.response(GRID).numpy()
        bb, cc = b.response(GRID).numpy(), c.response(GRID).numpy()
    return np.stack([cc[0] @ np.linalg.solve(np.eye(N) - f[k] @ fb_[k], f[k] @ bb[0])
                     for k in range(GRID.M)])


def _loss(fdn):
    return (fdn.response(GRID).abs() - 0.5).pow(2).sum()


def _refuses_double_backward(fdn):
    try:
        torch.autograd.grad(_loss(fdn), list(fdn.parameters()), create_graph=True)
    except RuntimeError as err:
        assert "diagonal_loop_solve supports first-order gradients only" in str(err)
        return True
    return False


@pytest.mark.parametrize("name", list(STRUCTURED))
def test_structured_arrangement(name):
    fast, generic = _pair(STRUCTURED[name])
    assert _refuses_double_backward(fast)  # the structured kernel solved it
    assert not _refuses_double_backward(generic)
    with torch.no_grad():
        h = fast.response(GRID)
    np.testing.assert_allclose(h.numpy(), _reference(fast), rtol=1e-11, atol=1e-13)
    params = list(fast.parameters())
    grads = torch.autograd.grad(_loss(fast), params)
    ref = torch.autograd.grad(_loss(generic), list(generic.parameters()))
    assert len(grads) >= 3 and any(g.abs().max() > 1e-3 for g in grads)
    for (pname, _), g, r in zip(fast.named_parameters(), grads, ref):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10, msg=pname)


def test_structured_arrangement_gradcheck():
    """Frequency-dependent diagonals on both sides of the matrix (learnable delays, few
    parameters: gradcheck perturbs every one)."""
    fast, _ = _pair(lambda: (flamo.Series(_delays(), _gains()),
                             flamo.Series(flamo.Delay([1.0, 0.0, 2.0], learnable=True), _matrix(),
                                          flamo.Delay([1.0, 1.0, 0.0], learnable=True))))
    assert _refuses_double_backward(fast)
    names = [n for n, _ in fast.named_parameters()]
    inputs = tuple(p.detach().clone().requires_grad_(True) for p in fast.parameters())
    assert torch.autograd.gradcheck(lambda *v: response_with(fast, names, v, GRID), inputs,
                                    eps=1e-6, atol=1e-7, fast_mode=True)


@pytest.mark.parametrize("name", list(GENERIC))
def test_generic_arrangement(name):
    """Loops outside the structured form are solved densely (double backward works) and
    agree with numpy."""
    fast, _ = _pair(GENERIC[name])
    assert not _refuses_double_backward(fast)
    with torch.no_grad():
        h = fast.response(GRID)
    np.testing.assert_allclose(h.numpy(), _reference(fast), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("name", list(STRUCTURED))
def test_determinant_of_every_arrangement(name):
    """det(I - F B) from the structured factors, as the solve returns it and as
    Recursion.loop_determinant gives it, against numpy.linalg.det of the dense loop matrix."""
    from flamo.response import solve_loop

    fdn, _ = _pair(STRUCTURED[name])
    loop = fdn[1]
    with torch.no_grad():
        f, b = loop.forward_path.response(GRID).numpy(), loop.feedback_path.response(GRID).numpy()
        parts = (loop.forward_path.structured_response(GRID),
                 loop.feedback_path.structured_response(GRID))
        _, solved = solve_loop(*parts, determinant=True)
    ref = np.linalg.det(np.eye(N) - f @ b)
    for det in (loop.loop_determinant(GRID), solved):
        np.testing.assert_allclose(det.log_abs.numpy(), np.log(np.abs(ref)), atol=1e-12)
        np.testing.assert_allclose(np.exp(1j * det.phase.numpy()), ref / np.abs(ref), atol=1e-12)
        assert det.size == N and (det.relative_pivot > 1e-3).all()


@pytest.mark.parametrize("structured", [True, False])
def test_unstable_filters_after_the_matrix_raise(structured):
    """Gain 1.5 per round trip with the filters after an orthogonal matrix: all
    4 + 5 + 6 = 15 poles lie outside the unit circle, on the structured and the generic path."""
    boost = flamo.SOS(torch.tensor([[[1.5, 0, 0, 1, 0, 0]]] * N, dtype=torch.float64))
    loop = flamo.Recursion(flamo.Delay([4.0, 5.0, 6.0]), flamo.Series(_matrix(), boost),
                           structured_solve=structured).double()
    with pytest.raises(ValueError, match=r"15 pole\(s\) outside the circle of evaluation"):
        loop.response(flamo.Grid(256, dtype=torch.float64))
