"""Tests of baselines.convert: library-built systems rendered in the time domain.

Ground truth: the library's own frequency-sampled impulse response on a grid long enough
that time aliasing is below 1e-10 (checked in each test), scipy.signal.sosfilt, and the
block/naive FDN on plain tensors.
"""

import numpy as np
import pytest
import scipy.signal
import torch

import flamo
from baselines import fdn_impulse_response, render
from flamo.reverb import build_fdn, fdn_structure

f64 = torch.float64
NFFT = 4096  # long enough for the short, fast-decaying test FDNs below
L = 1500  # compared samples


def random_loop_sos(rng, N, K, rmax=0.8, gain=0.9):
    """(N, K, 6) stable sections with |S(e^jw)| <= gain per section (a0 != 1 on purpose)."""
    sos = np.zeros((N, K, 6))
    for i in range(N):
        for k in range(K):
            r, th = rng.uniform(0.1, rmax), rng.uniform(0, np.pi)
            a = np.array([1.0, -2 * r * np.cos(th), r * r])
            rz = r * rng.uniform(0.0, 1.0)
            b = np.array([1.0, -2 * rz * np.cos(th), rz * rz])
            _, h = scipy.signal.freqz(b, a, worN=512)
            scale = rng.uniform(0.5, 2.0)
            sos[i, k] = np.r_[b * gain / np.abs(h).max(), a] * scale
    return sos


def library_fdn(seed=0, N=4, K=0, direct=True, feedback="orthogonal", mmax=13, decay=0.85):
    """An FDN from the library's builder, float64: per-line gains decay^m, then K random
    sections per line when K > 0; an orthogonal or a contractive free feedback matrix."""
    rng = np.random.default_rng(seed)
    m = rng.choice(np.arange(2, mmax + 1), size=N, replace=False)
    attenuation = flamo.Gain(decay ** m.astype(float))
    if K:
        attenuation = flamo.Series(attenuation, flamo.SOS(random_loop_sos(rng, N, K)))
    matrix = dict(matrix="orthogonal")
    if feedback == "free":
        W = rng.standard_normal((N, N))
        matrix = dict(matrix="free", matrix_init=0.95 * W / np.linalg.norm(W, 2))  # contractive
    return build_fdn(delays=m, attenuation=attenuation, seed=seed, **matrix,
                     input_gains=rng.standard_normal((N, 1)),
                     output_gains=rng.standard_normal((1, N)),
                     direct_gain=rng.standard_normal() if direct else None, dtype=f64)


def library_ir(system, nfft=NFFT):
    """Frequency-sampled IR (nfft,), float64, on the unit circle."""
    h = system.impulse_response(flamo.Grid(nfft, dtype=f64))[:, 0, 0]
    assert h[L:].abs().max() < 1e-10 * h.abs().max()  # IR has decayed: aliasing < 1e-10
    return h


@pytest.mark.parametrize("K, direct, feedback", [(0, True, "orthogonal"), (0, False, "free"),
                                                 (2, True, "orthogonal"), (1, False, "free")])
def test_render_fdn_matches_frequency_sampling(K, direct, feedback):
    system = library_fdn(seed=K + 3, K=K, direct=direct, feedback=feedback)
    h = render(system, L)
    assert h.shape == (L,) and h.dtype == f64
    ref = library_ir(system)[:L]
    torch.testing.assert_close(h, ref, rtol=0, atol=1e-9 * ref.abs().max().item())


def test_render_naive_equals_block():
    system = library_fdn(seed=1, N=3, K=1)
    torch.testing.assert_close(render(system, 120, method="naive"), render(system, 120),
                               rtol=1e-12, atol=1e-14)


def test_structure_values_and_graph():
    system = library_fdn(seed=2, N=3, K=2)
    p = fdn_structure(system)
    core, direct = system["fdn"], system["direct"]
    loop = core["loop"]
    attenuation = loop.forward_path["attenuation"]
    np.testing.assert_array_equal(p.m.numpy(), loop.forward_path["delays"].delays.numpy())
    assert p.m.dtype == torch.int64
    torch.testing.assert_close(p.A, loop.feedback_path.matrix)
    torch.testing.assert_close(p.b, core["input"].gains)
    torch.testing.assert_close(p.c, core["output"].gains)
    torch.testing.assert_close(p.d, direct.gains)
    torch.testing.assert_close(p.gains, attenuation[0].gains)
    torch.testing.assert_close(p.sections, attenuation[1].sos)
    for name in ("A", "b", "c", "d", "gains", "sections"):
        assert getattr(p, name).requires_grad, name
    # without a direct path d is a constant zero
    assert fdn_structure(core).d.item() == 0.0


def test_series_attenuation_gains_multiply_sections_concatenate():
    """Diagonal parts commute: a Series attenuation in any order, gains multiply, SOS cascades
    concatenate."""
    rng = np.random.default_rng(4)
    N, m = 3, np.array([3.0, 5.0, 8.0])
    sos1, sos2 = random_loop_sos(rng, N, 1), random_loop_sos(rng, N, 2)
    attenuation = flamo.Series(flamo.SOS(sos1), flamo.Gain(0.9 ** m), flamo.Gain(np.full(N, 0.95)),
                               flamo.SOS(sos2))
    system = build_fdn(delays=m, attenuation=attenuation, seed=4, dtype=f64)
    p = fdn_structure(system)
    assert p.sections.shape == (N, 3, 6)
    torch.testing.assert_close(p.gains, torch.tensor(0.9 ** m * 0.95))
    ref = library_ir(system)[:L]
    torch.testing.assert_close(render(system, L), ref, rtol=0, atol=1e-9 * ref.abs().max().item())
    # no attenuation given: a lossless orthogonal loop (unit gains), compared with the
    # plain-tensor baseline on the same parameters
    lossless = build_fdn(delays=m, seed=4, input_gains=1.0, output_gains=1.0, dtype=f64)
    p = fdn_structure(lossless)
    assert p.gains.tolist() == [1.0] * N and p.sections is None
    torch.testing.assert_close(render(lossless, 200),
                               fdn_impulse_response(200, [3, 5, 8], p.A.detach(),
                                                    torch.ones(N, dtype=f64),
                                                    torch.ones(N, dtype=f64), 0.0))


@pytest.mark.parametrize("K", [0, 2])
def test_gradients_match_frequency_sampling(K):
    system = library_fdn(seed=5 + K, N=3, K=K, mmax=9, decay=0.8)
    T = 300
    names = [n for n, _ in system.named_parameters()]
    assert len(names) >= 5  # b, A, c, g, d (+ sos)

    def grads(ir):
        system.zero_grad()
        (ir()[:T] ** 2).sum().backward()
        return {n: p.grad.clone() for n, p in system.named_parameters()}

    g_time = grads(lambda: render(system, T))
    g_freq = grads(lambda: library_ir(system))
    for n in names:
        assert g_time[n].abs().max() > 0, n  # the parameter really influences the loss
        torch.testing.assert_close(g_time[n], g_freq[n], rtol=1e-7, atol=1e-10, msg=n)


@pytest.mark.parametrize("backend", ["scipy", "torch"])
def test_render_sos_module_matches_scipy(backend):
    rng = np.random.default_rng(8)
    sos = random_loop_sos(rng, 1, 3, rmax=0.95)[0]  # (K, 6), a0 != 1
    h = render(flamo.SOS(sos).double(), 500, backend=backend)
    x = np.zeros(500)
    x[0] = 1.0
    ref = scipy.signal.sosfilt(sos / sos[:, 3:4], x)
    assert h.shape == (500,)
    np.testing.assert_allclose(h.detach().numpy(), ref, rtol=1e-10, atol=1e-13)
    sos3 = random_loop_sos(rng, 3, 2)  # (N, K, 6): one cascade per channel
    h3 = render(flamo.SOS(sos3).double(), 500, backend=backend)
    assert h3.shape == (500, 3)
    for i in range(3):
        np.testing.assert_allclose(h3[:, i].detach().numpy(),
                                   scipy.signal.sosfilt(sos3[i] / sos3[i][:, 3:4], x),
                                   rtol=1e-10, atol=1e-13)


def test_render_sos_gradients_match_frequency_sampling():
    rng = np.random.default_rng(9)
    module = flamo.SOS(random_loop_sos(rng, 1, 2)[0]).double()
    T = 200

    def grad(ir):
        module.zero_grad()
        (ir()[:T] ** 2).sum().backward()
        return module.raw.grad.clone()

    g_time = grad(lambda: render(module, T))
    g_freq = grad(lambda: module.impulse_response(flamo.Grid(NFFT, dtype=f64))[:, 0, 0])
    torch.testing.assert_close(g_time, g_freq, rtol=1e-8, atol=1e-12)


def test_float32_system():
    system = library_fdn(seed=10, N=3, K=1)
    h32 = render(system.float(), 400)
    assert h32.dtype == torch.float32
    ref = library_ir(system.double())[:400]
    torch.testing.assert_close(h32.double(), ref, rtol=0, atol=1e-5 * ref.abs().max().item())


def test_bad_inputs():
    """Layouts the reader rejects, composed by hand on purpose (the builder cannot make them)."""
    N, m = 3, [2.0, 3.0, 5.0]
    ones_in, ones_out = flamo.Gain(np.ones((N, 1))), flamo.Gain(np.ones((1, N)))

    def composed(forward, feedback=None):
        return flamo.Series(ones_in, flamo.Recursion(forward, feedback or flamo.Matrix(N, seed=0)),
                            ones_out)

    def lines(delays=m, attenuation=None):
        return flamo.Series(flamo.Delay(delays), attenuation or flamo.Gain(np.ones(N)))

    with pytest.raises(TypeError, match="system"):
        fdn_structure(np.eye(3))
    with pytest.raises(ValueError, match="Supported layout: Series"):
        fdn_structure(flamo.Gain(np.eye(3)))
    with pytest.raises(ValueError, match="Recursion"):
        fdn_structure(flamo.Series(ones_in, flamo.Delay(m), ones_out))
    with pytest.raises(ValueError, match="integers >= 1"):
        render(composed(lines([2.5, 3.0, 5.0])), 10)
    with pytest.raises(ValueError, match="integers >= 1"):
        render(composed(lines([0.0, 3.0, 5.0])), 10)
    with pytest.raises(ValueError, match="no gain or second-order-section form"):
        render(composed(lines(attenuation=flamo.Delay(m))), 10)
    with pytest.raises(ValueError, match=r"forward path must be Series\(Delay, attenuation\)"):
        fdn_structure(composed(flamo.Gain(np.ones(N))))
    with pytest.raises(ValueError, match=r"forward path must be Series\(Delay, attenuation\)"):
        fdn_structure(composed(flamo.Delay(m)))
    with pytest.raises(ValueError, match="must be a diagonal 3 x 3 module"):
        render(composed(lines(attenuation=flamo.Matrix(N, seed=1))), 10)
    with pytest.raises(ValueError, match="feedback path must be a flamo.Gain or flamo.Matrix"):
        render(composed(lines(), flamo.Delay(m)), 10)
    with pytest.raises(ValueError, match="2 branches"):
        fdn_structure(flamo.Parallel(composed(lines()), flamo.Gain([[1.0]]), flamo.Gain([[1.0]])))
    with pytest.raises(ValueError, match="direct path must be a flamo.Gain"):
        fdn_structure(flamo.Parallel(composed(lines()), flamo.Delay([1.0])))
    with pytest.raises(ValueError, match="length"):
        render(composed(lines()), 0)
    with pytest.raises(ValueError, match="method"):
        render(composed(lines()), 10, method="fft")
    with pytest.raises(ValueError, match="Supported layout"):
        render(flamo.Delay(m), 10)
    with pytest.raises(ValueError, match="one input and one output"):
        render(build_fdn(delays=[2, 3, 5], seed=0, n_outputs=2), 10)
