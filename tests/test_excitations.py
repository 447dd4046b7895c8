"""The excitation-signal gallery (flamo.excitations) against closed forms and scipy."""

import math

import numpy as np
import pytest
import scipy.signal
import torch

import flamo
from flamo import excitations
from flamo.functional import velvet_pulses

FS = 8000.0


def test_impulse_and_layout():
    x = excitations.impulse(0.01, FS, channels=2, dtype=torch.float64)
    assert x.shape == (80, 2) and x.dtype == torch.float64
    assert x[0].tolist() == [1.0, 1.0] and x[1:].abs().sum() == 0
    # time first: a 1-input module filters it as it is
    y = flamo.Delay([3.0])(x[:, :1], flamo.Grid(nfft=128, fs=FS))
    assert y.shape == (128, 1) and abs(float(y[3, 0]) - 1) < 1e-6


def test_sine_is_the_closed_form():
    x = excitations.sine(440.0, 0.5, FS, amplitude=0.5, phase=0.3, dtype=torch.float64)
    n = np.arange(4000)
    np.testing.assert_allclose(x[:, 0].numpy(), 0.5 * np.sin(2 * np.pi * 440 * n / FS + 0.3), atol=1e-12)
    with pytest.raises(ValueError, match=r"freq must lie in \[0, fs / 2\]"):
        excitations.sine(5000.0, 0.1, FS)


def test_exponential_sweep_matches_scipy_logarithmic_chirp():
    f1, f2, duration = 20.0, 3000.0, 0.75
    x = excitations.exponential_sweep(f1, f2, duration, FS, channels=2, dtype=torch.float64)
    t = np.arange(x.shape[0]) / FS
    ref = scipy.signal.chirp(t, f0=f1, t1=duration, f1=f2, method="logarithmic", phi=-90)
    np.testing.assert_allclose(x[:, 0].numpy(), ref, atol=1e-9)
    np.testing.assert_array_equal(x[:, 0].numpy(), x[:, 1].numpy())
    with pytest.raises(ValueError, match="f_start != f_stop"):
        excitations.exponential_sweep(100.0, 100.0, 1.0, FS)


def test_white_noise_seeds_and_statistics():
    a = excitations.white_noise(2.0, FS, std=0.5, channels=2, seed=3, dtype=torch.float64)
    b = excitations.white_noise(2.0, FS, std=0.5, channels=2, seed=3, dtype=torch.float64)
    c = excitations.white_noise(2.0, FS, std=0.5, channels=2, seed=4, dtype=torch.float64)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (16000, 2)
    assert abs(float(a.std()) - 0.5) < 0.02  # 32000 draws: the standard error is 0.002
    assert abs(float(torch.corrcoef(a.T)[0, 1])) < 0.05  # channels drawn independently


@pytest.mark.parametrize("density", [500.0, 2000.0, 3000.0])
def test_velvet_noise_density_cells_and_sign_balance(density):
    duration = 4.0
    x = excitations.velvet_noise(duration, FS, density=density, channels=3, seed=0, dtype=torch.float64)
    length = int(duration * FS)
    assert x.shape == (length, 3)
    cell = FS / density
    expected = math.floor(length / cell + 1e-9)
    for ch in range(3):
        nz = torch.nonzero(x[:, ch]).flatten()
        assert nz.numel() == expected  # pulse density: exactly density pulses per second
        assert set(x[nz, ch].tolist()) <= {-1.0, 1.0}
        m = np.arange(expected)  # pulse m lies in cell m: round(m Td) .. round(m Td + Td - 1)
        assert np.all(nz.numpy() >= np.round(m * cell)) and np.all(nz.numpy() <= np.round(m * cell + cell - 1))
        assert torch.all(torch.diff(nz) >= 1)
        plus = float((x[nz, ch] > 0).double().mean())
        assert abs(plus - 0.5) < 4 * 0.5 / math.sqrt(expected)  # signs balanced (4 sigma)


def test_velvet_pulse_range_and_errors():
    positions, signs = velvet_pulses(8000, 1000.0, FS, seed=1, pulse_range=0.25)
    offsets = positions[0] - torch.arange(positions.shape[1]) * 8
    assert offsets.min() >= 0 and offsets.max() <= round(0.25 * 7)
    assert torch.equal(velvet_pulses(8000, 1000.0, FS, seed=1)[0], velvet_pulses(8000, 1000.0, FS, seed=1)[0])
    with pytest.raises(ValueError, match="density must be at most fs"):
        velvet_pulses(100, 2 * FS, FS)
    with pytest.raises(ValueError, match="no pulse"):
        velvet_pulses(3, 1000.0, FS)
    with pytest.raises(ValueError, match=r"pulse_range must lie in \(0, 1\]"):
        velvet_pulses(100, 1000.0, FS, pulse_range=0.0)
    with pytest.raises(ValueError, match="duration"):
        excitations.velvet_noise(0.0, FS)
