"""Tests of experiments/active_acoustics.py: the closed loop and its GBI against numpy."""

import dataclasses

import numpy as np
import pytest
import torch

import flamo
from experiments import active_acoustics as aa


def _random_paths(m=2, l=3, t=40, seed=0):
    rng = np.random.default_rng(seed)
    decay = 0.9 ** np.arange(t)
    return {"LM": rng.normal(size=(m, l, t)) * decay, "SM": rng.normal(size=(m, 1, t)) * decay,
            "LA": rng.normal(size=(1, l, t)) * decay, "SA": rng.normal(size=(1, 1, t)) * decay}


def _dft(h, nfft):
    return np.moveaxis(np.fft.rfft(h, nfft, axis=-1), -1, 0)  # (K, out, in)


def test_audience_response_and_gbi_match_numpy():
    paths, nfft = _random_paths(), 128
    taps = np.random.default_rng(1).normal(size=(3, 2, 5))
    system = aa.ActiveAcoustics(paths, taps, torch.float64)
    system.normalize_dsp()
    d = _dft(taps / np.linalg.norm(taps), nfft)
    lm, sm, la, sa = (_dft(paths[k], nfft) for k in ("LM", "SM", "LA", "SA"))
    grid = flamo.Grid(nfft, dtype=torch.float64)
    radius = np.abs(np.linalg.eigvals(lm @ d)).max(-1)
    gbi = flamo.reverb.gain_before_instability(system.loop, grid)
    assert gbi == pytest.approx(1 / radius.max(), rel=1e-10)
    g = 0.5 * gbi
    system.set_gain(g)
    loop = np.linalg.inv(np.eye(3) - g * d @ lm)
    expected = sa + la @ loop @ (g * d) @ sm
    got = system.audience.response(grid).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_measure_is_taken_at_unit_norm_and_restores_the_gain():
    paths, nfft = _random_paths(seed=2), 128
    taps = 7.0 * np.random.default_rng(3).normal(size=(3, 2, 5))
    system = aa.ActiveAcoustics(paths, taps, torch.float64)
    grid = flamo.Grid(nfft, fs=1000.0, dtype=torch.float64)
    band = np.ones(grid.M, dtype=bool)
    m = aa.measure(system, grid, band, margin_db=3.0)
    assert float(system.dsp.raw.detach().norm()) == pytest.approx(1.0, rel=1e-12)
    assert float(system.gain.raw[0]) == 1.0
    assert m["gbi_db"] == pytest.approx(-float(m["max_eig_db"].max()), abs=1e-9)


def test_otala_paths_are_the_measured_files_scaled_together():
    cfg = dataclasses.replace(aa.Config.quick(), rooms=("otala",))
    (task,) = aa.tasks(cfg)
    paths = aa.room_paths(task.params)
    assert paths["LM"].shape == (cfg.mics, cfg.loudspeakers, cfg.rir_samples)
    assert paths["SM"].shape == (cfg.mics, 1, cfg.rir_samples) and paths["SA"].shape == (1, 1, cfg.rir_samples)
    assert np.linalg.norm(paths["LM"]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ"):
        aa.room_paths({**task.params, "otala_sha256": "0" * 64})
    with pytest.raises(ValueError, match="mics"):
        aa.tasks(dataclasses.replace(cfg, mics=5))
    with pytest.raises(ValueError, match="nfft"):
        aa.tasks(dataclasses.replace(cfg, nfft=512))
