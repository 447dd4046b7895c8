"""Velvet-noise modules: VelvetNoiseFilter against scipy, VelvetNoiseMatrix paraunitary and sparse."""

import numpy as np
import pytest
import scipy.signal
import torch

import flamo
from conftest import response_with

FS = 8000.0


def test_velvet_filter_is_the_sparse_fir_of_its_pulses():
    module = flamo.VelvetNoiseFilter.random(3, 0.05, 1000.0, FS, seed=2).double()
    positions, gains = module.positions.numpy(), module.gains.detach().numpy()
    assert positions.shape == (3, 50) and set(np.unique(gains)) <= {-1.0, 1.0}
    grid = flamo.Grid(nfft=1024, fs=FS, dtype=torch.float64)
    h = module.response(grid).detach().numpy()
    for ch in range(3):
        taps = np.zeros(positions[ch].max() + 1)
        taps[positions[ch]] = gains[ch]
        _, ref = scipy.signal.freqz(taps, worN=grid.omega.numpy())
        np.testing.assert_allclose(h[:, ch, ch], ref, rtol=1e-10, atol=1e-10)
        assert np.abs(h[:, ch, (ch + 1) % 3]).max() == 0  # diagonal
    ir = module.impulse_response(grid)
    nz = torch.nonzero(ir[:, 1, 1].abs() > 0.5).flatten()
    assert torch.equal(nz, module.positions[1])  # the impulse response is the velvet sequence


def test_velvet_filter_gains_learn_and_bad_input():
    module = flamo.VelvetNoiseFilter([[0.0, 5.0, 9.0]], [[1.0, -1.0, 1.0]]).double()
    grid = flamo.Grid(nfft=32, alias_decay_db=10, dtype=torch.float64)
    raw = module.raw.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: response_with(module, ["raw"], (v,), grid), (raw,))
    with pytest.raises(ValueError, match="integers >= 0"):
        flamo.VelvetNoiseFilter([[0.5, 2.0]])
    with pytest.raises(ValueError, match="shape of positions"):
        flamo.VelvetNoiseFilter([[0.0, 2.0]], [[1.0]])
    with pytest.raises(ValueError, match="fs must be a finite number > 0"):
        flamo.VelvetNoiseFilter.random(1, 0.1, 100.0, 0.0)


@pytest.mark.parametrize("orthogonal", ["hadamard", "random"])
def test_velvet_matrix_is_paraunitary(orthogonal):
    module = flamo.VelvetNoiseMatrix(4, stages=3, spread=60, seed=5, orthogonal=orthogonal,
                                     dtype=torch.float64)
    grid = flamo.Grid(nfft=512, dtype=torch.float64)  # the unit circle
    a = module.response(grid)
    eye = torch.eye(4, dtype=a.dtype)
    assert (a.mH @ a - eye).abs().max() < 1e-12  # A^H(e^jw) A(e^jw) = I at every frequency
    assert (a @ a.mH - eye).abs().max() < 1e-12
    assert (a - a[0]).abs().max() > 0.1


def test_hadamard_velvet_matrix_entries_are_velvet_sequences():
    n, stages = 4, 2
    module = flamo.VelvetNoiseMatrix(n, stages=stages, spread=200, seed=0, dtype=torch.float64)
    ir = module.impulse_response(flamo.Grid(nfft=1024, dtype=torch.float64))  # (T, n, n), exact taps
    pulse = n ** (-stages / 2)
    units = ir / pulse  # every tap an integer number of pulses (pulses add where delays coincide)
    assert (units - units.round()).abs().max() < 1e-9
    assert (units.round().abs().sum(0) <= n ** (stages - 1)).all()
    assert ((ir.abs() > 1e-9).sum(0) >= 1).all()  # every entry is a sparse sequence, none is empty
    assert ((ir.abs() > 1e-9).sum(0) <= n ** (stages - 1)).all()
    torch.testing.assert_close(ir.square().sum((0, 1)), torch.ones(n, dtype=torch.float64))  # energy
    assert ir[2 * 200:].abs().max() < 1e-12  # at most stages * spread samples long


def test_velvet_matrix_preset_keeps_its_values_and_type():
    module = flamo.VelvetNoiseMatrix(4, stages=2, spread=30, seed=1, learnable=True)
    rebuilt = flamo.from_config(module.config())
    assert type(rebuilt) is flamo.VelvetNoiseMatrix and module.config()["type"] == "VelvetNoiseMatrix"
    assert torch.equal(rebuilt.delays, module.delays)
    with pytest.raises(ValueError, match="'hadamard' or 'random'"):
        flamo.VelvetNoiseMatrix(4, 1, 10, orthogonal="free")
    with pytest.raises(ValueError, match="stages >= 1"):
        flamo.VelvetNoiseMatrix(4, 0, 10)
