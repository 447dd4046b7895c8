"""Proportional EQ (Jot 2015; Valimaki & Reiss 2016): the peak design against its closed
forms evaluated by scipy, the band cascade at its band centres, and the proportional
attenuation's T60 per band, loop gain, gradients, presets and errors."""

import numpy as np
import pytest
import scipy.signal
import torch

import flamo
from flamo.functional import (ProportionalEQ, first_order_lowshelf, octave_bands, proportional_attenuation,
                              proportional_peak, third_octave_bands)
from conftest import response_with
from flamo.reverb import build_fdn, fdn_structure

FS = 48000.0
F64 = torch.float64
DELAYS = [887.0, 911.0, 941.0, 1699.0, 1951.0, 2053.0]
T60 = [4.0, 3.5, 3.0, 2.5, 2.0, 1.8, 1.5, 1.0, 0.7, 0.4]


def db(sos, freqs_hz, fs=FS):
    """dB magnitude by scipy.signal.sosfreqz of (K, 6) sections at frequencies in Hz."""
    sos = np.atleast_2d(np.asarray(sos, dtype=float))
    _, h = scipy.signal.sosfreqz(sos / sos[:, 3:4], worN=np.atleast_1d(np.asarray(freqs_hz, float)), fs=fs)
    return 20 * np.log10(np.abs(h))


def peak_coefficients(f0, bw, gain_db, fs):
    """The published coefficients, written out in numpy (Valimaki & Reiss 2016, Eq. for the
    peak filter with the bandwidth at the mid gain): b = [sqrt(G) + G t, -2 sqrt(G) c,
    sqrt(G) - G t], a = [sqrt(G) + t, -2 sqrt(G) c, sqrt(G) - t]."""
    G, t, c = 10 ** (gain_db / 20), np.tan(np.pi * bw / fs), np.cos(2 * np.pi * f0 / fs)
    r = np.sqrt(G)
    return np.array([r + G * t, -2 * r * c, r - G * t, r + t, -2 * r * c, r - t])


@pytest.mark.parametrize("gain_db", [-30.0, -6.0, -0.5, 3.0, 18.0])
def test_peak_meets_its_design_equations(gain_db):
    f0, bw = 1500.0, 700.0
    sos = proportional_peak(torch.tensor(f0, dtype=F64), torch.tensor(bw, dtype=F64),
                            torch.tensor(gain_db, dtype=F64), FS).numpy()
    ref = peak_coefficients(f0, bw, gain_db, FS)
    np.testing.assert_allclose(sos / sos[3], ref / ref[3], rtol=1e-13, atol=1e-15)
    # the band edges: w2 - w1 = 2 pi bw / fs, cos(w0) = cos((w1 + w2) / 2) / cos((w2 - w1) / 2)
    w0, dw = 2 * np.pi * f0 / FS, 2 * np.pi * bw / FS
    mid = np.arccos(np.cos(w0) * np.cos(dw / 2))
    edges = np.array([mid - dw / 2, mid + dw / 2]) * FS / (2 * np.pi)
    np.testing.assert_allclose(db(sos, [f0]), gain_db, atol=1e-9)
    np.testing.assert_allclose(db(sos, edges), gain_db / 2, atol=1e-9)  # half the dB gain
    np.testing.assert_allclose(db(sos, [0.0, FS / 2]), 0.0, atol=1e-9)
    # |H|^2 = (1 + G x^2) / (1 + x^2 / G), x = t sin w / |cos w - c|, at random frequencies
    w = np.random.default_rng(0).uniform(0.01, np.pi - 0.01, 50)
    x = np.tan(dw / 2) * np.sin(w) / np.abs(np.cos(w) - np.cos(w0))
    G = 10 ** (gain_db / 20)
    np.testing.assert_allclose(db(sos, w * FS / (2 * np.pi)), 10 * np.log10((1 + G * x * x) / (1 + x * x / G)),
                               atol=1e-9)
    assert np.abs(np.roots(sos[3:])).max() < 1


def test_proportional_sections_are_reciprocal_and_half_gain_at_their_edges():
    """G and 1/G give reciprocal responses (the dB response is odd in the dB gain), and the
    edge gain is half the dB gain for every gain: the proportional property."""
    f = np.geomspace(20, 23000, 200)
    for g in (-20.0, -3.0, 7.0):
        up = proportional_peak(torch.tensor(800.0, dtype=F64), torch.tensor(400.0, dtype=F64),
                               torch.tensor(g, dtype=F64), FS).numpy()
        down = proportional_peak(torch.tensor(800.0, dtype=F64), torch.tensor(400.0, dtype=F64),
                                 torch.tensor(-g, dtype=F64), FS).numpy()
        np.testing.assert_allclose(db(up, f), -db(down, f), atol=1e-9)
        shelf = first_order_lowshelf(torch.tensor(300.0, dtype=F64), torch.tensor(g, dtype=F64), FS).numpy()
        np.testing.assert_allclose(db(shelf, [300.0]), g / 2, atol=1e-9)
        np.testing.assert_allclose(db(shelf, [0.0]), g, atol=1e-9)


@pytest.mark.parametrize("centres", ["octave", "third_octave"])
@pytest.mark.parametrize("fs", [44100.0, 48000.0])
def test_cascade_meets_the_band_gains_at_the_centres(centres, fs):
    """The stated accuracy: < 1e-7 dB for band gains over a 10 dB span, < 3e-3 dB over 30 dB,
    at the centres, DC and Nyquist (scipy.signal.sosfreqz of the designed sections)."""
    f = octave_bands() if centres == "octave" else third_octave_bands()
    design = ProportionalEQ(f, fs)
    rng = np.random.default_rng(1)
    for span, tol in ((10.0, 1e-7), (30.0, 3e-3)):
        bands = -5 - span * rng.uniform(size=(20, len(f)))
        sos = design.sections(torch.tensor(bands)).numpy()
        for k in range(len(bands)):
            got = db(sos[k], [0.0, *f, fs / 2], fs)
            expected = np.concatenate([bands[k, :1], bands[k], bands[k, -1:]])
            assert np.abs(got - expected).max() < tol, (span, np.abs(got - expected).max())
    # between the centres a smooth curve stays inside the range of its band gains
    ramp = np.linspace(-1.0, -10.0, len(f))
    curve = db(design.sections(torch.tensor(ramp)).numpy(), np.geomspace(10, fs / 2 * 0.999, 4000), fs)
    assert curve.max() < ramp.max() + 0.01 and curve.min() > ramp.min() - 0.1


def test_section_gains_scale_with_the_delay_length():
    """The linear solve is proportional: band gains k g give section gains k x (exactly), and
    the refined design stays within the refinement's correction of that."""
    design = ProportionalEQ(octave_bands(), FS, refinements=0)
    g = -60 / (FS * torch.tensor(T60, dtype=F64))  # dB per sample
    g0_1, x1 = design.filter_gains(100 * g)
    g0_2, x2 = design.filter_gains(1700 * g)
    torch.testing.assert_close(x2, 17 * x1, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g0_2, 17 * g0_1, rtol=1e-12, atol=1e-12)


def _t60_at(sos, delay, freqs, fs=FS):
    """T60 (s) of a line from its dB gain per pass at freqs: -60 m / (fs dB)."""
    return -60 * delay / (fs * db(sos, freqs, fs))


@pytest.mark.parametrize("per_line", [False, True])
def test_attenuation_t60_matches_at_the_band_centres(per_line):
    t60 = np.array(T60)
    if per_line:
        t60 = t60 * np.linspace(0.8, 1.2, len(DELAYS))[:, None]
    module = flamo.ProportionalAttenuation(DELAYS, torch.tensor(t60, dtype=F64)).double()
    sos = module.sos_at(FS).detach().numpy()
    assert sos.shape == (len(DELAYS), 12, 6)
    for i, m in enumerate(DELAYS):
        row = t60[i] if per_line else t60
        got = _t60_at(sos[i], m, octave_bands())
        np.testing.assert_allclose(got, row, rtol=1e-6)
        np.testing.assert_allclose(_t60_at(sos[i], m, [0.0, FS / 2]), row[[0, -1]], rtol=1e-6)
        assert db(sos[i], np.geomspace(1, FS / 2, 3000)).max() < 0


def test_attenuation_in_an_fdn_keeps_the_loop_gain_below_one():
    """In an FDN with an orthogonal feedback matrix (read back by fdn_structure) the loop's
    spectral norm on a fine grid is the largest per-line magnitude: below 1."""
    attenuation = flamo.ProportionalAttenuation(DELAYS, T60).double()
    loop = fdn_structure(build_fdn(delays=DELAYS, attenuation=attenuation, seed=0)).loop
    grid = flamo.Grid(nfft=2 ** 14, fs=FS, dtype=F64)
    gains = loop.forward_path.response(grid)
    norm = torch.linalg.matrix_norm(gains @ loop.feedback_path.response(grid), ord=2)
    assert norm.max() < 1


def test_attenuation_loop_gain_below_one_for_random_parameters():
    gen = torch.Generator().manual_seed(3)
    grid = flamo.Grid(nfft=2 ** 14, fs=FS, dtype=F64)
    for scale in (1.0, 6.0, 20.0):
        module = flamo.ProportionalAttenuation(DELAYS, T60).double()
        with torch.no_grad():
            module.raw_t60.copy_(torch.randn(10, generator=gen, dtype=F64) * scale)
        h = torch.diagonal(module.response(grid), dim1=-2, dim2=-1)
        assert torch.isfinite(h).all() and h.abs().max() < 1, scale


def test_attenuation_matches_sosfreqz_and_gradcheck():
    module = flamo.ProportionalAttenuation([100.0, 300.0], torch.linspace(2.0, 0.5, 10)).double()
    grid = flamo.Grid(nfft=256, fs=FS, dtype=F64)
    sos = module.sos_at(FS).detach().numpy()
    h = module.response(grid).detach().numpy()
    for i in range(2):
        _, ref = scipy.signal.sosfreqz(sos[i] / sos[i][:, 3:4], worN=2 * np.pi * np.arange(129) / 256)
        np.testing.assert_allclose(h[:, i, i], ref, rtol=1e-9, atol=1e-12)
    # the time-domain twin: test_timedomain.py, test_modules_beyond_random_leaf_render_...
    values = [module.raw_t60.detach().clone().requires_grad_()]
    assert torch.autograd.gradcheck(lambda v: response_with(module, ["raw_t60"], [v],
                                                            flamo.Grid(nfft=16, fs=FS, dtype=F64)),
                                    values, eps=1e-4, atol=1e-5, fast_mode=True)


def test_peak_and_design_gradcheck():
    args = [torch.tensor(v, dtype=F64, requires_grad=True) for v in (1000.0, 300.0, -4.0)]
    assert torch.autograd.gradcheck(lambda f, b, g: proportional_peak(f, b, g, FS), args)
    design = ProportionalEQ([125.0, 500.0, 2000.0, 8000.0], FS)
    bands = torch.tensor([-1.0, -3.0, -2.0, -6.0], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(design.sections, [bands], fast_mode=True)
    delays = torch.tensor([300.0, 700.0], dtype=F64)
    t60 = torch.tensor([2.0, 1.0, 0.8, 0.3], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: proportional_attenuation(design, delays, t), [t60],
                                    fast_mode=True)


def test_preset_round_trip(tmp_path):
    module = flamo.ProportionalAttenuation([100.0, 200.0], torch.linspace(3.0, 0.5, 28),
                                           centres="third_octave", margin_db=0.02).double()
    rebuilt = flamo.load_preset(flamo.save_preset(module, tmp_path / "p.json"))
    assert type(rebuilt) is flamo.ProportionalAttenuation and rebuilt.margin_db == 0.02
    grid = flamo.Grid(nfft=64, fs=FS, dtype=F64)
    torch.testing.assert_close(rebuilt.response(grid), module.response(grid), rtol=1e-12, atol=1e-12)


def test_invalid_input_is_rejected_clearly():
    with pytest.raises(ValueError, match="centres must increase strictly inside"):
        ProportionalEQ([1000.0, 500.0], FS)
    with pytest.raises(ValueError, match=r"centres must increase strictly inside \(0, fs/2 = 16000\)"):
        ProportionalEQ(octave_bands(), 32000.0)
    with pytest.raises(ValueError, match="centres must be a 1-D list of >= 2"):
        ProportionalEQ([1000.0], FS)
    with pytest.raises(ValueError, match="refinements must be an int >= 0"):
        ProportionalEQ(octave_bands(), FS, refinements=-1)
    with pytest.raises(ValueError, match="expected 10 band gains"):
        ProportionalEQ(octave_bands(), FS).sections(torch.zeros(9, dtype=F64))
    with pytest.raises(ValueError, match="ProportionalAttenuation: t60 has 9 bands but there are 10"):
        flamo.ProportionalAttenuation([10.0], [1.0] * 9)
    with pytest.raises(ValueError, match="ProportionalAttenuation: t60 must lie in"):
        flamo.ProportionalAttenuation([10.0], [-1.0] * 10)
    with pytest.raises(ValueError, match="ProportionalAttenuation: delays must be > 0"):
        flamo.ProportionalAttenuation([0.0], [1.0] * 10)
    with pytest.raises(ValueError, match="ProportionalAttenuation: margin_db must be > 0"):
        flamo.ProportionalAttenuation([10.0], [1.0] * 10, margin_db=0.0)
    module = flamo.ProportionalAttenuation([10.0], [1.0] * 10)
    with pytest.raises(ValueError, match="centres must increase strictly inside"):
        module.response(flamo.Grid(nfft=16, fs=22050.0))  # 16 kHz band above Nyquist
