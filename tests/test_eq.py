"""PEQ and accurate GEQ: scipy references, published accuracy, gradients, errors."""

import math

import numpy as np
import pytest
import scipy.signal
import torch

import flamo
from flamo.functional import AccurateGEQ, octave_bands, sos_poles, third_octave_bands
from conftest import response_with, sosfreqz_on

FS = 48000.0
G64 = flamo.Grid(nfft=512, fs=FS, dtype=torch.float64)
G32 = flamo.Grid(nfft=512, fs=FS, dtype=torch.float32)


def _norm(sos):
    sos = np.asarray(sos.detach(), dtype=float)
    return sos / sos[..., 3:4]


@pytest.mark.parametrize("grid,tol", [(G64, 1e-10), (G32, 5e-4)])
def test_peq_matches_sosfreqz_and_gains(grid, tol):
    freq = [[80.0, 500.0, 2000.0, 12000.0], [150.0, 900.0, 4000.0, 10000.0]]
    gains = [[6.0, -4.0, 3.0, -8.0], [-3.0, 5.0, -2.0, 4.0]]
    module = flamo.PEQ(freq, gain_db=gains, q=[0.7, 1.5, 2.0, 0.7])
    if grid.dtype == torch.float64:
        module = module.double()
    assert module.shape == (2, 2) and module.bands == 4
    h = module.response(grid).detach().numpy()
    for i in range(2):
        np.testing.assert_allclose(h[:, i, i], sosfreqz_on(_norm(module.sos_at(FS)[i]), grid), rtol=tol, atol=tol)
    # shelves reach their gains at DC / Nyquist (peaks are transparent there)
    np.testing.assert_allclose(20 * np.log10(np.abs(h[0, [0, 1], [0, 1]])), [6.0, -3.0], atol=1e-2 if tol > 1e-6 else 1e-5)  # built from float32 values
    np.testing.assert_allclose(20 * np.log10(np.abs(h[-1, [0, 1], [0, 1]])), [-8.0, 4.0], atol=1e-2 if tol > 1e-6 else 1e-5)  # built from float32 values


def test_peq_single_and_gradcheck_and_stability():
    module = flamo.PEQ([100.0, 1000.0, 8000.0], gain_db=[2.0, -3.0, 1.0]).double()
    assert module.shape == (1, 1) and not module.diagonal
    grid = flamo.Grid(nfft=32, fs=FS, dtype=torch.float64)
    names = ["raw_freq", "raw_q", "raw_gain"]
    values = [getattr(module, n).detach().clone().requires_grad_() for n in names]
    assert torch.autograd.gradcheck(lambda *v: response_with(module, names, v, grid), values)
    big = flamo.PEQ(torch.full((64, 6), 1000.0))
    with torch.no_grad():
        for p in big.parameters():
            p.copy_(torch.randn_like(p) * 8)
    assert sos_poles(big.sos_at(FS)).abs().max() < 1


def test_peq_bad_inputs():
    with pytest.raises(ValueError, match="at least 2 bands"):
        flamo.PEQ([100.0])
    with pytest.raises(ValueError, match="gain_db has 2 bands, freq has 3"):
        flamo.PEQ([100.0, 1000.0, 5000.0], gain_db=[1.0, 2.0])
    with pytest.raises(ValueError, match="freq must lie in"):
        flamo.PEQ([100.0, 1000.0, 24000.0])
    with pytest.raises(ValueError, match="q must lie in"):
        flamo.PEQ([100.0, 1000.0, 5000.0], q=[1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        flamo.PEQ([100.0, float("nan"), 5000.0])


def _band_errors(design, n=200, seed=0):
    gen = torch.Generator().manual_seed(seed)
    command = torch.rand(n, design.bands, generator=gen, dtype=torch.float64) * 24 - 12
    return (design.response_db(command, design.omega) - command).abs()


@pytest.mark.parametrize("centres,fs", [(octave_bands(), 44100.0), (octave_bands(), 48000.0),
                                        (third_octave_bands(), 48000.0)])
def test_geq_accuracy_on_random_targets(centres, fs):
    """Valimaki & Liski (2017) report about 1 dB max error for +/-12 dB random commands."""
    err = _band_errors(AccurateGEQ(centres, fs))
    assert err.max() < 1.0 and err.mean() < 0.25
    # the least squares is the point: filter gain = command gain is far worse
    naive = AccurateGEQ(centres, fs)
    gen = torch.Generator().manual_seed(0)
    command = torch.rand(200, naive.bands, generator=gen, dtype=torch.float64) * 24 - 12
    w = naive.omega.numpy()
    naive_db = np.stack([20 * np.log10(np.abs(scipy.signal.sosfreqz(s / s[:, 3:4], worN=w)[1]))
                         for s in naive.band_sections(command).numpy()])
    naive_err = np.abs(naive_db - command.numpy())
    assert naive_err.max() > 2 * err.max()


def test_geq_exact_for_flat_and_band_filter_design():
    design = AccurateGEQ(octave_bands(), FS)
    g0, gains = design.filter_gains(torch.zeros(10, dtype=torch.float64))
    assert torch.equal(gains, torch.zeros(10, dtype=torch.float64))
    # each Orfanidis band filter: gain G at its centre, 1 at DC and Nyquist
    sos = design.band_sections(torch.full((10,), 9.0, dtype=torch.float64))
    w = design.omega.numpy()
    for m in range(10):
        section = sos[m:m + 1].numpy()
        _, h = scipy.signal.sosfreqz(section / section[:, 3:4], worN=[0.0, w[m], math.pi])
        np.testing.assert_allclose(20 * np.log10(np.abs(h)), [0.0, 9.0, 0.0], atol=1e-9)


def test_geq_default_is_the_published_design_without_offset():
    """Valimaki & Liski (2017) have no broadband gain: the cascade is 0 dB at DC and Nyquist
    whatever the commands; the mean-command offset is an explicit option."""
    command = torch.tensor([12.0, 10, 8, 6, 4, 2, 0, -2, -4, 6], dtype=torch.float64)
    ends = torch.tensor([0.0, math.pi], dtype=torch.float64)
    for design in (AccurateGEQ(octave_bands(), 44100.0),
                   flamo.GEQ(command).double().designs(44100.0)):
        assert design.offset is False
        g0, _ = design.filter_gains(command)
        assert float(g0) == 0.0
        np.testing.assert_allclose(design.response_db(command, ends).numpy(), 0.0, atol=1e-9)
    offset = AccurateGEQ(octave_bands(), 44100.0, offset=True)
    g0, _ = offset.filter_gains(command)
    assert float(g0) == pytest.approx(float(command.mean()))
    np.testing.assert_allclose(offset.response_db(command, ends).numpy(), float(command.mean()),
                               atol=1e-9)


@pytest.mark.parametrize("grid,tol", [(G64, 1e-10), (G32, 5e-4)])
def test_geq_module_matches_sosfreqz(grid, tol):
    gen = torch.Generator().manual_seed(1)
    cmd = torch.rand(3, 10, generator=gen) * 24 - 12
    module = flamo.GEQ(cmd)
    if grid.dtype == torch.float64:
        module = module.double()
    assert module.shape == (3, 3) and module.diagonal
    h = module.response(grid).detach().numpy()
    for i in range(3):
        np.testing.assert_allclose(h[:, i, i], sosfreqz_on(_norm(module.sos_at(FS)[i]), grid), rtol=tol, atol=tol)


def test_geq_evaluates_at_the_grid_rate():
    """The command gains are per band in Hz: on a 44.1 kHz grid the module is the accurate
    GEQ designed at 44.1 kHz (Valimaki & Liski's rate), compared with scipy."""
    command = torch.tensor([12.0, -6, 3, 0, -9, 6, 2, -3, 8, -12], dtype=torch.float64)
    module = flamo.GEQ(command).double()
    grid = flamo.Grid(nfft=1024, fs=44100.0, dtype=torch.float64)
    h = module.response(grid)[:, 0, 0].detach().numpy()
    sos = AccurateGEQ(octave_bands(), 44100.0).sections(command)
    np.testing.assert_allclose(h, sosfreqz_on(_norm(sos), grid), rtol=1e-10, atol=1e-10)
    assert not np.allclose(h, module.response(grid.replace(fs=48000.0))[:, 0, 0].detach().numpy())


def test_geq_gradcheck_through_command_gains():
    module = flamo.GEQ(torch.linspace(-6, 6, 10, dtype=torch.float64)).double()
    grid = flamo.Grid(nfft=64, fs=FS, dtype=torch.float64)
    value = module.raw_command.detach().clone().requires_grad_()
    value.data[3] = 0.0  # through the smooth 0 dB point of the band filter design
    # The 31 Hz band's |1 - 2 cos(w) z^-1 + z^-2| cancels to ~1e-4, leaving ~1e-11 rounding
    # noise in the forward; eps = 1e-4 keeps the finite differences above it (with eps = 1e-6
    # the numerical Jacobian error grows as noise / eps while the analytic one is unchanged).
    assert torch.autograd.gradcheck(lambda v: response_with(module, ["raw_command"], [v], grid), [value],
                                    eps=1e-4, atol=1e-5)


def test_geq_bad_inputs():
    with pytest.raises(ValueError, match="9 bands but there are 10"):
        flamo.GEQ([0.0] * 9)
    with pytest.raises(ValueError, match="finite"):
        flamo.GEQ([0.0] * 9 + [float("nan")])
    with pytest.raises(ValueError, match="centres must increase strictly inside"):
        flamo.GEQ([0.0] * 3, centres=[100.0, 1000.0, 30000.0]).response(G64)  # above fs/2
    with pytest.raises(ValueError, match="increasing frequencies > 0 Hz"):
        flamo.GEQ([0.0] * 3, centres=[0.0, 1000.0, 3000.0])
    with pytest.raises(ValueError, match="'octave', 'third_octave'"):
        flamo.GEQ([0.0] * 10, centres="octaves")
    with pytest.raises(ValueError, match="centres must increase strictly inside"):
        flamo.GEQ([0.0] * 10).response(flamo.Grid(64, fs=16000))  # 8 and 16 kHz bands
