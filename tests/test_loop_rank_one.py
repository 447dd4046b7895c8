"""The Sherman-Morrison loop solve of I - diag(l) (I + p q^T) diag(r) (a Householder matrix):
values and determinants against numpy's dense solves and slogdet, the fallback to the LU at
points where Delta = I - diag(l r) is (nearly) singular although P is not, the pivot analogue
on truly singular loops, the winding number, gradients against the LU paths (float64, 1e-10)
and gradcheck, batch dims, K > 1 right-hand sides, and the Householder Matrix inside
Recursion in every arrangement."""

import numpy as np
import pytest
import torch

import flamo
from flamo.functional import (MAX_PHASE_STEP, IdentityPlusRankOne, diagonal_loop_solve, householder,
                              singular_pivot_threshold, winding_number)
from flamo.functional import loop_solve
from conftest import response_with

C128 = torch.complex128
SIDES = [("left",), ("right",), ("left", "right")]


def _complex(rng, *shape):
    return torch.tensor(rng.normal(size=shape) + 1j * rng.normal(size=shape), dtype=C128)


def _householder(rng, n, batch=()):
    """Factors (p, q) of I - 2 u u^T / |u|^2 for a random real u, (*batch, 1, n)."""
    u = torch.tensor(rng.normal(size=(*batch, 1, n)), dtype=C128)
    return -2 * u / (u * u).sum(-1, keepdim=True), u


def _dense_loops(a, left=None, right=None):
    """(..., M, N, N) I - diag(l) A diag(r), built by numpy-style broadcasting."""
    loop = a
    if left is not None:
        loop = left.unsqueeze(-1) * loop
    if right is not None:
        loop = loop * right.unsqueeze(-2)
    return torch.eye(a.shape[-1], dtype=a.dtype) - loop


def _numpy_solve(loops, rhs):
    return np.linalg.solve(loops.numpy(), np.broadcast_to(rhs.numpy(), loops.shape[:-1] + rhs.shape[-1:]))


def _relative(x, ref):
    return np.linalg.norm(x - ref, axis=(-2, -1)) / np.linalg.norm(ref, axis=(-2, -1))


@pytest.fixture
def lu_points(monkeypatch):
    """Counts the loop matrices that go through an LU factorization (the LU kernel's
    torch.linalg.lu_factor_ex): the points the Sherman-Morrison path hands to the LU, or
    every point on the LU path."""
    count = {"matrices": 0}
    inner = torch.linalg.lu_factor_ex

    def counted(a, *args, **kwargs):
        count["matrices"] += a.shape[:-2].numel()
        return inner(a, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "lu_factor_ex", counted)
    return count


@pytest.mark.parametrize("sides", SIDES)
@pytest.mark.parametrize("k", [1, 3])
def test_matches_numpy_and_the_lu_path(sides, k, lu_points):
    rng = np.random.default_rng(1)
    p, q = _householder(rng, 5)
    a = IdentityPlusRankOne(p, q)
    rhs = _complex(rng, 9, 5, k)
    diags = {side: 0.6 * _complex(rng, 9, 5) for side in sides}
    x, det = diagonal_loop_solve(a, rhs, **diags, determinant=True)
    assert lu_points["matrices"] == 0
    loops = _dense_loops(a.dense(), **diags)
    assert (_relative(x.numpy(), _numpy_solve(loops, rhs)) < 1e-10).all()
    x_lu, det_lu = diagonal_loop_solve(a.dense(), rhs, **diags, determinant=True)
    assert (_relative(x.numpy(), x_lu.numpy()) < 1e-10).all()
    sign, logabs = np.linalg.slogdet(loops.numpy())
    np.testing.assert_allclose(det.log_abs.numpy(), logabs, atol=1e-12)
    np.testing.assert_allclose(np.exp(1j * det.phase.numpy()), sign, atol=1e-12)
    np.testing.assert_allclose(det.phase.numpy(), det_lu.phase.numpy(), atol=1e-12)
    assert (det.relative_pivot > 1e-3).all() and not det.singular.any()


def test_householder_factors_are_the_mapping():
    """The Matrix module's factors reproduce its dense matrix."""
    m = flamo.Matrix(6, kind="householder", seed=3).double()
    g = flamo.Grid(16, dtype=torch.float64)
    r = m.structured_response(g)
    torch.testing.assert_close(r.rank_one.dense(), r.matrix, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(r.matrix[0].real, householder(m.raw.detach()), rtol=1e-14, atol=1e-14)


def test_only_the_householder_mapping_carries_factors():
    g = flamo.Grid(16, dtype=torch.float64)
    assert flamo.Matrix(4, kind="householder", seed=0).structured_response(g).rank_one is not None
    custom = flamo.Matrix(4, kind="householder", seed=0, mapping=lambda u: householder(u).mT)
    assert custom.structured_response(g).rank_one is None
    for kind in ("orthogonal", "hadamard", "circulant", "free"):
        assert flamo.Matrix(4, kind=kind, seed=0).structured_response(g).rank_one is None


def test_matmul_keeps_the_factors_only_with_the_matrix():
    from flamo.response import matmul

    g = flamo.Grid(16, dtype=torch.float64)
    h = flamo.Matrix(3, kind="householder", seed=0).double().structured_response(g)
    delays = flamo.Delay([1.0, 2.0, 3.0]).double().structured_response(g)
    gains = flamo.Gain([0.5, 0.6, 0.7]).double().structured_response(g)
    for fb in (matmul(delays, h), matmul(h, delays), matmul(gains, h), matmul(delays, matmul(gains, h))):
        assert fb.is_scaled and fb.rank_one is h.rank_one
    other = flamo.Matrix(3, kind="orthogonal", seed=0).double().structured_response(g)
    assert matmul(other, matmul(h, delays)).rank_one is None  # a product of two matrices
    assert matmul(matmul(delays, h), other).rank_one is None
    torch.testing.assert_close(matmul(gains, h).data, gains.dense() @ h.matrix)


def _lossless_left(rng, m, n, exact_points, near_points, near=1e-9):
    """Unit-modulus l, away from 1 except: at ``exact_points`` one line has l_i = 1
    (Delta_ii = 0; P is regular for a Householder A with u_i != 0: two lines in phase would
    make it singular), at ``near_points`` one has l_i = exp(1j near)."""
    theta = rng.uniform(0.5, 2 * np.pi - 0.5, size=(m, n))
    for k in exact_points:
        theta[k, rng.choice(n, 1)] = 0.0
    for k in near_points:
        theta[k, rng.choice(n, 1)] = near
    return torch.polar(torch.ones(m, n, dtype=torch.float64), torch.tensor(theta)).to(C128)


@pytest.mark.parametrize("sides", SIDES)
def test_near_singular_delta_falls_back_to_the_lu(sides, lu_points, monkeypatch):
    """Lossless lines in phase (Delta_ii = 0 or 1e-9): those points take the LU and match
    numpy to 1e-10; the Sherman-Morrison formula alone would not (inf / nan at Delta_ii = 0)."""
    rng = np.random.default_rng(2)
    m, n = 8, 6
    p, q = _householder(rng, n)
    a = IdentityPlusRankOne(p, q)
    lossless = _lossless_left(rng, m, n, exact_points=[0, 3], near_points=[5])
    diags = {"left": lossless} if sides == ("left",) else (
        {"right": lossless} if sides == ("right",) else
        {"left": lossless, "right": torch.ones(m, n, dtype=C128)})
    rhs = _complex(rng, m, n, 2)
    x, det = diagonal_loop_solve(a, rhs, **diags, determinant=True)
    assert lu_points["matrices"] == 3
    loops = _dense_loops(a.dense(), **diags)
    assert np.linalg.cond(loops.numpy()).max() < 1e4  # P itself is well conditioned
    assert (_relative(x.numpy(), _numpy_solve(loops, rhs)) < 1e-10).all()
    sign, logabs = np.linalg.slogdet(loops.numpy())
    np.testing.assert_allclose(det.log_abs.numpy(), logabs, atol=1e-12)
    np.testing.assert_allclose(np.exp(1j * det.phase.numpy()), sign, atol=1e-12)
    assert not det.singular.any()
    monkeypatch.setattr(loop_solve, "RANK_ONE_MIN_DIAGONAL", 0.0)  # the formula everywhere
    x_formula = diagonal_loop_solve(a, rhs, **diags)
    assert not torch.isfinite(x_formula[[0, 3]]).all()


@pytest.mark.parametrize("with_right", [False, True])
def test_blocks_of_points(monkeypatch, lu_points, with_right):
    """Points in blocks (3, 3, 2 of 8), two of them on the LU fallback: values and the
    determinant against numpy, gradients against one block."""
    rng = np.random.default_rng(9)
    m, n = 8, 5
    p, q = _householder(rng, n)
    left = _lossless_left(rng, m, n, exact_points=[1, 6], near_points=[])
    right = None
    if with_right:
        right = 0.9 * torch.ones(m, n, dtype=C128)
        right[[1, 6]] = 1.0
    rhs = _complex(rng, m, n, 2)
    inputs = (p, q, rhs, left) + ((right,) if with_right else ())

    def solve(p, q, rhs, left, right=None):
        return diagonal_loop_solve(IdentityPlusRankOne(p, q), rhs, left=left, right=right)

    one_block = _gradients(solve, inputs)
    monkeypatch.setattr(loop_solve, "RANK_ONE_BLOCK_VALUES", 3 * n)
    blocks = []  # one reciprocal of Delta per block
    reciprocal = torch.Tensor.reciprocal
    monkeypatch.setattr(torch.Tensor, "reciprocal", lambda t: blocks.append(t.shape) or reciprocal(t))
    x, det = diagonal_loop_solve(IdentityPlusRankOne(p, q), rhs, left=left, right=right, determinant=True)
    assert [b[0] for b in blocks] == [3, 3, 2]
    monkeypatch.setattr(torch.Tensor, "reciprocal", reciprocal)
    assert lu_points["matrices"] == 4  # two per call
    loops = _dense_loops(IdentityPlusRankOne(p, q).dense(), left, right)
    assert (_relative(x.numpy(), _numpy_solve(loops, rhs)) < 1e-10).all()
    sign, logabs = np.linalg.slogdet(loops.numpy())
    np.testing.assert_allclose(det.log_abs.numpy(), logabs, atol=1e-12)
    np.testing.assert_allclose(np.exp(1j * det.phase.numpy()), sign, atol=1e-12)
    for g, ref in zip(_gradients(solve, inputs), one_block):
        torch.testing.assert_close(g, ref, rtol=1e-12, atol=1e-12)


def test_fallback_threshold_is_relative_to_the_scale(lu_points):
    """min |Delta_ii| just above / below RANK_ONE_MIN_DIAGONAL * s decides the path."""
    rng = np.random.default_rng(3)
    p, q = _householder(rng, 4)
    a = IdentityPlusRankOne(p, q)
    left = torch.full((2, 4), 3.0, dtype=C128)  # the other lines dominate the scale s
    tau = loop_solve.RANK_ONE_MIN_DIAGONAL
    for _ in range(3):  # s depends a little on line 1 too: iterate to the fixed point
        s_points = loop_solve.diagonal_loop_scale(a.dense(), left=left).real
        left[:, 1] = 1 - torch.tensor([1.01, 0.99], dtype=torch.float64) * tau * s_points
    s_points = loop_solve.diagonal_loop_scale(a.dense(), left=left).real
    assert ((1 - left[:, 1].real) / s_points - tau).sign().tolist() == [1, -1]
    diagonal_loop_solve(a, _complex(rng, 2, 4, 1), left=left)
    assert lu_points["matrices"] == 1


def _gradients(fn, inputs):
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    x = fn(*inputs)
    weights = torch.linspace(0.5, 1.5, x.numel(), dtype=torch.float64).reshape(x.shape)
    return torch.autograd.grad((weights * x.abs() ** 2).sum(), inputs)


@pytest.mark.parametrize("sides", SIDES)
def test_gradients_match_the_lu_path(sides):
    """Gradients of l, r, rhs and of u through p = -2 u / |u|^2, q = u, against the LU kernel
    on the dense Householder matrix (autograd through the mapping), with points of both kinds."""
    rng = np.random.default_rng(4)
    m, n = 8, 5
    u = torch.tensor(rng.normal(size=(1, n)), dtype=torch.float64)
    lossless = _lossless_left(rng, m, n, exact_points=[], near_points=[2], near=1e-4)
    diags = [lossless if s == "left" else 0.7 * _complex(rng, m, n) for s in sides]
    rhs = _complex(rng, m, n, 2)

    def rank_one(u, rhs, *d):
        uc = u.to(C128)
        a = IdentityPlusRankOne(-2 * uc / (u * u).sum(-1, keepdim=True), uc)
        return diagonal_loop_solve(a, rhs, **dict(zip(sides, d)))

    def lu(u, rhs, *d):
        return diagonal_loop_solve(householder(u).to(C128).unsqueeze(-3), rhs, **dict(zip(sides, d)))

    for g, ref in zip(_gradients(rank_one, (u, rhs, *diags)), _gradients(lu, (u, rhs, *diags))):
        assert ref.abs().max() > 1e-3
        torch.testing.assert_close(g, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("sides", SIDES)
def test_gradcheck(sides):
    """p, q, rhs and the diagonals, with one point on the LU fallback."""
    rng = np.random.default_rng(5)
    m, n = 4, 3
    p, q = _householder(rng, n)
    left = 0.6 * _complex(rng, m, n)
    left[1, 0] = 1.0  # Delta_00 = 0 at point 1 (with right = None or r_0 = 1 there)
    diags = {"left": left} if "left" in sides else {}
    if "right" in sides:
        right = 0.6 * _complex(rng, m, n)
        right[1, 0] = 1.0
        diags["right"] = right
    inputs = tuple(t.clone().requires_grad_(True) for t in (p, q, _complex(rng, m, n, 2), *diags.values()))

    def solve(p, q, rhs, *d):
        return diagonal_loop_solve(IdentityPlusRankOne(p, q), rhs, **dict(zip(diags, d)))

    assert torch.autograd.gradcheck(solve, inputs, eps=1e-6, atol=1e-7)


def test_batch_dims_and_broadcast_rhs(lu_points):
    """A batch of loops (2 Householder vectors x 3 diagonals) and a rhs shared by all
    points; values and gradients against the LU kernel."""
    rng = np.random.default_rng(6)
    m, n = 5, 4
    p, q = _householder(rng, n, batch=(2, 1))  # (2, 1, 1, n)
    left = 0.6 * _complex(rng, 3, m, n)
    left[1, 2, 0] = 1.0  # one LU point
    rhs = _complex(rng, 1, n, 2)
    x = diagonal_loop_solve(IdentityPlusRankOne(p, q), rhs, left=left)
    assert x.shape == (2, 3, m, n, 2) and lu_points["matrices"] == 2
    x_lu = diagonal_loop_solve(IdentityPlusRankOne(p, q).dense(), rhs, left=left)
    assert (_relative(x.numpy(), x_lu.numpy()) < 1e-10).all()
    g = _gradients(lambda p, q, l, r: diagonal_loop_solve(IdentityPlusRankOne(p, q), r, left=l),
                   (p, q, left, rhs))
    g_lu = _gradients(lambda p, q, l, r: diagonal_loop_solve(IdentityPlusRankOne(p, q).dense(), r, left=l),
                      (p, q, left, rhs))
    for a, b in zip(g, g_lu):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_rhs_with_more_batch_dims_than_the_loop():
    rng = np.random.default_rng(7)
    p, q = _householder(rng, 3)
    left = 0.6 * _complex(rng, 4, 3)
    left[2, 1] = 1.0
    rhs = _complex(rng, 2, 4, 3, 1)
    x, det = diagonal_loop_solve(IdentityPlusRankOne(p, q), rhs, left=left, determinant=True)
    x_lu, det_lu = diagonal_loop_solve(IdentityPlusRankOne(p, q).dense(), rhs, left=left, determinant=True)
    assert (_relative(x.numpy(), x_lu.numpy()) < 1e-10).all()
    assert det.log_abs.shape == (2, 4)  # the solution's batch dims
    np.testing.assert_allclose(det.log_abs.numpy(), np.broadcast_to(det_lu.log_abs.numpy(), (2, 4)), atol=1e-12)


def test_refuses_double_backward():
    rng = np.random.default_rng(8)
    p, q = (t.requires_grad_(True) for t in _householder(rng, 3))
    x = diagonal_loop_solve(IdentityPlusRankOne(p, q), _complex(rng, 2, 3, 1), left=0.5 * _complex(rng, 2, 3))
    with pytest.raises(RuntimeError, match="first-order gradients only.*structured_solve=False"):
        torch.autograd.grad(x.abs().sum(), p, create_graph=True)


# -- inside Recursion -----------------------------------------------------------------------
N = 4
#: alias_decay_db = 0: line 0 below (delay 2, lossless, allpass filters) has l_0 r_0 = 1 at
#: DC and Nyquist, so Delta_00 = 0 there while P stays regular (the other lines are lossy).
GAMMA_1 = flamo.Grid(nfft=64, dtype=torch.float64)


def _delays():
    return flamo.Delay([2.0, 3.0, 5.0, 7.0], learnable=True)


def _gains():
    return flamo.Gain([1.0, 0.9, 0.8, 0.7])


def _filters(seed):
    """Second-order allpass sections per line, (a2 + a1 z^-1 + z^-2) / (1 + a1 z^-1 + a2 z^-2):
    lossless, learnable, and 1 at DC and at Nyquist."""
    rng = np.random.default_rng(seed)
    a1, a2 = rng.uniform(-0.5, 0.5, size=N), np.full(N, 0.3)
    sos = np.stack([a2, a1, np.ones(N), np.ones(N), a1, a2], -1)[:, None, :]
    return flamo.SOS(torch.tensor(sos))


def _householder_matrix():
    return flamo.Matrix(N, kind="householder", init=[1.0, 2.0, -0.5, 0.7])


ARRANGEMENTS = {
    "filters in the forward path": lambda: (flamo.Series(_delays(), _filters(0), _gains()),
                                            _householder_matrix()),
    "filters before the matrix": lambda: (flamo.Series(_delays(), _gains()),
                                          flamo.Series(_filters(0), _householder_matrix())),
    "filters after the matrix": lambda: (flamo.Series(_delays(), _gains()),
                                         flamo.Series(_householder_matrix(), _filters(0))),
    "filters on both sides": lambda: (flamo.Series(_delays(), _filters(1)),
                                      flamo.Series(_filters(0), _householder_matrix(), _filters(2),
                                                   _gains())),
    "gains next to the matrix": lambda: (_delays(), flamo.Series(_gains(), _householder_matrix())),
}


def _fdn(parts, structured):
    forward, feedback = parts
    loop = flamo.Recursion(forward, feedback, structured_solve=structured)
    return flamo.Series(flamo.Gain.random((N, 1), seed=0), loop, flamo.Gain.random((1, N), seed=2)).double()


@pytest.mark.filterwarnings("ignore::flamo.exceptions.LoopResolutionWarning")  # line 0's poles
@pytest.mark.parametrize("name", list(ARRANGEMENTS))
def test_recursion_arrangements_lossless(name, lu_points):
    """A lossless loop on a gamma = 1 grid (Delta_ii = 0 at DC for every line, and near 0
    wherever a line is in phase): response against numpy per point, gradients of every
    parameter (u of the Householder matrix included) against the generic solve."""
    fast, generic = _fdn(ARRANGEMENTS[name](), True), _fdn(ARRANGEMENTS[name](), False)
    generic.load_state_dict(fast.state_dict())
    loss = lambda fdn: (fdn.response(GAMMA_1).abs() - 0.5).pow(2).sum()  # noqa: E731
    grads = torch.autograd.grad(loss(fast), list(fast.parameters()))
    assert lu_points["matrices"] == 2  # DC and Nyquist; the LU path factors all 33 points
    refs = torch.autograd.grad(loss(generic), list(generic.parameters()))
    names = [n for n, _ in fast.named_parameters()]
    assert any("raw" in n and g.numel() == N for n, g in zip(names, grads))
    for pname, g, r in zip(names, grads, refs):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10, msg=pname)
    b, loop, c = fast[0], fast[1], fast[2]
    with torch.no_grad():
        h = fast.response(GAMMA_1).numpy()[:, 0, 0]
        f, fb = loop.forward_path.response(GAMMA_1).numpy(), loop.feedback_path.response(GAMMA_1).numpy()
        bb, cc = b.response(GAMMA_1).numpy()[0], c.response(GAMMA_1).numpy()[0]
    ref = np.array([cc @ np.linalg.solve(np.eye(N) - f[k] @ fb[k], f[k] @ bb) for k in range(GAMMA_1.M)])[:, 0, 0]
    np.testing.assert_allclose(h, ref, rtol=1e-10, atol=1e-12)


def test_recursion_gradcheck_householder():
    grid = flamo.Grid(nfft=16, alias_decay_db=30, dtype=torch.float64)
    fdn = _fdn((flamo.Series(flamo.Delay([1.0, 2.0, 3.0, 1.0], learnable=True), flamo.Gain([0.9, 0.8, 0.95, 0.7])),
                _householder_matrix()), True)
    names = [n for n, _ in fdn.named_parameters()]
    inputs = tuple(p.detach().clone().requires_grad_(True) for p in fdn.parameters())
    assert torch.autograd.gradcheck(lambda *v: response_with(fdn, names, v, grid), inputs,
                                    eps=1e-6, atol=1e-7, fast_mode=True)


def test_singular_loop_raises_as_on_the_lu_path(lu_points):
    """Odd delays, lossless, Householder A: at z = -1, diag(z^-m) = -I, so Delta = 2 I is
    regular but P = I + A is singular (A has the eigenvalue -1). The Sherman-Morrison pivot
    flags it, and Recursion raises as the LU path does."""
    points = flamo.Points(np.exp(1j * np.array([0.3, np.pi, 2.0])), dtype=torch.float64)
    delays = flamo.Delay([1.0, 3.0, 5.0, 7.0])
    loop = flamo.Recursion(delays, _householder_matrix()).double()
    free = flamo.Recursion(delays, flamo.Matrix(N, kind="free", init=_householder_matrix().double().matrix.detach())).double()
    det, det_lu = loop.loop_determinant(points), free.loop_determinant(points)
    threshold = singular_pivot_threshold(N, torch.float64)
    assert det.singular.tolist() == det_lu.singular.tolist() == [False, True, False]
    assert det.relative_pivot[1] <= threshold and (det.relative_pivot[[0, 2]] > 1e-3).all()
    assert lu_points["matrices"] == 3  # the LU path only: Delta = 2 I, found by the formula's pivot
    np.testing.assert_allclose(det.log_abs[[0, 2]].numpy(), det_lu.log_abs[[0, 2]].numpy(), atol=1e-12)
    for system in (loop, free):
        with pytest.raises(ValueError, match="singular to working precision"):
            system.response(points)


def test_winding_number_of_an_unstable_loop():
    """Gain 1.2 per line: every pole outside the unit circle; the rank-one determinant gives
    the LU path's log |det|, phase and winding number (-sum m = -17), and Recursion raises."""
    grid = flamo.Grid(nfft=2048, dtype=torch.float64)
    forward = flamo.Series(flamo.Delay([2.0, 3.0, 5.0, 7.0]), flamo.Gain([1.2] * N))
    loop = flamo.Recursion(forward, _householder_matrix()).double()
    free = flamo.Recursion(forward, flamo.Matrix(N, kind="free", init=_householder_matrix().double().matrix.detach())).double()
    det, det_lu = loop.loop_determinant(grid), free.loop_determinant(grid)
    np.testing.assert_allclose(det.log_abs.numpy(), det_lu.log_abs.numpy(), atol=1e-12)
    np.testing.assert_allclose(np.exp(1j * det.phase.numpy()), np.exp(1j * det_lu.phase.numpy()), atol=1e-12)
    winding, largest, _ = winding_number(det.phase, grid.nfft)
    assert int(winding) == -17 and largest <= MAX_PHASE_STEP and int(winding_number(det_lu.phase, grid.nfft)[0]) == -17
    with pytest.raises(ValueError, match=r"17 pole\(s\) outside"):
        loop.response(grid)


@pytest.mark.filterwarnings("ignore::flamo.exceptions.LoopResolutionWarning")
@pytest.mark.parametrize("t60, alias_decay_db", [(None, 1.0), (1.0, 0.0)])  # lossless, lossy
def test_float32_fdn_as_accurate_as_the_lu_path(t60, alias_decay_db, lu_points):
    """The builder's Householder FDN in float32 against its float64 response, lossless
    (1 dB of grid decay: min |Delta_ii| about 0.004 near DC) and with T60 = 1 s: the
    Sherman-Morrison path's error is within a small factor of the LU path's (the same matrix
    values as a free Matrix; measured 3.0x and 1.0x)."""
    from flamo.reverb import build_fdn

    def fdn():
        return build_fdn(delays=[149, 211, 263, 293, 337, 389, 421, 479], matrix="householder",
                         seed=3, t60=t60)

    grid = flamo.Grid(2 ** 12, alias_decay_db=alias_decay_db)
    fast, lu = fdn(), fdn()
    lu["loop"].feedback_path = flamo.Matrix(8, kind="free", init=lu["loop"].feedback_path.matrix.detach())
    with torch.no_grad():
        ref = fdn().double().response(grid.replace(dtype=torch.float64))
        floor = 1e-3 * ref.abs().max()
        errors = []
        for system in (fast, lu):
            before = lu_points["matrices"]
            errors.append(((system.response(grid).to(ref.dtype) - ref).abs() / ref.abs().clamp_min(floor)).max())
            if system is fast:
                fallback = lu_points["matrices"] - before
    # a line with 1 - |l_i| < 2^-6 s (lossless, or T60 1 s on a line of 149 samples) falls back
    # on about 2^-6 s / pi of the grid (s about 1.9 here)
    assert 0 < fallback < grid.M // 8, (fallback, grid.M)
    assert errors[0] <= 4 * errors[1] and errors[1] < 1e-3
