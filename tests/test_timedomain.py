"""The time-domain twin: render, Stream and realizations against independent ground truth.

Ground truth: baselines.fdn_block / baselines.render (an independent block FDN), scipy's
sosfilt/lfilter, frequency sampling on a grid with negligible aliasing (float64), and
torch.autograd.gradcheck.
"""

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import baselines
import flamo
from flamo.reverb import build_fdn

FS = 48000
F64 = torch.float64


def impulse(T, channels=1, dtype=F64):
    x = torch.zeros(T, channels, dtype=dtype)
    x[0] = 1
    return x


def relative(a, b):
    """max |a - b| / max |b|; the absolute error where b is exactly zero (the random
    systems can be: a 1-line Householder, -1, in parallel with a 0-sample delay)."""
    scale = b.abs().max()
    return ((a - b).abs().max() / (scale if scale > 0 else 1)).item()


# -- random systems -------------------------------------------------------------------
def random_leaf(rng, n, allow_slow=True):
    """A random n x n module of any kind with a realization, all |H| moderate."""
    kinds = ["gain_diag", "gain_full", "orthogonal", "householder", "circulant", "delay", "sos",
             "biquad", "svf", "peq", "fir_diag", "fir_full", "lagrange", "thiran", "delay_matrix",
             "paraunitary", "homogeneous", "onepole", "shelf"]
    if n in (1, 2, 4):
        kinds.append("hadamard")
    if allow_slow:
        kinds += ["geq", "geq_attenuation"]
    kind = kinds[rng.integers(len(kinds))]
    delays = rng.integers(1, 60, n).astype(float)
    freqs = rng.uniform(300, 12000, n)
    if kind == "gain_diag":
        return flamo.Gain(rng.uniform(-1, 1, n))
    if kind == "gain_full":
        return flamo.Gain(rng.normal(size=(n, n)) / n)
    if kind in ("orthogonal", "householder", "circulant", "hadamard"):
        return flamo.Matrix(n, kind=kind, seed=int(rng.integers(1000)))
    if kind == "delay":
        return flamo.Delay(rng.integers(0, 60, n).astype(float))
    if kind == "sos":
        k = int(rng.integers(1, 3))
        r, th = rng.uniform(0.2, 0.8, (n, k)), rng.uniform(0, np.pi, (n, k))
        a = np.stack([np.ones((n, k)), -2 * r * np.cos(th), r * r], -1)
        return flamo.SOS(np.concatenate([rng.normal(size=(n, k, 3)) / 2, a], -1))
    if kind == "biquad":
        return flamo.Biquad(["lowpass", "peak", "highshelf", "bandpass"][rng.integers(4)], freqs,
                            q=rng.uniform(0.5, 1.5, n), gain_db=rng.uniform(-6, 6, n))
    if kind == "svf":
        return flamo.SVF(freqs, resonance=rng.uniform(0.4, 1.0, n), mix=rng.normal(size=(n, 3)) / 2)
    if kind == "peq":
        return flamo.PEQ(np.sort(rng.uniform(300, 12000, (n, 3)), -1), gain_db=rng.uniform(-6, 6, (n, 3)))
    if kind == "fir_diag":
        return flamo.FIR(rng.normal(size=(n, int(rng.integers(1, 6)))) / 3)
    if kind == "fir_full":
        return flamo.FIR(rng.normal(size=(n, n, int(rng.integers(1, 5)))) / (3 * n))
    if kind == "lagrange":
        return flamo.FractionalDelay(rng.uniform(0, 40, n), order=int(rng.integers(1, 5)))
    if kind == "thiran":
        order = int(rng.integers(1, 4))
        return flamo.FractionalDelay(rng.uniform(order, order + 40, n), order=order, kind="thiran")
    if kind == "delay_matrix":
        return flamo.DelayMatrix(rng.integers(0, 50, (n, n)).astype(float), rng.normal(size=(n, n)) / n)
    if kind == "paraunitary":
        return flamo.Paraunitary(rng.integers(0, 30, (3, n)).astype(float), seed=int(rng.integers(100)))
    if kind == "homogeneous":
        return flamo.HomogeneousAttenuation(delays, rng.uniform(0.05, 0.5, n))
    if kind == "onepole":
        return flamo.OnePoleAttenuation(delays, rng.uniform(0.05, 0.3), rng.uniform(0.01, 0.05))
    if kind == "shelf":
        return flamo.ShelfAttenuation(delays, rng.uniform(0.05, 0.3), rng.uniform(0.01, 0.05),
                                      crossover=rng.uniform(500, 5000))
    if kind == "geq":
        return flamo.GEQ(rng.uniform(-6, 6, (n, 10)))
    return flamo.GEQAttenuation(delays, rng.uniform(0.05, 0.3, 10))


def random_system(rng, n, depth, allow_slow=True):
    """A random nested Series/Parallel/Recursion of n x n modules whose loops decay fast:
    every loop has an integer delay in its forward path and a feedback gain <= 0.45 times
    an orthogonal matrix, so |loop gain| < 1 whatever the (bounded) parts in between."""
    choice = rng.integers(4) if depth > 0 else 0
    if choice == 0:
        return random_leaf(rng, n, allow_slow)
    if choice == 1:
        return flamo.Series(random_system(rng, n, depth - 1, allow_slow),
                            random_system(rng, n, depth - 1, allow_slow))
    if choice == 2:
        return flamo.Parallel(random_system(rng, n, depth - 1, allow_slow),
                              random_system(rng, n, depth - 1, allow_slow))
    inner = flamo.Series(flamo.Delay(rng.integers(20, 80, n).astype(float)),
                         flamo.Biquad("lowpass", rng.uniform(2000, 15000, n), q=0.6))
    if depth > 1 and rng.integers(2):  # a loop nested in the forward path
        inner = flamo.Series(inner, flamo.Recursion(flamo.Delay(rng.integers(10, 40, n).astype(float)),
                                                    flamo.Gain(rng.uniform(-0.4, 0.4, n))))
        scale = 0.3
    else:
        scale = 0.45
    feedback = flamo.Series(flamo.Matrix(n, kind="orthogonal", seed=int(rng.integers(100))),
                            flamo.Gain(np.full(n, scale)))
    return flamo.Recursion(inner, feedback)


def wrapped(rng, system, n, inputs, outputs):
    """system between random input and output gains: (outputs, inputs)."""
    return flamo.Series(flamo.Gain(rng.normal(size=(n, inputs))), system,
                        flamo.Gain(rng.normal(size=(outputs, n))))


NFFT = 2 ** 12
GRID = flamo.Grid(nfft=NFFT, fs=FS, alias_decay_db=100.0, dtype=F64)


def check_against_frequency(system):
    n_out, n_in = system.shape
    x = torch.zeros(n_in, NFFT, n_in, dtype=F64)
    x[torch.arange(n_in), 0, torch.arange(n_in)] = 1
    y = flamo.render(system, x, fs=FS)  # (in, T, out): the IR of each input
    h = system.impulse_response(GRID)  # (T, out, in)
    return relative(y.permute(1, 2, 0), h)


# -- ground truth -----------------------------------------------------------------------
def test_fdn_matches_baseline_block_fdn():
    fdn = build_fdn(delays=[887, 911, 941, 1699, 1951, 2053], t60=1.5, input_gains=1.0,
                    output_gains=1 / 6, direct_gain=0.3, seed=0, dtype=F64)
    y = flamo.render(fdn, impulse(20000), fs=FS)[:, 0]
    truth = baselines.render(fdn, 20000, fs=FS)
    assert relative(y, truth) < 1e-13


def test_fdn_with_geq_attenuation_matches_baseline():
    fdn = build_fdn(delays=[601, 773, 997, 1103], input_gains=1.0, output_gains=0.5, seed=1,
                    attenuation=lambda cfg: flamo.GEQAttenuation(cfg.delays, t60=np.linspace(2, 0.5, 10)),
                    dtype=F64)
    x = torch.randn(9000, 1, dtype=F64)
    structure = flamo.reverb.fdn_structure(fdn, fs=FS)
    with torch.no_grad():
        truth = baselines.fdn_block(x[:, 0], structure.m, structure.A, structure.b[:, 0],
                                    structure.c[0], 0.0, g=structure.gains, sos=structure.sections)
    assert relative(flamo.render(fdn, x, fs=FS)[:, 0], truth) < 1e-12


def test_sos_matches_scipy_and_baseline_sosfilt():
    rng = np.random.default_rng(3)
    sos = np.concatenate([rng.normal(size=(3, 4, 3)),
                          np.tile([1.0, -0.9, 0.4], (3, 4, 1))], -1)
    x = torch.randn(3000, 3, dtype=F64)
    y = flamo.render(flamo.SOS(sos), x).detach()
    for i in range(3):
        truth = scipy.signal.sosfilt(sos[i], x[:, i].numpy())
        assert np.abs(y[:, i].numpy() - truth).max() < 1e-12 * np.abs(truth).max()
    assert relative(y, baselines.sosfilt(torch.as_tensor(sos), x).detach()) < 1e-12


def test_every_module_kind_matches_frequency_sampling():
    rng = np.random.default_rng(0)
    for _ in range(40):
        leaf = random_leaf(rng, 3).double()
        assert check_against_frequency(leaf) < 1e-9, leaf


def modules_beyond_random_leaf():
    """The velvet, filterbank, allpass and proportional modules (not square, needing even
    sizes, or slow to design, so not drawn by random_leaf), at sizes whose responses decay
    well inside NFFT."""
    return {
        "velvet_filter": flamo.VelvetNoiseFilter.random(3, 0.02, 2000.0, FS, seed=1),
        "velvet_matrix": flamo.VelvetNoiseMatrix(4, stages=2, spread=40, seed=2, dtype=F64),
        "filterbank": flamo.FilterBank([1000.0, 2000.0, 4000.0], fraction=1, order=2),
        "allpass_matrix": flamo.AllpassFDNMatrix(2, seed=3),
        "allpass_fdn": flamo.reverb.allpass_fdn([3, 5, 7], seed=0, dtype=F64),
        "proportional_attenuation": flamo.ProportionalAttenuation([30.0, 70.0], np.linspace(0.2, 0.05, 10)),
    }


@pytest.mark.parametrize("name", list(modules_beyond_random_leaf()))
def test_modules_beyond_random_leaf_render_their_impulse_response(name):
    assert check_against_frequency(modules_beyond_random_leaf()[name].double()) < 1e-9


def test_complementary_filterbank_has_no_realization():
    with pytest.raises(NotImplementedError, match="complementary.*zero-phase.*butterworth"):
        flamo.render(flamo.FilterBank(kind="complementary"), impulse(8), fs=FS)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(1, 3), inputs=st.integers(1, 2),
       outputs=st.integers(1, 2))
def test_random_nested_systems_render_their_impulse_response(seed, n, inputs, outputs):
    rng = np.random.default_rng(seed)
    system = wrapped(rng, random_system(rng, n, depth=3, allow_slow=False), n, inputs, outputs)
    assert check_against_frequency(system.double()) < 1e-9


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(1, 3),
       blocks=st.lists(st.integers(1, 40), min_size=1, max_size=30),
       dtype=st.sampled_from([torch.float64, torch.float32]))
def test_stream_in_random_blocks_equals_render_bitwise(seed, n, blocks, dtype):
    rng = np.random.default_rng(seed)
    system = wrapped(rng, random_system(rng, n, depth=3, allow_slow=False), n, 1, 2).to(dtype)
    T = sum(blocks)
    x = torch.randn(2, T, 1, dtype=dtype)  # a batch of two signals
    y = flamo.render(system, x, fs=FS)
    stream, outs, t = flamo.Stream(system, fs=FS), [], 0
    for c in blocks:
        outs.append(stream(x[:, t:t + c]))
        t += c
    assert torch.equal(torch.cat(outs, dim=-2), y)
    stream.reset()
    assert torch.equal(stream(x), y)


def test_stream_of_an_fdn_with_geq_per_line_is_bitwise_in_any_blocks():
    fdn = build_fdn(delays=[31, 37, 41, 43], input_gains=1.0, output_gains=0.5, seed=2,
                    attenuation=lambda cfg: flamo.GEQAttenuation(cfg.delays, t60=np.full(10, 0.3)),
                    dtype=F64)
    x = torch.randn(700, 1, dtype=F64)
    y = flamo.render(fdn, x, fs=FS)
    rng = np.random.default_rng(0)
    stream, outs, t = flamo.Stream(fdn, fs=FS), [], 0
    while t < 700:
        c = int(rng.choice([1, 2, 5, 64, 100]))
        outs.append(stream(x[t:t + c]))
        t += c
    assert torch.equal(torch.cat(outs), y)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_gradients_agree_with_frequency_sampling(seed):
    rng = np.random.default_rng(seed)
    system = wrapped(rng, random_system(rng, 2, depth=2, allow_slow=False), 2, 1, 1).double()
    params = [p for p in system.parameters()]
    target = torch.randn(NFFT, dtype=F64)
    loss_td = ((flamo.render(system, impulse(NFFT), fs=FS)[:, 0] - target) ** 2).sum()
    loss_fs = ((system.impulse_response(GRID)[:, 0, 0] - target) ** 2).sum()
    grads_td = torch.autograd.grad(loss_td, params, allow_unused=True)
    grads_fs = torch.autograd.grad(loss_fs, params, allow_unused=True)
    scale = max(g.abs().max().item() for g in grads_fs if g is not None and g.numel())
    for (name, _), a, b in zip(system.named_parameters(), grads_td, grads_fs):
        if b is None or not b.numel():
            continue
        assert a is not None, name
        assert (a - b).abs().max().item() < 1e-8 * scale, name


def test_gradcheck_on_a_small_system_with_every_filter_kind():
    rng = np.random.default_rng(5)
    loop = flamo.Recursion(flamo.Series(flamo.Delay([3.0, 5.0]), flamo.SOS(
        np.concatenate([rng.normal(size=(2, 1, 3)) / 2, np.tile([1.0, -0.3, 0.1], (2, 1, 1))], -1))),
        flamo.Series(flamo.Matrix(2, seed=0), flamo.Gain([0.5, 0.5])))
    system = flamo.Series(flamo.Gain(rng.normal(size=(2, 1))), loop,
                          flamo.DelayMatrix([[1.0, 2.0], [0.0, 3.0]], rng.normal(size=(2, 2))),
                          flamo.FIR(rng.normal(size=(1, 2, 3))),
                          flamo.Parallel(flamo.Biquad("peak", 2000.0, gain_db=3.0),
                                         flamo.FractionalDelay([2.3], order=3),
                                         flamo.FractionalDelay([3.4], order=2, kind="thiran"))).double()
    names = [n for n, _ in system.named_parameters()]
    x = torch.randn(30, 1, dtype=F64)

    def out(xx, *values):
        with torch.nn.utils.stateless._reparametrize_module(system, dict(zip(names, values))):
            return flamo.render(system, xx, fs=FS)

    values = [p.detach().clone().requires_grad_(True) for p in system.parameters()]
    assert torch.autograd.gradcheck(out, (x.clone().requires_grad_(True), *values), eps=1e-6, atol=1e-8)


def test_gradients_of_a_one_sample_signal():
    """T = 1: the reversed adjoint has a negative stride on a length-1 axis (torch cannot
    view it); closed form y = g x for a gain g: dy/dx = g, dy/dg = x."""
    gain = flamo.Gain([[0.5]]).double()
    x = torch.full((1, 1), 3.0, dtype=F64, requires_grad=True)
    flamo.render(gain, x).sum().backward()
    assert x.grad.item() == 0.5
    assert [p.grad.item() for p in gain.parameters()] == [3.0]


# -- the time backend of response ------------------------------------------------------
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(1, 3), alias_db=st.sampled_from([0.0, 20.0]))
def test_time_method_differs_from_frequency_sampling_by_the_alias_terms(seed, n, alias_db):
    """method="time" is the DFT of h[n] gamma^n, n < nfft; frequency sampling adds the
    wrapped tail sum_{k>=1} gamma^(n + k nfft) h[n + k nfft] (h from a long render)."""
    rng = np.random.default_rng(seed)
    system = wrapped(rng, random_system(rng, n, depth=2, allow_slow=False), n, 1, 1).double()
    nfft = 256
    grid = flamo.Grid(nfft=nfft, fs=FS, alias_decay_db=alias_db, dtype=F64)
    with torch.no_grad():
        by_time = system.response(grid, method="time")[:, 0, 0]
        by_freq = system.response(grid)[:, 0, 0]
        h = flamo.render(system, impulse(40 * nfft), fs=FS)[:, 0]
    gamma = 10 ** (-alias_db / (20 * nfft))
    weighted = h * gamma ** torch.arange(h.shape[0], dtype=F64)
    truth_time = torch.fft.rfft(weighted[:nfft])
    truth_freq = torch.fft.rfft(weighted.reshape(-1, nfft).sum(0))
    peak = truth_freq.abs().max()
    # the generator can draw an exactly zero system (a 1-line Householder, -1, in parallel
    # with a 0-sample delay: seed 1499, n 1), where a relative bound means nothing
    assume(peak > 0)
    assert (by_time - truth_time).abs().max() < 1e-10 * peak
    assert (by_freq - truth_freq).abs().max() < 1e-9 * peak
    # the bound of the difference: the weighted tail's L1 norm
    assert (by_time - by_freq).abs().max() <= weighted[nfft:].abs().sum() + 1e-9 * peak


def test_time_method_gradients_agree_with_frequency_sampling():
    rng = np.random.default_rng(11)
    system = wrapped(rng, random_system(rng, 2, depth=2, allow_slow=False), 2, 2, 1).double()
    params = list(system.parameters())
    target = torch.randn(GRID.M, 1, 2, dtype=torch.complex128)
    grads = {}
    for method in ("time", "frequency"):
        loss = (system.response(GRID, method=method) - target).abs().pow(2).sum()
        grads[method] = torch.autograd.grad(loss, params, allow_unused=True)
    scale = max(g.abs().max().item() for g in grads["frequency"] if g is not None)
    for (name, _), a, b in zip(system.named_parameters(), grads["time"], grads["frequency"]):
        if b is not None:
            assert (a - b).abs().max().item() < 1e-8 * scale, name
    h = system.impulse_response(GRID, method="time")
    assert relative(h, system.impulse_response(GRID)) < 1e-9


def test_auto_method_chooses_and_explains_its_limits():
    from flamo.timedomain import backend

    fdn = build_fdn(delays=[887, 911, 941, 1699], t60=1.0, seed=0)
    grid = flamo.Grid(nfft=2 ** 14, fs=FS, alias_decay_db=60)
    cost = backend.estimated_seconds(fdn, grid)
    assert cost["time"] > 0 and cost["frequency"] > 0
    chosen = backend.choose_method(fdn, grid)
    assert chosen == min(cost, key=cost.get)
    with torch.no_grad():
        auto = fdn.response(grid, method="auto")
        assert torch.equal(auto, fdn.response(grid, method=chosen))
    # explicit points and systems without a realization: frequency sampling
    points = flamo.Points(torch.exp(1j * torch.linspace(0, 3, 7, dtype=F64)), fs=FS)
    assert backend.choose_method(fdn, points) == "frequency"

    class Custom(flamo.DSPModule):
        shape = (1, 1)

    assert backend.estimated_seconds(Custom(), grid)["time"] == float("inf")
    assert backend.choose_method(Custom(), grid) == "frequency"


def test_time_method_errors():
    points = flamo.Points(torch.exp(1j * torch.linspace(0, 3, 7)), fs=FS)
    with pytest.raises(ValueError, match="method='time'.*needs a flamo.Grid; got Points"):
        flamo.Gain([1.0]).response(points, method="time")
    with pytest.raises(ValueError, match="method must be one of"):
        flamo.Gain([1.0]).response(GRID, method="fast")


# -- errors --------------------------------------------------------------------------
def test_a_loop_without_delay_names_the_loop():
    loop = flamo.Recursion(flamo.Gain([0.5]), flamo.Gain([[0.5]]))
    system = flamo.Series({"pre": flamo.Gain([[1.0]]), "echo": loop})
    with pytest.raises(ValueError, match="Recursion 'echo'.*at least one sample of delay"):
        flamo.render(system, impulse(10))


def test_a_module_without_realization_is_named():
    class Custom(flamo.DSPModule):
        shape = (1, 1)

    with pytest.raises(NotImplementedError, match="Custom has no time-domain realization"):
        flamo.render(flamo.Series(flamo.Gain([[1.0]]), Custom()), impulse(4))


def test_fractional_delay_lengths_and_missing_fs_raise():
    with pytest.raises(ValueError, match="Delay: delays must be integers.*FractionalDelay"):
        flamo.render(flamo.Delay([2.5]), impulse(4))
    with pytest.raises(ValueError, match="Biquad.*needs a sample rate"):
        flamo.render(flamo.Biquad("lowpass", 1000.0), impulse(4))


def test_learnable_integer_delays_warn_that_they_get_no_gradient():
    with pytest.warns(UserWarning, match="no gradient in the time domain"):
        flamo.render(flamo.Delay([2.0], learnable=True), impulse(4))


def test_signal_layout_is_checked():
    with pytest.raises(ValueError, match=r"expects 2 input channels, x of shape \(\.\.\., T, 2\)"):
        flamo.render(flamo.Gain(np.eye(2)), torch.zeros(2, 5))
    with pytest.raises(TypeError, match="float32 or float64"):
        flamo.render(flamo.Gain([[1.0]]), torch.zeros(5, 1, dtype=torch.int64))
