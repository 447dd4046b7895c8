"""Every consumer of an FDN accepts every attenuation the builder makes, or says clearly why not.

One FDN per attenuation kind (built by flamo.reverb.build_fdn, float64) and, for each, the
consumers: the time-domain renderer (baselines.render) against frequency sampling on a grid
long enough that the IR has decayed below 1e-10 (no time aliasing), the modal decomposition
against the time-domain IR, a preset round trip read back by fdn_structure, and the
per-line outputs of the colorless objective.
"""

import numpy as np
import pytest
import torch

import flamo
from baselines import render
from flamo.reverb import build_fdn, fdn_structure, line_outputs, modal_decomposition

FS = 8000.0
DELAYS = [23, 29, 31, 37]
CENTRES = [125.0, 250.0, 500.0, 1000.0, 2000.0]
NFFT = 2**13
LENGTH = 3000  # rendered samples: the slowest decay below reaches -200 dB by then
f64 = torch.float64


def _decay(extra=1.0):
    """Per-line gains 0.99^m * extra: T60 = 86 ms at 8 kHz, times a broadband loss."""
    return flamo.Gain(extra * 0.99 ** np.array(DELAYS, dtype=float))


#: attenuation kind -> (builder keyword arguments, frequency-dependent?)
KINDS = {
    "lossless-default": (dict(), False),  # unit gains: rendered only over a short window
    "line_gains": (dict(line_gains=0.98 ** np.array(DELAYS, dtype=float)), False),
    "line_gains-learnable": (dict(line_gains=[0.8, 0.7, 0.75, 0.6], learnable_attenuation=True), False),
    "t60": (dict(t60=0.08), False),
    "t60-per-line-learnable": (dict(t60=[0.08, 0.06, 0.1, 0.05], learnable_attenuation=True), False),
    "sos": (dict(attenuation=lambda c: flamo.Series(
        _decay(0.9), flamo.SOS(np.tile([1.0, 0.3, 0.0, 1.0, -0.5, 0.2], (4, 2, 1)) / [2.5, 2.5, 2.5, 1, 1, 1]))),
        True),
    "biquad": (dict(attenuation=lambda c: flamo.Series(
        _decay(0.9), flamo.Biquad("lowpass", [1500.0, 2000.0, 2500.0, 3000.0], q=0.5))), True),
    "svf": (dict(attenuation=lambda c: flamo.Series(
        _decay(0.9), flamo.SVF([1500.0, 2000.0, 2500.0, 3000.0], resonance=1.0))), True),
    "peq": (dict(attenuation=lambda c: flamo.Series(
        _decay(0.95), flamo.PEQ([[100.0, 1000.0, 3000.0]] * 4, gain_db=[-1.0, -3.0, -2.0]))), True),
    "geq": (dict(attenuation=lambda c: flamo.Series(
        _decay(0.9), flamo.GEQ(-3.0 * torch.ones(4, 5), centres=CENTRES))), True),
    "onepole": (dict(attenuation=lambda c: flamo.OnePoleAttenuation(c.delays, 0.1, 0.03)), True),
    "shelf": (dict(attenuation=lambda c: flamo.ShelfAttenuation(c.delays, 0.1, 0.03, crossover=1000.0)), True),
    "geq_attenuation": (dict(attenuation=lambda c: flamo.GEQAttenuation(
        c.delays, [0.1, 0.08, 0.06, 0.05, 0.03], centres=CENTRES)), True),
}

#: tone module -> frequency-dependent?
TONES = {
    "none": (None, False),
    "gain": (lambda c: flamo.Gain([[0.5]]), False),
    "geq": (lambda c: flamo.GEQ([2.0, -1.0, 0.0, 3.0, -2.0], centres=CENTRES), True),
}


#: (kind, tone) pairs: every kind without tone, and every tone on the rir_fit layout
#: (GEQAttenuation) and on a frequency-independent loop
CASES = ([(kind, "none") for kind in KINDS]
         + [(kind, tone) for kind in ("geq_attenuation", "t60") for tone in TONES if tone != "none"])


def _fdn(kind, tone="none"):
    kwargs, _ = KINDS[kind]
    return build_fdn(delays=DELAYS, seed=3, direct_gain=0.4, tone=TONES[tone][0],
                     dtype=f64, **kwargs)


def _frequency_sampled(system, length):
    grid = flamo.Grid(NFFT, fs=FS, dtype=f64)
    with torch.no_grad():
        h = system.impulse_response(grid)[:, 0, 0]
    assert h[length:].abs().max() < 1e-10 * h.abs().max()  # decayed: no time aliasing
    return h[:length]


@pytest.mark.parametrize("kind, tone", [c for c in CASES if c[0] != "lossless-default"])
def test_render_matches_frequency_sampling(kind, tone):
    system = _fdn(kind, tone)
    with torch.no_grad():
        h = render(system, LENGTH, fs=FS)
    ref = _frequency_sampled(system, LENGTH)
    torch.testing.assert_close(h, ref, rtol=0, atol=1e-9 * ref.abs().max().item())


def test_render_lossless_loop_against_the_block_baseline():
    """Unit gains (no attenuation given): frequency sampling needs alias_decay_db there, so
    the reference is the plain-tensor block FDN on the same values."""
    from baselines import fdn_impulse_response

    system = _fdn("lossless-default")
    p = fdn_structure(system)
    assert p.gains.tolist() == [1.0] * 4 and p.sections is None
    with torch.no_grad():
        ref = fdn_impulse_response(500, DELAYS, p.A, p.b[:, 0], p.c[0], float(p.d), g=None)
        torch.testing.assert_close(render(system, 500, fs=FS), ref, rtol=0, atol=1e-14)


@pytest.mark.parametrize("kind, tone", CASES)
def test_modal_decomposition_or_a_clear_error(kind, tone):
    """Per-line gains: the closed form (sum(m) poles); filters in the loop: loop_modes; a
    filter outside the loop (a GEQ tone) is refused."""
    system = _fdn(kind, tone)
    if TONES[tone][1]:
        with pytest.raises(ValueError, match="outside the loop must be static gains.*GEQ 'fdn.tone'"):
            modal_decomposition(system, fs=FS)
        return
    modes = modal_decomposition(system, fs=FS)
    assert modes.converged and (modes.poles.size == sum(DELAYS) or KINDS[kind][1])
    with torch.no_grad():
        h = render(system, 800, fs=FS).numpy()
    np.testing.assert_allclose(modes.impulse_response(800), h, atol=1e-10 * np.abs(h).max())


@pytest.mark.parametrize("kind", list(KINDS))
def test_preset_round_trip_is_read_back_the_same(kind, tmp_path):
    system = _fdn(kind, "geq")
    rebuilt = flamo.load_preset(flamo.save_preset(system, tmp_path / "fdn.json"))
    a, b = fdn_structure(system, fs=FS), fdn_structure(rebuilt, fs=FS)
    assert torch.equal(a.m, b.m)
    with torch.no_grad():
        for name in ("A", "b", "c", "d", "gains", "sections", "tone_sections"):
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None) == (y is None), name
            if x is not None:
                torch.testing.assert_close(y, x, rtol=1e-12, atol=1e-14, msg=name)


@pytest.mark.parametrize("kind", list(KINDS))
def test_line_outputs_sum_to_the_response(kind):
    system = build_fdn(delays=DELAYS, seed=3, dtype=f64, **KINDS[kind][0])
    grid = flamo.Grid(1024, fs=FS, alias_decay_db=20, dtype=f64)
    with torch.no_grad():
        torch.testing.assert_close(line_outputs(system, grid).sum(-1),
                                   system.response(grid)[:, 0, 0])


def test_what_no_consumer_can_read_is_refused_by_name():
    taps = [[0.5, 0.2, 0.1], [0.4, 0.3, 0.05], [0.6, 0.1, 0.1], [0.3, 0.3, 0.2]]
    fir = build_fdn(delays=DELAYS, seed=0, attenuation=flamo.FIR(taps), dtype=f64)
    with pytest.raises(ValueError, match="attenuation FIR has no gain or second-order-section form"):
        render(fir, 10)
    modes = modal_decomposition(fir)  # a rational loop: loop_modes (its poles > 0.25 in magnitude)
    z = np.exp(1j * np.linspace(0.1, 3.0, 5))
    truth = fir.probe(torch.as_tensor(z)).detach().numpy()[:, 0, 0]
    assert modes.converged and np.abs(modes.transfer(z) - truth).max() < 1e-6 * np.abs(truth).max()
    grid = flamo.Grid(256, alias_decay_db=20)
    assert line_outputs(fir, grid).shape == (grid.M, 4)  # frequency sampling still works
    paraunitary = build_fdn(delays=DELAYS, seed=0, matrix=flamo.VelvetNoiseMatrix(4, stages=1, spread=5, seed=0,
                                                                            orthogonal="random", learnable=True),
                            line_gains=[0.9] * 4)
    with pytest.raises(ValueError, match="feedback path must be a flamo.Gain or flamo.Matrix"):
        render(paraunitary, 10)
    stereo = build_fdn(delays=DELAYS, seed=0, t60=0.5, n_outputs=2)
    with pytest.raises(ValueError, match="one input and one output"):
        render(stereo, 10, fs=FS)
    with pytest.raises(ValueError, match="one input and one output"):
        modal_decomposition(stereo, fs=FS)
