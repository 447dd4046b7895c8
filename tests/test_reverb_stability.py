"""Tests of flamo.reverb.stability: loop gain, certificate, trainer callback."""


import numpy as np
import pytest
import scipy.signal
import torch

from flamo.optim.trainer import TrainState

import flamo
from conftest import random_stable_sos
from flamo.reverb import (StabilityCallback, build_fdn, certify_stable, fdn_structure, find_recursions,
                          loop_gain)

DELAYS = [23, 29, 31, 37]


def test_loop_gain_orthogonal_matrix_is_largest_line_gain():
    g = [0.9, 0.95, 0.7, 0.8]
    fdn = build_fdn(delays=DELAYS, line_gains=g, seed=0, direct_gain=0.1)
    grid = flamo.Grid(256)
    assert float(loop_gain(fdn, grid)) == pytest.approx(0.95, rel=1e-5)
    per_freq = loop_gain(fdn, grid, per_frequency=True)
    assert per_freq.shape == (grid.M,) and torch.allclose(per_freq, torch.tensor(0.95), rtol=1e-5)
    assert find_recursions(fdn) == [fdn_structure(fdn).loop]


def test_loop_gain_free_matrix_is_spectral_norm_of_diag_g_times_a():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(4, 4))
    g = rng.uniform(0.2, 0.9, 4)
    fdn = build_fdn(delays=DELAYS, matrix="free", matrix_init=A, line_gains=g, seed=0,
                    dtype=torch.float64)
    # diag(z^-m) is unitary on |z| = 1, so ||diag(g z^-m) A||_2 = ||diag(g) A||_2 everywhere
    expected = np.linalg.norm(np.diag(g) @ A, 2)
    per_freq = loop_gain(fdn, flamo.Grid(128, dtype=torch.float64), per_frequency=True)
    np.testing.assert_allclose(per_freq.numpy(), expected, rtol=1e-12)


def test_loop_gain_with_filters_follows_their_magnitude_and_ignores_alias_decay():
    rng = np.random.default_rng(2)
    sos = np.stack([random_stable_sos(rng, 2) for _ in DELAYS])
    fdn = build_fdn(delays=DELAYS, attenuation=flamo.SOS(torch.tensor(sos)), seed=0,
                    dtype=torch.float64)
    grid = flamo.Grid(512, dtype=torch.float64)
    mags = np.stack([np.abs(scipy.signal.sosfreqz(s, worN=grid.omega.numpy())[1]) for s in sos])
    per_freq = loop_gain(fdn, grid, per_frequency=True)
    np.testing.assert_allclose(per_freq.numpy(), mags.max(0), rtol=1e-10)
    cert = certify_stable(fdn, grid.replace(alias_decay_db=30.0))  # still on |z| = 1
    assert cert.max_loop_gain == pytest.approx(mags.max(), rel=1e-10)
    k = int(mags.max(0).argmax())
    assert cert.frequency_hz == pytest.approx(k * grid.fs / grid.nfft)


def test_certify_stable_margin_and_lossless():
    grid = flamo.Grid(64)
    lossy = build_fdn(delays=DELAYS, line_gains=[0.99] * 4, seed=0)
    assert certify_stable(lossy, grid).stable and certify_stable(lossy, grid)
    cert = certify_stable(lossy, grid, margin=0.02)
    assert not cert.stable and cert.margin == 0.02
    lossless = build_fdn(delays=DELAYS, seed=0)  # orthogonal matrix, unit gains: gain 1
    assert not certify_stable(lossless, grid).stable
    with pytest.raises(ValueError, match="margin must lie in"):
        certify_stable(lossy, grid, margin=1.0)
    with pytest.raises(ValueError, match="contains no Recursion"):
        loop_gain(flamo.Gain([[1.0]]), grid)


def test_stability_callback_stops_when_gain_approaches_one():
    fdn = build_fdn(delays=DELAYS, line_gains=[0.9] * 4, seed=0, learnable_attenuation=True)
    callback = StabilityCallback(fdn, flamo.Grid(64), every=2, margin=1e-3)
    state = TrainState(step=0, epoch=0, losses={}, model=fdn, optimizer=None, trainer=None)
    assert callback(state).stable and state.stop_reason is None
    state.step = 1
    assert callback(state) is None  # not a checking step
    att = fdn_structure(fdn).attenuation
    with torch.no_grad():  # drift: the gains approach 1 (Interval raw -> +inf)
        att.raw.fill_(12.0)
    state.step = 2
    cert = callback(state)
    assert not cert.stable and "loop gain" in state.stop_reason
    assert [s for s, _ in callback.history] == [0, 2]
    with pytest.raises(ValueError, match="every must be an int >= 1"):
        StabilityCallback(fdn, flamo.Grid(64), every=0)


def test_trainer_stops_on_the_stability_callback():
    """End to end: an optimizer that pushes the loop gains up is stopped by the callback."""
    from flamo.optim import Trainer

    fdn = build_fdn(delays=DELAYS, line_gains=[0.9] * 4, seed=0, learnable_attenuation=True)
    att = fdn_structure(fdn).attenuation
    callback = StabilityCallback(fdn, flamo.Grid(64), every=1, margin=0.05)
    push_up = lambda model, _x: -att.gains.sum()  # noqa: E731  (loss falls as the gains rise)
    trainer = Trainer(fdn, {"gain": (lambda out, _t: out, 1.0)}, data=(None, None), forward=push_up,
                      lr=0.5, steps_per_epoch=200, callbacks=[callback], progress=False)
    trainer.fit(epochs=1)
    assert trainer.stop_reason is not None and "StabilityCallback" in trainer.stop_reason
    assert trainer.step < 200 and callback.history[-1][1] >= 0.95
