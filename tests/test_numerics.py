"""Legal but suspicious input warns, invalid input gets a clear error: the reproducers of the
defects found by hostile probing (alias decay beyond the dtype, delays that wrap, GEQ commands
out of range, unclear TypeErrors, NaN poles and NaN gradients), against the truth where there
is one."""

import math
import warnings

import numpy as np
import pytest
import torch

import flamo
from flamo.aliasing import max_alias_decay_db, rounding_error_bound
from flamo.exceptions import DelayWrapWarning, FlamoWarning, PrecisionWarning

F64 = torch.float64


# -- defect 8: alias_decay_db beyond what the dtype carries ---------------------------------

def test_alias_decay_beyond_float32_warns_before_any_garbage():
    """float32 at 200 dB: the tail of a one-pole response came out as 474 where the truth is
    0.0166; the grid now warns, and the float64 grid at the same setting is right."""
    pole, nfft = 0.999, 2 ** 12
    loop = flamo.Recursion(flamo.Delay([1.0]), flamo.Gain([[pole]]))
    with pytest.warns(PrecisionWarning, match="alias_decay_db=200 is more than torch.float32 carries"):
        grid = flamo.Grid(nfft, alias_decay_db=200.0)
    tail32 = loop.impulse_response(grid)[-1, 0, 0].item()
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)  # float64 carries 200 dB at this nfft
        grid64 = flamo.Grid(nfft, alias_decay_db=200.0, dtype=F64)
    tail64 = loop.double().impulse_response(grid64)[-1, 0, 0].item()
    truth = float(np.float32(pole)) ** (nfft - 2)  # h[n] = p^(n - 1) with p as float32 stores it
    assert tail64 == pytest.approx(truth, rel=1e-3)  # the last sample carries the most noise
    assert abs(tail32 - truth) > 10 * truth  # what the warning is about


def test_alias_decay_that_overflows_the_dtype_raises():
    with pytest.raises(ValueError, match="beyond torch.float32's range.*at most 122 dB"):
        flamo.Grid(2 ** 12, alias_decay_db=800.0)
    flamo.Grid(2 ** 12, alias_decay_db=800.0, dtype=F64)  # float64 carries it (with a warning)


def test_max_alias_decay_db_is_where_the_bound_reaches_the_tolerance():
    for dtype in (torch.float32, F64):
        db = max_alias_decay_db(2 ** 12, dtype)
        assert rounding_error_bound(2 ** 12, db, dtype) <= 1e-2 < rounding_error_bound(2 ** 12, db + 0.02, dtype)
    assert max_alias_decay_db(2 ** 12, torch.float32) < max_alias_decay_db(2 ** 12, F64)
    with warnings.catch_warnings():  # the recommended settings never warn
        warnings.simplefilter("error", PrecisionWarning)
        for t60 in (0.3, 3.0, 30.0):
            flamo.Grid(2 ** 15, alias_decay_db=flamo.recommend_alias_decay_db(2 ** 15, t60))


# -- defect 9: delays wrap silently ----------------------------------------------------------

def test_delay_longer_than_nfft_warns_and_lands_where_it_says():
    with pytest.warns(DelayWrapWarning, match=r"\[1000, 1000\] samples lie outside \[0, nfft\) = \[0, 256\)"):
        h = flamo.Delay([1000.0]).impulse_response(flamo.Grid(256))[:, 0, 0]
    assert int(h.abs().argmax()) == 1000 % 256 == 232
    with pytest.warns(DelayWrapWarning, match=r"\[-46.5, 3\]"):  # where a learnable Delay went
        flamo.functional.delay_response(torch.tensor([-46.5, 3.0]), flamo.Grid(256))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DelayWrapWarning)
        flamo.Delay([255.0]).response(flamo.Grid(256))
        flamo.Delay([1000.0]).probe(torch.tensor([1j]))  # explicit points do not wrap


# -- defect 7: GEQ commands ------------------------------------------------------------------

def test_geq_commands_are_bounded_by_default():
    with pytest.raises(ValueError, match=r"command_range_db = \(-40, 40\) dB, got \[-90, 90\]"):
        flamo.GEQ(torch.tensor([90.0, -90.0] * 5))
    geq = flamo.GEQ(torch.zeros(10))
    with torch.no_grad():  # whatever an optimizer does to the raw parameter
        geq.raw_command.add_(torch.tensor([1e3, -1e3] * 5))
    assert geq.command_db.abs().max() <= 40
    assert torch.isfinite(geq.response(flamo.Grid(1024))).all()
    assert flamo.from_config(geq.config()).command_range_db == (-40.0, 40.0)


def test_geq_unbounded_commands_warn():
    with pytest.warns(PrecisionWarning, match="outside"):
        flamo.GEQ(torch.tensor([60.0, -60.0] * 5), command_range_db=None)
    cfg = flamo.GEQ(torch.zeros(10), command_range_db=None).config()
    assert flamo.from_config(cfg).command_range_db is None


@pytest.mark.parametrize("level", [12.0, 30.0, 39.0])
def test_geq_float32_design_matches_float64_within_the_range(level):
    """Alternating +/-level commands, the worst pattern for the design's interaction matrix."""
    cmd = torch.tensor([level, -level] * 5, dtype=F64)
    db = []
    for dtype in (torch.float32, F64):
        grid = flamo.Grid(2 ** 13, fs=48000, dtype=dtype)
        h = flamo.GEQ(cmd.to(dtype), learnable=False).response(grid)[:, 0, 0].to(torch.complex128)
        bins = [int(torch.argmin((grid.freqs.double() - c).abs())) for c in flamo.functional.octave_bands()]
        db.append(20 * torch.log10(h.abs()[bins]))
    assert (db[0] - db[1]).abs().max() < 0.25


# -- defect 11: clear TypeErrors and accepted inputs -----------------------------------------

def test_numpy_arrays_and_lists_are_signals():
    grid = flamo.Grid(64)
    delay = flamo.Delay([2.0])
    x = np.zeros((8, 1), dtype=np.float32)
    x[0] = 1
    y = delay(x, grid)
    assert isinstance(y, torch.Tensor) and y[2, 0] == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(delay([1.0, 0.0, 0.0], grid), y[:, 0])
    with pytest.raises(TypeError, match="filter_signal: x must be a real time signal"):
        delay("abc", grid)
    with pytest.raises(TypeError, match="filter_signal: x must be real"):
        delay(np.ones(4, dtype=complex), grid)


def test_non_grid_points_name_the_argument():
    with pytest.raises(TypeError, match="Delay.response: points must be a flamo.Grid.*got int 256"):
        flamo.Delay([2.0]).response(256)


def test_empty_and_meta_tensors_are_refused_clearly():
    with pytest.raises(ValueError, match=r"SOS: sos needs at least one section.*\(0, 6\)"):
        flamo.SOS(torch.zeros(0, 6))
    with pytest.raises(ValueError, match="Gain: matrix is a meta-device tensor"):
        flamo.Gain(torch.zeros(2, device="meta"))
    with pytest.raises(ValueError, match="Delay: delays is a meta-device tensor"):
        flamo.Delay(torch.zeros(2, device="meta"))


def test_numpy_scalars_are_accepted_like_python_scalars():
    grid = flamo.Grid(np.int64(64), fs=np.float64(48000), alias_decay_db=np.float32(3.0))
    a = flamo.Biquad("lowpass", np.float64(1000.0), q=np.float32(0.7)).response(grid)
    b = flamo.Biquad("lowpass", 1000.0, q=float(np.float32(0.7))).response(flamo.Grid(64, alias_decay_db=3.0))
    torch.testing.assert_close(a, b)
    assert flamo.Gain([np.float32(0.5)]).response(grid)[0, 0, 0] == 0.5


def test_peq_errors_say_peq():
    with pytest.raises(ValueError, match="^PEQ: freq must lie in"):
        flamo.PEQ(freq=[-1.0, 100.0])
    with pytest.raises(ValueError, match="^PEQ: q must lie in"):
        flamo.PEQ(freq=[100.0, 200.0], q=[-1.0])


# -- defect 12 -------------------------------------------------------------------------------

def test_sos_stability_check_fails_closed_on_nan_poles():
    """Coefficients ~1e154: a1^2 overflows, the poles are NaN, and NaN >= 1 is False."""
    sos = torch.tensor([[1.0, 0, 0, 1.0, -2e154, 1e154]], dtype=F64)
    with pytest.raises(ValueError, match="poles not computable"):
        flamo.SOS(sos)
    flamo.SOS(sos, check_stability=False, stable=False)  # still possible on request


def test_library_warnings_are_flamo_warnings():
    for cls in (PrecisionWarning, DelayWrapWarning, flamo.exceptions.LoopResolutionWarning,
                flamo.exceptions.UnstableLoopWarning):
        assert issubclass(cls, FlamoWarning) and issubclass(cls, UserWarning)
    assert math.isfinite(max_alias_decay_db(256))


@pytest.mark.parametrize("value", [1e-40, 1e-45])
def test_subnormal_responses_have_finite_correct_gradients(value):
    """torch.abs of a subnormal complex number has a NaN gradient; the losses' magnitude the
    unit phasor: d/dh (|h| - 1)^2 = 2 (|h| - 1) h / |h| = -2 exp(1j pi / 4) here."""
    from flamo.optim.losses import colorless_spectral_loss, magnitude_mse

    expected = torch.tensor([-2 * np.exp(1j * np.pi / 4)], dtype=torch.complex64)
    for loss in (lambda h: magnitude_mse(h, torch.ones_like(h)), lambda h: colorless_spectral_loss(h[:, None])):
        h = torch.tensor([value * (1 + 1j)], dtype=torch.complex64, requires_grad=True)
        loss(h).backward()
        torch.testing.assert_close(h.grad, expected)


def test_colorless_loss_below_one_exponent_has_finite_gradients():
    """|d|^p, p < 1, at d = 0 (|H| = 1 exactly): 0 (a subgradient) instead of inf * 0 = NaN;
    elsewhere p |d|^(p - 1) sign(d) against the closed form."""
    from flamo.optim.losses import colorless_spectral_loss

    h = torch.tensor([[1.0 + 0j, 0.75 + 0j, 1.25 + 0j]], dtype=torch.complex128, requires_grad=True)
    colorless_spectral_loss(h, p_below=0.5, p_above=0.5).backward()
    expected = torch.tensor([[0.0, -0.5 * 0.25 ** -0.5, 0.5 * 0.25 ** -0.5]], dtype=torch.complex128) / 3
    torch.testing.assert_close(h.grad, expected)
    with pytest.raises(ValueError, match="p_below must be a finite number > 0"):
        colorless_spectral_loss(h, p_below=0.0)


def test_magnitude_gradcheck():
    from flamo.optim.losses import magnitude

    h = torch.randn(6, dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(magnitude, [h]) and torch.autograd.gradgradcheck(magnitude, [h])


# -- stable and bounded by construction ------------------------------------------------------

def test_learnable_sos_stays_stable_whatever_the_raw_values():
    """The reflection parametrization: any raw value gives poles inside max_pole_radius."""
    from flamo.functional import sos_poles

    rng = np.random.default_rng(0)
    sos = flamo.SOS(np.tile([1.0, 0.2, 0.1, 1.0, -0.5, 0.25], (3, 1)))
    assert sos.stable
    with torch.no_grad():
        for scale in (1.0, 10.0, 1e3):
            sos.raw.copy_(torch.tensor(rng.normal(size=(3, 5)) * scale))
            radius = sos_poles(sos.sos).abs().max().item()
            assert radius <= flamo.SOS.MAX_POLE_RADIUS + 1e-6 < 1
    rebuilt = flamo.from_config(sos.config())  # a saturated, saved module loads back
    torch.testing.assert_close(rebuilt.sos, sos.sos, atol=1e-4, rtol=0)


def test_stable_sos_round_trips_its_initial_sections():
    sos = np.array([[0.5, 0.1, -0.2, 2.0, -1.2, 0.72], [1.0, 0.0, 0.0, 1.0, 0.3, -0.4]])
    module = flamo.SOS(sos).double()
    torch.testing.assert_close(module.sos, torch.tensor(sos / sos[:, 3:4]), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="pole of radius 1.5.*stable=False"):
        flamo.SOS(np.array([[1.0, 0, 0, 1.0, -3.0, 2.25]]), check_stability=False)
    assert not flamo.SOS(np.array([[1.0, 0, 0, 1.0, -3.0, 2.25]]), check_stability=False, stable=False).stable
    assert not flamo.SOS(sos, learnable=False).stable  # fixed filters keep their coefficients


def test_fit_biquads_at_a_large_learning_rate_stays_stable():
    """The README example at lr 0.1 ended with a pole radius of 1.654 and a fine-looking loss."""
    import scipy.signal
    from flamo.functional import sos_poles
    from flamo.optim import MagnitudeMSE

    torch.manual_seed(0)
    grid = flamo.Grid(nfft=2 ** 9, fs=48000)
    target_sos = scipy.signal.butter(8, 2000, fs=48000, output="sos")
    _, h = scipy.signal.sosfreqz(target_sos, worN=grid.omega.double().numpy())
    target = torch.tensor(np.abs(h), dtype=torch.float32)
    init = np.tile([1.0, 0, 0, 1, 0, 0], (4, 1)) + 0.1 * np.random.default_rng(0).normal(size=(4, 6))
    init[:, 3] = 1
    model = flamo.SOS(init)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    loss = MagnitudeMSE(db=True)
    for _ in range(150):
        opt.zero_grad()
        value = loss(model.response(grid)[:, 0, 0], target)
        value.backward()
        opt.step()
    assert sos_poles(model.sos).abs().max().item() < 1
    assert torch.isfinite(value)


def test_learnable_delays_stay_in_their_interval():
    delay = flamo.Delay([3.0, 11.5], learnable=True)
    with torch.no_grad():
        delay.raw.copy_(torch.tensor([-1e3, 1e3]))
    assert (delay.delays >= 0).all() and (delay.delays <= 23.0).all()
    assert flamo.Delay([3.0], learnable=True, max_delay=100.0).mapping.high == 100.0
    with pytest.raises(ValueError, match=r"learnable delays must lie in \[0, max_delay = 10\]"):
        flamo.Delay([30.0], learnable=True, max_delay=10.0)
    unbounded = flamo.Delay([3.0], learnable=True, mapping=flamo.functional.identity)
    assert unbounded.delays.item() == 3.0  # identity explicitly: exact, unbounded
    rebuilt = flamo.from_config(delay.config())
    torch.testing.assert_close(rebuilt.delays, delay.delays)


# -- property: finite or ValueError, never inf/NaN or a silent wrong value ----------------------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.lists(st.integers(1, 8), min_size=1, max_size=3),
       gain=st.floats(0.0, 2.0), db=st.sampled_from([0.0, 20.0, 60.0]),
       seed=st.integers(0, 1000))
def test_fdn_response_is_right_or_raises(m, gain, db, seed):
    """Random small loops (delays 1..8, a scaled random matrix): response() either raises
    ValueError or agrees with a float64 time-domain simulation of the same recursion, wrapped
    and attenuated as the grid defines (so an anti-causal twin or noise cannot pass)."""
    n, nfft = len(m), 256
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n)) * gain / math.sqrt(n)
    loop = flamo.Recursion(flamo.Delay(torch.tensor(m, dtype=F64)), flamo.Gain(torch.tensor(A)))
    grid = flamo.Grid(nfft, alias_decay_db=db, dtype=F64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FlamoWarning)
        try:
            h = loop.impulse_response(grid).detach().numpy()
        except ValueError:
            return
    assert np.isfinite(h).all()
    if any(issubclass(w.category, FlamoWarning) for w in caught):
        return  # legal but suspicious, and said so (e.g. a grid that does not resolve the loop)
    # time domain: y = D (x + A y): s[t] = x[t] + A y[t], y_i[t] = s_i[t - m_i]; h[t] = y[t] for
    # a unit impulse x in each column, simulated over several windows and wrapped with gamma^nfft
    length = 8 * nfft
    ref = np.zeros((length, n, n))
    s = np.zeros((length, n, n))
    for t in range(length):
        y = np.stack([s[t - m[i], i] if t >= m[i] else np.zeros(n) for i in range(n)])
        ref[t] = y
        s[t] = (np.eye(n) if t == 0 else 0) + A @ y
    if not np.isfinite(ref).all() or np.abs(ref).max() > 1e30:
        return  # grows too fast to compare (the grid must have raised or be right over its window)
    q = grid.gamma ** nfft
    wrapped = sum(ref[k * nfft:(k + 1) * nfft] * q ** k for k in range(8))
    tail = np.abs(ref[-nfft:]).max() * q ** 7
    assert np.abs(h - wrapped).max() <= 1e-6 * max(1.0, np.abs(wrapped).max()) + 10 * tail
