"""Tests of flamo.reverb.stability: loop gain, certificate, trainer callback."""


import numpy as np
import pytest
import scipy.signal
import torch

from flamo.optim.trainer import TrainState

import flamo
from conftest import random_stable_sos
from flamo.reverb import (StabilityCallback, build_fdn, certify_stable, fdn_structure, find_recursions,
                          gain_before_instability, loop_eigenvalues, loop_gain)

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


# ---- gain before instability -------------------------------------------------------------

def _scalar_loop(a, d, lowpass=None):
    """x -> loop with forward a z^-d (optionally through a one-pole lowpass of unit DC gain)."""
    f64 = dict(dtype=torch.float64)
    forward = flamo.Series(flamo.Gain(torch.tensor([[a]], **f64)), flamo.Delay(torch.tensor([float(d)], **f64)))
    if lowpass is not None:  # (1 - p) / (1 - p z^-1): peak magnitude 1 at DC, phase 0 there
        forward = flamo.Series(forward, flamo.SOS(torch.tensor([[1 - lowpass, 0.0, 0.0, 1.0, -lowpass, 0.0]], **f64)))
    return flamo.Recursion(forward, flamo.Gain(torch.tensor([[1.0]], **f64)))


def _nonnormal_loop(scale):
    """F = diag(z^-3, z^-4), B = scale [[0, 4], [0.01, 0]]: eigenvalues of F B are
    +-scale sqrt(0.04) e^{-j 7 w / 2}, spectral radius 0.2 scale at every w, spectral norm 4 scale."""
    b = scale * torch.tensor([[0.0, 4.0], [0.01, 0.0]], dtype=torch.float64)
    return flamo.Recursion(flamo.Delay(torch.tensor([3.0, 4.0], dtype=torch.float64)),
                           flamo.Gain(b))


def _late_over_early_energy(loop, n=4000, block=500):
    x = torch.zeros(n, loop.shape[1], dtype=torch.float64)
    x[0] = 1.0
    with torch.no_grad():
        y = flamo.render(loop, x).double()
    return float((y[-block:] ** 2).sum() / (y[:block] ** 2).sum())


@pytest.mark.parametrize("lowpass", [None, 0.6])
def test_gbi_of_a_scalar_loop_is_one_over_its_peak_magnitude(lowpass):
    a, d = -0.8, 5
    grid = flamo.Grid(64, dtype=torch.float64, alias_decay_db=20.0)  # evaluated on |z| = 1 anyway
    gbi = gain_before_instability(_scalar_loop(a, d, lowpass), grid)
    assert gbi == pytest.approx(1 / abs(a), rel=1e-12)  # closed form: max_w |a H(w)| = |a| at w = 0
    radius = gain_before_instability(_scalar_loop(a, d, lowpass), grid, per_frequency=True)
    w = 2 * np.pi * np.arange(grid.M) / grid.nfft
    h = abs(a) * np.ones_like(w) if lowpass is None else \
        abs(a * scipy.signal.freqz([1 - lowpass], [1, -lowpass], worN=w)[1])
    np.testing.assert_allclose(radius.numpy(), h, rtol=1e-12)


def test_gbi_against_time_domain_growth_just_above_and_decay_just_below():
    a, d = 0.8, 5
    gbi = gain_before_instability(_scalar_loop(a, d), flamo.Grid(64, dtype=torch.float64))
    assert _late_over_early_energy(_scalar_loop(a * 1.01 * gbi, d)) > 1e3
    assert _late_over_early_energy(_scalar_loop(a * 0.99 * gbi, d)) < 1e-3


def test_gbi_of_a_nonnormal_loop_uses_the_spectral_radius_not_the_norm():
    grid = flamo.Grid(128, dtype=torch.float64)
    loop = _nonnormal_loop(1.0)
    gbi = gain_before_instability(loop, grid)
    assert gbi == pytest.approx(5.0, rel=1e-12)
    assert 1 / float(loop_gain(loop, grid)) == pytest.approx(0.25, rel=1e-12)  # small gain: too cautious
    assert _late_over_early_energy(_nonnormal_loop(1.01 * gbi)) > 1e3
    assert _late_over_early_energy(_nonnormal_loop(0.99 * gbi)) < 1e-3
    assert _late_over_early_energy(_nonnormal_loop(4.0)) < 1e-3  # above 1 / loop gain, still stable


def test_loop_eigenvalues_match_trace_and_determinant_and_points():
    grid = flamo.Grid(32, dtype=torch.float64)
    lam = loop_eigenvalues(_nonnormal_loop(1.0), grid)
    z = torch.exp(2j * np.pi * torch.arange(grid.M, dtype=torch.float64) / grid.nfft)
    assert lam.shape == (grid.M, 2)
    torch.testing.assert_close(lam.sum(-1), torch.zeros_like(z), atol=1e-14, rtol=0)
    torch.testing.assert_close(lam.prod(-1), -0.04 * z ** -7, atol=1e-14, rtol=0)
    at_points = loop_eigenvalues(_nonnormal_loop(1.0), flamo.Points(z))
    torch.testing.assert_close(at_points.abs().sort(-1).values, lam.abs().sort(-1).values)


def test_loop_eigenvalues_are_differentiable_and_validate():
    loop = _scalar_loop(0.5, 3)
    gain = loop.forward_path[0]
    grid = flamo.Grid(16, dtype=torch.float64)
    total = loop_eigenvalues(loop, grid).abs().sum()
    (grad,) = torch.autograd.grad(total, gain.raw)
    assert float(grad) == pytest.approx(grid.M, rel=1e-12)  # d/da sum_k |a e^{-j w_k d}| = M
    with pytest.raises(TypeError, match="flamo.Recursion"):
        loop_eigenvalues(gain, grid)
