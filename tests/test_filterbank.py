"""FilterBank and the filterbank designs against scipy.signal.butter + sosfreqz."""

import numpy as np
import pytest
import scipy.signal
import torch

import flamo
from flamo.functional import band_edges, band_masks, butterworth_bandpass
from flamo.optim import energy_decay


@pytest.mark.parametrize("order, low, high, fs", [(1, 700.0, 1400.0, 48000.0), (3, 88.0, 177.0, 48000.0),
                                                  (4, 11000.0, 20000.0, 44100.0), (5, 40.0, 20000.0, 48000.0)])
def test_butterworth_bandpass_matches_scipy(order, low, high, fs):
    ours = butterworth_bandpass(order, low, high, fs)
    ref = scipy.signal.butter(order, [low, high], btype="bandpass", output="sos", fs=fs)
    w = np.linspace(1.0, fs / 2 - 1.0, 4000)
    _, h = scipy.signal.sosfreqz(ours, worN=w, fs=fs)
    _, h_ref = scipy.signal.sosfreqz(ref, worN=w, fs=fs)
    np.testing.assert_allclose(h, h_ref, rtol=1e-9, atol=1e-12)
    w1, w2 = (2 * fs * np.tan(np.pi * f / fs) for f in (low, high))  # prewarped edges
    centre = fs / np.pi * np.arctan(np.sqrt(w1 * w2) / (2 * fs))  # |H| = 1 at the warped centre
    _, edge = scipy.signal.sosfreqz(ours, worN=[low, high, centre], fs=fs)
    np.testing.assert_allclose(20 * np.log10(np.abs(edge)), [-3.0103, -3.0103, 0.0], atol=1e-4)


@pytest.mark.parametrize("centres, fraction", [("octave", 1), ("third_octave", 3)])
def test_filterbank_module_is_butter_per_band(centres, fraction):
    fs = 48000.0
    bank = flamo.FilterBank(centres, order=3)
    grid = flamo.Grid(nfft=2**12, fs=fs, dtype=torch.float64)
    h = bank.response(grid)
    bands = len(bank.centres)
    assert h.shape == (grid.M, bands, 1) and bands == (10 if fraction == 1 else 28)
    f = grid.freqs.numpy()
    for i, (lo, hi) in enumerate(band_edges(bank.centres, fraction)):
        ref = scipy.signal.butter(3, [lo, hi], btype="bandpass", output="sos", fs=fs)
        _, href = scipy.signal.sosfreqz(ref, worN=f, fs=fs)
        np.testing.assert_allclose(h[:, i, 0].numpy(), href, rtol=1e-8, atol=1e-10)
    # at explicit points: probe equals the grid response
    k = torch.tensor([3, 100, 1500])
    torch.testing.assert_close(bank.probe(grid.z[k], fs=fs), h[k])


def test_complementary_filterbank_reconstructs_perfectly():
    fs = 40000.0
    bank = flamo.FilterBank("octave", kind="complementary")
    with pytest.raises(ValueError, match="band edges"):  # the Butterworth 16 kHz band needs fs > 45.3 kHz
        flamo.FilterBank("octave").response(flamo.Grid(nfft=64, fs=fs))
    grid = flamo.Grid(nfft=2**11, fs=fs, dtype=torch.float64)
    h = bank.response(grid)
    torch.testing.assert_close(h.sum(-2)[:, 0].real, torch.ones(grid.M, dtype=torch.float64), rtol=0, atol=1e-14)
    assert (h.imag == 0).all() and (h.real >= 0).all()  # zero phase
    x = torch.randn(500, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = bank(x, grid)  # (nfft, bands)
    torch.testing.assert_close(y.sum(-1)[:500], x[:, 0])
    # the same bands the decay losses use (flamo.optim.octave_filterbank)
    masks = energy_decay.octave_band_masks(grid.M, fs, bank.centres, dtype=torch.float64)
    torch.testing.assert_close(h[:, :, 0].real, masks)
    torch.testing.assert_close(band_masks(grid.freqs, bank.centres), masks)


def test_filterbank_preset_and_errors():
    bank = flamo.FilterBank([125.0, 250.0, 500.0], fraction=1, order=2)
    assert flamo.from_config(bank.config()).config() == bank.config()
    third = flamo.FilterBank("third_octave", kind="complementary")
    rebuilt = flamo.from_config(third.config())
    grid = flamo.Grid(nfft=256, dtype=torch.float64)
    torch.testing.assert_close(rebuilt.response(grid), third.response(grid))
    torch.testing.assert_close(third.probe(grid.z[[5, 40]], fs=grid.fs), third.response(grid)[[5, 40]])
    with pytest.raises(ValueError, match="need fraction"):
        flamo.FilterBank([100.0, 200.0])
    with pytest.raises(ValueError, match="increasing"):
        flamo.FilterBank([200.0, 100.0], fraction=1)
    with pytest.raises(ValueError, match="kind must be one of"):
        flamo.FilterBank(kind="linkwitz")
    with pytest.raises(ValueError, match="unit circle only"):
        flamo.FilterBank(kind="complementary").response(flamo.Grid(nfft=64, alias_decay_db=20))
    with pytest.raises(ValueError, match="sample rate"):
        flamo.FilterBank().probe(torch.tensor([1j]))
