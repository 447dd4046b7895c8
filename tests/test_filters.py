"""Biquad and SVF: scipy.signal references, cookbook semantics, stability, gradients, errors."""

import math

import numpy as np
import pytest
import scipy.signal
import torch

import flamo
from flamo.functional import BIQUAD_KINDS, biquad, sos_poles, svf, svf_mixing
from conftest import response_with, sosfreqz_on

FS = 48000.0
G64 = flamo.Grid(nfft=512, fs=FS, dtype=torch.float64)
G32 = flamo.Grid(nfft=512, fs=FS, dtype=torch.float32)


def _norm(sos):
    """a0-normalized numpy sections (scipy requires a0 = 1)."""
    sos = np.atleast_2d(np.asarray(torch.as_tensor(sos).detach(), dtype=float))
    return sos / sos[:, 3:4]


def _db_at(sos, f):
    sos = _norm(sos)
    _, h = scipy.signal.sosfreqz(sos, worN=np.atleast_1d(f), fs=FS)
    return 20 * np.log10(np.abs(h))


@pytest.mark.parametrize("kind", BIQUAD_KINDS)
@pytest.mark.parametrize("grid,tol", [(G64, 1e-10), (G32, 2e-4)])
def test_biquad_module_matches_sosfreqz(kind, grid, tol):
    module = flamo.Biquad(kind, [200.0, 3000.0, 15000.0], q=[0.5, 2.0, 0.9], gain_db=[6.0, -9.0, 3.0])
    if grid.dtype == torch.float64:
        module = module.double()
    h = module.response(grid).detach().numpy()
    sos = module.sos_at(FS).detach().numpy()  # (3, 1, 6)
    for i in range(3):
        np.testing.assert_allclose(h[:, i, i], sosfreqz_on(_norm(sos[i]), grid), rtol=tol, atol=tol)
    assert np.all(h[:, 0, 1] == 0)


def test_cookbook_semantics_at_reference_points():
    f = torch.tensor(1234.5, dtype=torch.float64)
    assert _db_at(biquad("lowpass", f, 2 ** -0.5, 0.0, FS), 1234.5) == pytest.approx(-3.0103, abs=1e-4)
    assert _db_at(biquad("highpass", f, 2 ** -0.5, 0.0, FS), 1234.5) == pytest.approx(-3.0103, abs=1e-4)
    assert _db_at(biquad("lowpass", f, 3.0, 0.0, FS), 1234.5) == pytest.approx(20 * math.log10(3.0), abs=1e-9)
    assert _db_at(biquad("bandpass", f, 4.0, 0.0, FS), 1234.5) == pytest.approx(0.0, abs=1e-9)
    assert _db_at(biquad("notch", f, 4.0, 0.0, FS), 1234.5) < -200
    np.testing.assert_allclose(_db_at(biquad("allpass", f, 0.8, 0.0, FS), [10.0, 1234.5, 20000.0]), 0, atol=1e-9)
    for gain in (-12.0, 7.5):
        assert _db_at(biquad("peak", f, 1.7, gain, FS), 1234.5) == pytest.approx(gain, abs=1e-9)
        for kind in ("lowshelf", "lowshelf1"):
            np.testing.assert_allclose(_db_at(biquad(kind, f, 2 ** -0.5, gain, FS), [0.0, 1234.5, 24000.0]),
                                       [gain, gain / 2, 0.0], atol=1e-9)
        for kind in ("highshelf", "highshelf1"):
            np.testing.assert_allclose(_db_at(biquad(kind, f, 2 ** -0.5, gain, FS), [0.0, 1234.5, 24000.0]),
                                       [0.0, gain / 2, gain], atol=1e-9)


def test_rbj_lowpass_coefficients_by_hand():
    w0 = 2 * math.pi * 1000 / FS
    alpha = math.sin(w0) / (2 * 0.7)
    c = math.cos(w0)
    expected = [(1 - c) / 2, 1 - c, (1 - c) / 2, 1 + alpha, -2 * c, 1 - alpha]
    got = biquad("lowpass", torch.tensor(1000.0, dtype=torch.float64), 0.7, 0.0, FS)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-14)
    b, a = scipy.signal.butter(2, 1000, fs=FS)  # Butterworth = RBJ lowpass at Q = 1/sqrt(2)
    got = biquad("lowpass", torch.tensor(1000.0, dtype=torch.float64), 2 ** -0.5, 0.0, FS)
    np.testing.assert_allclose((got[:3] / got[3]).numpy(), b, rtol=1e-12)
    np.testing.assert_allclose((got[3:] / got[3]).numpy(), a, rtol=1e-12)


@pytest.mark.parametrize("kind", BIQUAD_KINDS)
def test_random_raw_parameters_keep_poles_inside(kind):
    module = flamo.Biquad(kind, torch.full((256,), 1000.0))
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 8)  # far into the sigmoids' tails
    f = module.freq
    assert (f > 0).all() and (f < FS / 2).all() and (module.q > 0).all()
    assert sos_poles(module.sos_at(FS)).abs().max() < 1


def test_biquad_gradcheck():
    module = flamo.Biquad("peak", [300.0, 5000.0], q=[0.8, 3.0], gain_db=[4.0, -6.0]).double()
    grid = flamo.Grid(nfft=32, fs=FS, dtype=torch.float64)
    names = ["raw_freq", "raw_q", "raw_gain"]
    values = [getattr(module, n).detach().clone().requires_grad_() for n in names]
    assert torch.autograd.gradcheck(lambda *v: response_with(module, names, v, grid), values)


def test_biquad_batched_parameters():
    module = flamo.Biquad("lowshelf", [100.0, 1000.0], gain_db=3.0).double()
    raw = module.raw_freq.detach()
    batch = torch.stack([raw, raw + 0.5])
    h = response_with(module, ["raw_freq"], [batch], G64)
    assert h.shape == (2, G64.M, 2, 2)
    torch.testing.assert_close(h[0], module.response(G64))


@pytest.mark.parametrize("kind", ["lowpass", "highpass", "bandpass", "notch", "peak"])
def test_svf_mixes_match_rbj(kind):
    """SVF mixes reproduce the RBJ designs (same bilinear prototype): Q = 1/(2R), and for the
    peak the RBJ denominator damping 1/(A Q) equals 2R, i.e. Q = 1/(2 R A)."""
    f, r, gain = torch.tensor(2500.0, dtype=torch.float64), 0.35, 5.0
    sv = svf(f, r, *svf_mixing(kind, torch.tensor(r, dtype=torch.float64), gain), FS)
    q = 1 / (2 * r * 10 ** (gain / 40)) if kind == "peak" else 1 / (2 * r)
    rbj = biquad(kind, f, q, gain, FS)
    omega = np.linspace(0.01, 3.1, 50)
    _, h1 = scipy.signal.freqz(sv[:3].numpy(), sv[3:].numpy(), worN=omega)
    _, h2 = scipy.signal.freqz(rbj[:3].numpy(), rbj[3:].numpy(), worN=omega)
    np.testing.assert_allclose(np.abs(h1), np.abs(h2), rtol=1e-9)


@pytest.mark.parametrize("kind,dc,nyq", [("lowshelf", 6.0, 0.0), ("highshelf", 0.0, 6.0), ("peak", 0.0, 0.0)])
def test_svf_shelf_and_peak_mixes(kind, dc, nyq):
    f = torch.tensor(900.0, dtype=torch.float64)
    sv = svf(f, 0.6, *svf_mixing(kind, torch.tensor(0.6, dtype=torch.float64), 6.0), FS)
    np.testing.assert_allclose(_db_at(sv, [0.0, 24000.0]), [dc, nyq], atol=1e-9)
    if kind == "peak":
        assert _db_at(sv, 900.0) == pytest.approx(6.0, abs=1e-9)


@pytest.mark.parametrize("grid,tol", [(G64, 1e-10), (G32, 2e-4)])
def test_svf_module_matches_freqz(grid, tol):
    module = flamo.SVF([300.0, 8000.0], resonance=[0.2, 1.5], mix=[[1.0, 0.3, -0.2], [0.5, 2.0, 1.0]])
    if grid.dtype == torch.float64:
        module = module.double()
    h = module.response(grid).detach().numpy()
    for i in range(2):
        np.testing.assert_allclose(h[:, i, i], sosfreqz_on(_norm(module.sos_at(FS)[i]), grid),
                                   rtol=tol, atol=tol)
    g, r = math.tan(math.pi * module.freq[0].item() / FS), module.resonance[0].item()
    assert abs(r - 0.2) < 1e-6
    a = [g * g + 2 * r * g + 1, 2 * (g * g - 1), g * g - 2 * r * g + 1]
    np.testing.assert_allclose(module.sos_at(FS)[0, 0, 3:].detach().numpy(), a, rtol=1e-12)


def test_svf_random_raw_parameters_are_stable_and_gradcheck():
    module = flamo.SVF(torch.full((512,), 1000.0))
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 8)
    assert sos_poles(module.sos_at(FS)).abs().max() < 1
    small = flamo.SVF(700.0, resonance=0.4, mix=[1.0, 0.5, 0.2]).double()
    grid = flamo.Grid(nfft=32, fs=FS, dtype=torch.float64)
    names = ["raw_freq", "raw_resonance", "raw_mix"]
    values = [getattr(small, n).detach().clone().requires_grad_() for n in names]
    assert torch.autograd.gradcheck(lambda *v: response_with(small, names, v, grid), values)


def test_bad_inputs():
    for freq in (0.0, -5.0, FS / 2, 30000.0):
        with pytest.raises(ValueError, match="freq must lie in"):
            flamo.Biquad("peak", freq)
        with pytest.raises(ValueError, match="freq must lie in"):
            flamo.SVF(freq)
    for q in (0.0, -1.0):
        with pytest.raises(ValueError, match="q must lie in"):
            flamo.Biquad("lowpass", 1000.0, q=q)
    with pytest.raises(ValueError, match="resonance must lie in"):
        flamo.SVF(1000.0, resonance=0.0)
    with pytest.raises(ValueError, match="finite"):
        flamo.Biquad("lowpass", float("nan"))
    with pytest.raises(ValueError, match="finite"):
        flamo.Biquad("peak", 100.0, gain_db=float("nan"))
    with pytest.raises(ValueError, match="q must broadcast"):
        flamo.Biquad("lowpass", [100.0, 200.0], q=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="kind must be one of"):
        flamo.Biquad("bell", 100.0)
    # the sample rate belongs to the evaluation: above Nyquist there, or no rate at all
    with pytest.raises(ValueError, match="Nyquist frequency fs/2 = 11025 Hz"):
        flamo.Biquad("lowpass", 12000.0).response(flamo.Grid(64, fs=22050))
    with pytest.raises(ValueError, match="sample rate"):
        flamo.Biquad("lowpass", 100.0).probe(torch.tensor([1.0 + 0j]))


@pytest.mark.parametrize("fs", [44100.0, 96000.0])
def test_one_module_evaluates_at_the_rate_of_each_grid(fs):
    """Parameters stay in Hz: a module evaluated on a grid at fs equals scipy's design at fs,
    and a preset saved without fs evaluates the same."""
    module = flamo.Biquad("peak", [1000.0, 8000.0], q=[2.0, 0.7], gain_db=[6.0, -4.0]).double()
    grid = flamo.Grid(nfft=256, fs=fs, dtype=torch.float64)
    h = module.response(grid).detach().numpy()
    for i in range(2):  # the mapped values (float32 inputs, then float64)
        f, q, g = module.freq[i].item(), module.q[i].item(), module.gain_db[i].item()
        w0, amp = 2 * math.pi * f / fs, 10 ** (g / 40)
        alpha = math.sin(w0) / (2 * q)
        b = [1 + alpha * amp, -2 * math.cos(w0), 1 - alpha * amp]
        a = [1 + alpha / amp, -2 * math.cos(w0), 1 - alpha / amp]
        _, ref = scipy.signal.freqz(b, a, worN=grid.omega.numpy())
        np.testing.assert_allclose(h[:, i, i], ref, rtol=1e-10, atol=1e-10)
    assert "fs" not in module.config()
    np.testing.assert_allclose(flamo.from_config(module.config()).response(grid).detach().numpy(), h,
                               rtol=1e-10, atol=1e-12)
