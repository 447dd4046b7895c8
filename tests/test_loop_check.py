"""Loop checks of Recursion: singular loops and poles outside the circle of evaluation, from the
determinant the LU factors of the solve give. Ground truth: closed forms (one delay line with
gain g has its m poles at radius g^(1/m)), eigenvalues of state-space realizations, roots of
characteristic polynomials, and reproducers of two defects of the earlier check: singular
loops that passed it (defect 1) and unstable loops evaluated without a word (defect 2)."""

import contextlib
import math
import warnings

import numpy as np
import pytest
import torch

import flamo
from flamo.exceptions import LoopResolutionWarning, UnstableLoopWarning
from flamo.functional import MAX_PHASE_STEP, singular_pivot_threshold, winding_number
from flamo.reverb import build_fdn

F64 = torch.float64


@contextlib.contextmanager
def _no_loop_warnings():
    """A context that turns the loop checks' warnings into errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", LoopResolutionWarning)
        warnings.simplefilter("error", UnstableLoopWarning)
        yield


# -- reproducers: singular loops that passed (defect 1), unstable loops unnoticed (defect 2) --

@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_defect1_odd_orthogonal_fdn_is_singular_at_dc(dtype):
    """Odd N with det A = +1 has eigenvalue 1, so I - A is singular at DC on a lossless grid;
    rounding used to leave a tiny pivot and an impulse response starting at -1470."""
    fdn = build_fdn(delays=[101, 211, 307], matrix="orthogonal", seed=3)
    grid = flamo.Grid(2 ** 12, dtype=dtype)
    with pytest.raises(ValueError, match=r"singular to working precision at bin k=0 \(0.000 Hz\)"):
        fdn.to(dtype).impulse_response(grid)


def test_defect1_lossless_pair_is_singular_at_nyquist():
    """I - diag(z^-4, z^-5) R is singular at z = -1 for every rotation R; max |H| was 1.5e6."""
    loop = flamo.Recursion(flamo.Delay([4.0, 5.0]), flamo.Matrix(2, seed=0))
    with pytest.raises(ValueError, match=r"bin k=128 \(24000.000 Hz\).*relative pivot"):
        loop.response(flamo.Grid(256))
    with pytest.raises(ValueError, match=r"bin k=128"):  # the generic solve is checked alike
        flamo.Recursion(flamo.Delay([4.0, 5.0]), flamo.Matrix(2, seed=0),
                        structured_solve=False).response(flamo.Grid(256))


@pytest.mark.parametrize("structured", [True, False])
@pytest.mark.parametrize("feedback", [flamo.Gain([1.5]), flamo.Gain([[1.5]])])
def test_defect2_unstable_loop_raises(structured, feedback):
    """Poles at radius 1.5^(1/4) = 1.107 outside the unit circle: frequency sampling gave the
    anti-causal twin (h[0] = -0.667, truth 0 then growing)."""
    loop = flamo.Recursion(flamo.Delay([4.0]), feedback, structured_solve=structured)
    with pytest.raises(ValueError, match=r"4 pole\(s\) outside the circle of evaluation "
                                         r"\|z\| = 1/gamma = 1 .*on_unstable='warn'"):
        loop.impulse_response(flamo.Grid(256))


def test_defect2_warns_on_request_and_returns_the_wrapped_twin():
    """What the warning describes: z^-4 / (1 - 1.5 z^-4) expanded for |z| < 1.5^(1/4) is
    -sum_{k >= 0} z^(4k) / 1.5^(k+1), so h[-4k] = -(2/3)^(k+1), wrapped into 256 samples."""
    loop = flamo.Recursion(flamo.Delay([4.0]), flamo.Gain([1.5]), on_unstable="warn").double()
    with pytest.warns(UnstableLoopWarning, match="4 pole"):
        h = loop.impulse_response(flamo.Grid(256, dtype=F64))[:, 0, 0]
    twin = torch.zeros(256, dtype=F64)
    k = torch.arange(64)
    twin[(-4 * k) % 256] = -(2 / 3) ** (k + 1.0).double() / (1 - (2 / 3) ** 64)
    torch.testing.assert_close(h, twin, rtol=0, atol=1e-12)


def test_unstable_loop_is_evaluated_right_once_the_circle_encloses_its_poles():
    """With 1/gamma above the pole radius the grid returns the causal, growing response:
    h[4k] = 1.5^(k - 1) for k >= 1 (up to the aliasing of the next wrap)."""
    loop = flamo.Recursion(flamo.Delay([4.0]), flamo.Gain([1.5])).double()
    grid = flamo.Grid(256, alias_decay_db=20 * 256 * math.log10(1.5 ** 0.25) + 300, dtype=F64)
    with _no_loop_warnings():
        h = loop.impulse_response(grid)[:, 0, 0]
    k = torch.arange(1, 20, dtype=F64)
    torch.testing.assert_close(h[4 * k.long()], 1.5 ** (k - 1), rtol=1e-9, atol=0)
    assert h[0].abs() < 1e-9


# -- closed forms ---------------------------------------------------------------------------

@pytest.mark.parametrize("m", [1, 3, 8])
@pytest.mark.parametrize("g", [0.5, 0.9, 1.2, 2.0])
@pytest.mark.parametrize("db", [0.0, 40.0])
def test_one_delay_line_pole_radius_is_g_to_the_one_over_m(m, g, db):
    """det P = 1 - g z^-m: log |det P| and its phase against the closed form, and the winding
    number -m exactly when g^(1/m) > 1/gamma."""
    grid = flamo.Grid(512, alias_decay_db=db, dtype=F64)
    loop = flamo.Recursion(flamo.Delay([float(m)]), flamo.Gain(torch.tensor([g], dtype=F64)))
    det = loop.loop_determinant(grid)
    exact = 1 - g * grid.z.numpy() ** -m
    np.testing.assert_allclose(det.log_abs.numpy(), np.log(np.abs(exact)), atol=1e-12)
    np.testing.assert_allclose(np.exp(1j * det.phase.numpy()), exact / np.abs(exact), atol=1e-12)
    winding, largest, _ = winding_number(det.phase, grid.nfft)
    assert largest < MAX_PHASE_STEP
    outside = g ** (1 / m) > 1 / grid.gamma
    assert int(winding) == (-m if outside else 0)
    if outside:
        with pytest.raises(ValueError, match=f"{m} pole"):
            loop.response(grid)
    else:
        loop.response(grid)


@pytest.mark.parametrize("nfft", [64, 65])
def test_winding_number_counts_the_zeros_outside(nfft):
    """det P = prod_j (1 - lambda_j z^-1) built directly at the grid points (even and odd nfft):
    the winding number is minus the number of lambda_j outside the circle."""
    rng = np.random.default_rng(nfft)
    radii = np.array([0.3, 0.7, 1.3, 1.6, 2.5])
    for outside in range(len(radii) + 1):
        lam = radii[rng.permutation(5)[:outside]] if outside else np.array([])
        lam = np.concatenate([lam, 0.5 * np.ones(3 - min(outside, 3))])
        angles = rng.uniform(0, np.pi, lam.size)
        poles = np.concatenate([lam * np.exp(1j * angles), lam * np.exp(-1j * angles)])  # real system
        z = flamo.Grid(nfft, dtype=F64).z.numpy()
        det = np.prod(1 - poles[:, None] / z, axis=0)
        winding, largest, _ = winding_number(torch.tensor(np.angle(det)), nfft)
        assert largest < MAX_PHASE_STEP
        assert int(winding) == -2 * int((np.abs(poles[: poles.size // 2]) > 1).sum())


def test_winding_number_checks_its_input():
    with pytest.raises(ValueError, match="nfft // 2 \\+ 1 = 33"):
        winding_number(torch.zeros(32), 64)


# -- eigenvalues of state-space realizations ------------------------------------------------

def _fdn_state_matrix(m, A, g):
    """Transition matrix of the FDN s[n] = A (g o s[n - m]) with the last m_i values of every
    line as the state (size sum(m)): its eigenvalues are the poles of (I - diag(g z^-m) A)^-1."""
    offsets = np.concatenate([[0], np.cumsum(m)])
    T = np.zeros((offsets[-1], offsets[-1]))
    for i in range(len(m)):
        for k in range(len(m)):  # s_i[n] <- A_ik g_k s_k[n - m_k]
            T[offsets[i], offsets[k] + m[k] - 1] = A[i, k] * g[k]
        for j in range(1, m[i]):  # shift register of line i
            T[offsets[i] + j, offsets[i] + j - 1] = 1.0
    return T


def _loops(m, A, g, dtype):
    """The same loop written three ways: diagonal forward (structured, left form), matrix
    forward (structured, right form) and generic solve."""
    t = lambda x: torch.tensor(x, dtype=dtype)  # noqa: E731
    lines = lambda: flamo.Series(flamo.Delay(t(m.astype(float))), flamo.Gain(t(g)))  # noqa: E731
    return {"left": flamo.Recursion(lines(), flamo.Gain(t(A))),
            "right": flamo.Recursion(flamo.Gain(t(A)), lines()),
            "generic": flamo.Recursion(lines(), flamo.Gain(t(A)), structured_solve=False)}


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_pole_count_matches_state_space_eigenvalues(dtype):
    """Random loops with delays 1..8 and free matrices around the stability limit: where the
    grid resolves the loop, -winding number = the number of eigenvalues outside 1/gamma, for
    every way of writing the loop; away from the circle it must resolve it."""
    rng = np.random.default_rng(0)
    nfft, checked, unstable = 2 ** 11, 0, 0
    for case in range(40):
        n = int(rng.integers(1, 5))
        m = rng.integers(1, 9, n)
        A = rng.normal(size=(n, n)) * rng.uniform(0.4, 1.6) / math.sqrt(n)
        g = rng.uniform(0.7, 1.0, n)
        db = float(rng.choice([0.0, 30.0]))
        grid = flamo.Grid(nfft, alias_decay_db=db, dtype=dtype)
        radius = np.abs(np.linalg.eigvals(_fdn_state_matrix(m, A, g)))
        outside = int((radius > 1 / grid.gamma).sum())
        margin = np.min(np.abs(radius * grid.gamma - 1))
        for name, loop in _loops(m, A, g, dtype).items():
            det = loop.loop_determinant(grid)
            winding, largest, _ = winding_number(det.phase, nfft)
            if margin > 8 * math.pi / nfft:
                assert largest <= MAX_PHASE_STEP, (case, name, margin)
            if largest <= MAX_PHASE_STEP:
                assert -int(winding) == outside, (case, name, radius.max())
                checked += 1
                unstable += outside > 0
    assert checked > 90 and unstable > 20  # the draw covers both sides of the limit


def test_pole_count_with_a_filter_in_the_loop_matches_polynomial_roots():
    """One line z^-m / (1 - p z^-1) with feedback gain g: det P = (1 - p z^-1 - g z^-m) /
    (1 - p z^-1), so the loop poles are the roots of z^m - p z^(m-1) - g, and the filter pole
    (inside) does not count."""
    grid = flamo.Grid(1024, dtype=F64)
    for m, p, g in [(5, 0.6, 0.3), (5, 0.6, 0.5), (3, -0.8, 0.25), (7, 0.9, 0.2), (2, 0.3, 1.1)]:
        sos = torch.tensor([[1.0, 0, 0, 1, -p, 0]], dtype=F64)
        loop = flamo.Recursion(flamo.Series(flamo.Delay([float(m)]), flamo.SOS(sos)),
                               flamo.Gain(torch.tensor([[g]], dtype=F64)))
        roots = np.roots(np.concatenate([[1.0, -p], np.zeros(m - 2), [-g]]))
        outside = int((np.abs(roots) > 1).sum())
        winding, largest, _ = winding_number(loop.loop_determinant(grid).phase, grid.nfft)
        assert largest <= MAX_PHASE_STEP
        assert -int(winding) == outside, (m, p, g, np.abs(roots).max())
        if outside:
            with pytest.raises(ValueError, match=f"{outside} pole"):
                loop.response(grid)


def test_loop_determinant_matches_numpy_det():
    """log |det| and phase of every solve path against numpy.linalg.det of the dense loop
    matrix built independently (diagonal loop, left, right, generic)."""
    rng = np.random.default_rng(5)
    m, A, g = np.array([3, 5, 7]), rng.normal(size=(3, 3)) / 2, np.array([0.9, 0.8, 0.7])
    grid = flamo.Grid(128, alias_decay_db=10, dtype=F64)
    z = grid.z.numpy()
    d = g * z[:, None] ** -m.astype(float)
    ref = np.linalg.det(np.eye(3) - d[:, :, None] * A)  # left: diag(d) A
    ref_diag = np.prod(1 - 0.5 * d, axis=1)
    cases = dict(_loops(m, A, g, F64))
    cases["diagonal"] = flamo.Recursion(flamo.Series(flamo.Delay(m.astype(float)), flamo.Gain(g)),
                                        flamo.Gain(torch.full((3,), 0.5, dtype=F64)))
    for name, loop in cases.items():
        det = loop.loop_determinant(grid)
        expect = ref_diag if name == "diagonal" else ref
        np.testing.assert_allclose(det.log_abs.numpy(), np.log(np.abs(expect)), atol=1e-12, err_msg=name)
        np.testing.assert_allclose(np.exp(1j * det.phase.numpy()), expect / np.abs(expect), atol=1e-12,
                                   err_msg=name)
        assert det.log_abs.shape == (grid.M,)


def test_frequency_independent_loop_determinant_is_expanded():
    loop = flamo.Recursion(flamo.Gain([[0.5]]), flamo.Gain([[3.0]]))
    det = loop.loop_determinant(flamo.Grid(16))
    assert det.log_abs.shape == (9,)
    torch.testing.assert_close(det.log_abs, torch.full((9,), math.log(0.5)))
    assert torch.allclose(det.phase.abs(), torch.tensor(math.pi))


# -- resolution and explicit points ----------------------------------------------------------

def test_coarse_grid_for_a_nearly_lossless_loop_says_so():
    """Poles within pi/nfft of the circle: the count is not trusted and the user is told."""
    fdn = build_fdn(delays=[887, 911, 941, 1699, 1951, 2053], t60=9.0, input_gains=1.0,
                    output_gains=1 / 6, seed=0)
    with pytest.warns(LoopResolutionWarning, match="does not resolve the loop's poles"):
        fdn.response(flamo.Grid(2 ** 15, fs=48000))
    with _no_loop_warnings():  # 60 dB per wrap moves the circle far enough from the poles
        fdn.response(flamo.Grid(2 ** 15, fs=48000, alias_decay_db=60))



def test_resolution_warning_is_shown_once_per_call_site_while_training():
    """A training loop evaluates the same marginal loop at every step with slightly different
    parameters: the warning says so once, not once per step (Python's default filter)."""
    fdn = build_fdn(delays=[887, 911, 941, 1699, 1951, 2053], t60=9.0, input_gains=1.0,
                    output_gains=1 / 6, seed=0)
    grid = flamo.Grid(2 ** 15, fs=48000)
    optimizer = torch.optim.SGD(fdn.parameters(), lr=1e-4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(3):
            loss = fdn.response(grid).abs().square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert sum(issubclass(w.category, LoopResolutionWarning) for w in caught) == 1

def test_explicit_points_check_singularity_only():
    """At explicit points there is no circle to wind around; a point on a pole still raises."""
    loop = flamo.Recursion(flamo.Delay([4.0]), flamo.Gain([[1.0]])).double()
    with pytest.raises(ValueError, match=r"point 0 \(z = 1\+0j\)"):
        loop.probe(torch.tensor([1.0 + 0j, 0.5j], dtype=torch.complex128))
    with _no_loop_warnings():
        loop.probe(torch.exp(1j * torch.tensor([0.1, 0.2], dtype=F64)))


def test_singular_threshold_is_documented_value():
    assert singular_pivot_threshold(2, torch.float32) == 16 * 2 * torch.finfo(torch.float32).eps
    assert singular_pivot_threshold(3, torch.complex128) == 16 * 3 * torch.finfo(F64).eps


def test_on_unstable_is_validated_and_round_trips():
    with pytest.raises(ValueError, match="on_unstable must be one of"):
        flamo.Recursion(flamo.Delay([1.0]), flamo.Gain([0.5]), on_unstable="ignore")
    with pytest.raises(TypeError, match="check must be True or False"):
        flamo.Recursion(flamo.Delay([1.0]), flamo.Gain([0.5]), check="yes")
    loop = flamo.Recursion(flamo.Delay([1.0]), flamo.Gain([0.5]), on_unstable="warn")
    assert flamo.from_config(loop.config()).on_unstable == "warn"
    cfg = loop.config()
    del cfg["on_unstable"]  # presets written before the option load with the default
    assert flamo.from_config(cfg).on_unstable == "raise"


def test_warning_names_the_callers_line():
    loop = flamo.Recursion(flamo.Delay([4.0]), flamo.Gain([1.5]), on_unstable="warn")
    with pytest.warns(UnstableLoopWarning) as record:
        loop.response(flamo.Grid(64))
    assert record[0].filename == __file__


def test_batched_parameters_name_the_unstable_batch_element():
    """Hyperconditioned systems: det (B, M), one count per system, the message names which."""
    from flamo.optim.hyper import batched_response

    loop = flamo.Recursion(flamo.Delay([4.0]), flamo.Gain([0.5]))
    stable = {"feedback_path.raw": torch.tensor([[0.5], [0.9]])}
    with _no_loop_warnings():
        assert batched_response(loop, stable, flamo.Grid(64)).shape == (2, 33, 1, 1)
    mixed = {"feedback_path.raw": torch.tensor([[0.5], [0.9], [1.5]])}
    with pytest.raises(ValueError, match="4 pole.*batch element 2 of 3"):
        batched_response(loop, mixed, flamo.Grid(64))
