"""Tests of flamo.reverb.fdn: the FDN builder, its parts (read by fdn_structure), and energy
normalization."""

import numpy as np
import pytest
import scipy.signal
import torch
from scipy.stats import ortho_group

import flamo
from baselines import fdn_impulse_response
from conftest import fdn_simulate, random_stable_sos
from flamo.reverb import FDNConfig, build_fdn, fdn_structure, normalize_energy, t60_to_gain

DELAYS = [23, 29, 31, 37]


def test_parts_names_and_shapes():
    fdn = build_fdn(delays=DELAYS, t60=0.5, seed=0, direct_gain=0.2, n_outputs=2)
    assert isinstance(fdn, flamo.Parallel) and fdn.shape == (2, 1)
    core = fdn["fdn"]
    assert [name for name, _ in core.named_parts()] == ["input", "loop", "output"]
    assert core["input"].shape == (4, 1) and core["output"].shape == (2, 4)
    assert fdn["direct"].shape == (2, 1)
    loop = core["loop"]
    assert isinstance(loop, flamo.Recursion)
    assert loop.forward_path["delays"].delays.tolist() == DELAYS
    assert isinstance(loop.feedback_path, flamo.Matrix) and loop.feedback_path.kind == "orthogonal"
    attenuation = loop.forward_path["attenuation"]
    assert isinstance(attenuation, flamo.HomogeneousAttenuation)
    torch.testing.assert_close(attenuation.gains_at(1000), t60_to_gain(torch.tensor(DELAYS, dtype=torch.float64), 0.5, 1000), rtol=1e-7, atol=0)
    parts = fdn_structure(fdn)
    assert parts.feedback is loop.feedback_path and parts.tone is None
    assert parts.attenuation is attenuation and parts.direct is fdn["direct"]
    # no direct path: the Series core alone
    series = build_fdn(delays=DELAYS, seed=0)
    assert isinstance(series, flamo.Series) and fdn_structure(series).direct is None
    assert series.response(flamo.Grid(64, alias_decay_db=20)).dtype == torch.complex64


def test_impulse_response_matches_time_domain_simulation():
    fdn = build_fdn(delays=DELAYS, t60=0.4, seed=1, direct_gain=0.3, dtype=torch.float64)
    grid = flamo.Grid(2048, fs=1000, dtype=torch.float64)  # decays by > 300 dB in the window
    h = fdn.impulse_response(grid)[:, 0, 0].detach().numpy()
    p = fdn_structure(fdn, fs=1000)
    A, g = p.A.detach().numpy(), p.gains.numpy()
    x = np.zeros(600)
    x[0] = 1
    ref = fdn_simulate(x, p.m.numpy(), A, p.b.detach().numpy()[:, 0], p.c.detach().numpy()[0],
                       float(p.d.detach()), g)
    np.testing.assert_allclose(h[:600], ref, atol=1e-12)
    # the tensors describe the built system: orthogonal A, float64 gains from T60
    np.testing.assert_allclose(A @ A.T, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(g, 10 ** (-3 * np.array(DELAYS) / (1000 * 0.4)), rtol=1e-14)


def test_float64_values_are_kept_exactly():
    """Python lists and floats are read in float64, not rounded through the float32 default."""
    gains = [0.1, 0.3, 0.7, 0.9]
    fdn = fdn_structure(build_fdn(delays=DELAYS, line_gains=gains, input_gains=[0.1] * 4,
                                  output_gains=0.3, direct_gain=0.7, seed=0, dtype=torch.float64))
    assert fdn.gains.tolist() == gains
    assert fdn.b[:, 0].tolist() == [0.1] * 4 and fdn.c[0].tolist() == [0.3] * 4
    assert float(fdn.d.detach()) == 0.7


def test_attenuation_factory_and_tone_match_baseline_with_filters():
    rng = np.random.default_rng(4)
    sos_lines = np.stack([random_stable_sos(rng, 1, max_radius=0.5) for _ in DELAYS])
    for line in sos_lines:  # peak gain 0.5 per line: the loop decays fast, no time aliasing
        line[0, :3] *= 0.5 / np.abs(scipy.signal.sosfreqz(line, worN=4096)[1]).max()
    tone_sos = random_stable_sos(rng, 2)
    A = ortho_group.rvs(4, random_state=2)
    b, c = rng.normal(size=4), rng.normal(size=4)
    seen = []

    def attenuation(config):
        seen.append(config)
        return flamo.SOS(torch.tensor(sos_lines))

    fdn = build_fdn(delays=DELAYS, matrix="free", matrix_init=A, input_gains=b, output_gains=c,
                    attenuation=attenuation, tone=flamo.SOS(torch.tensor(tone_sos)),
                    dtype=torch.float64)
    assert seen and list(seen[0].delays) == DELAYS
    assert [n for n, _ in fdn.named_parts()] == ["input", "loop", "output", "tone"]
    grid = flamo.Grid(4096, dtype=torch.float64)
    h = fdn.impulse_response(grid)[:, 0, 0].detach()
    ref = fdn_impulse_response(800, DELAYS, torch.tensor(A), b, c, 0.0, sos=torch.tensor(sos_lines))
    ref = scipy.signal.sosfilt(tone_sos, ref.numpy())
    np.testing.assert_allclose(h[:800].numpy(), ref, atol=1e-10)


def test_config_kwargs_override_and_seed_determinism():
    cfg = FDNConfig(delays=DELAYS, seed=5, matrix="householder")
    a, b = build_fdn(cfg), build_fdn(cfg, seed=5)
    for (na, ta), (nb, tb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(ta, tb)
    c = build_fdn(cfg, seed=6)
    assert not torch.equal(fdn_structure(a).b, fdn_structure(c).b)
    assert fdn_structure(build_fdn(cfg, matrix="hadamard")).feedback.kind == "hadamard"


def test_learnable_flags_and_attenuation_mapping():
    fdn = build_fdn(delays=DELAYS, line_gains=[0.9, 0.8, 0.7, 0.6], seed=0,
                    learnable_attenuation=True, learnable_gains=False, direct_gain=0.0,
                    learnable_direct=False)
    names = {n for n, _ in fdn.named_parameters()}
    assert names == {"fdn.loop.forward_path.attenuation.raw", "fdn.loop.feedback_path.raw"}
    att = fdn_structure(fdn).attenuation
    torch.testing.assert_close(att.gains, torch.tensor([0.9, 0.8, 0.7, 0.6]))
    with torch.no_grad():  # any raw value maps into (0, 1)
        att.raw.fill_(50.0)
    assert (att.gains <= 1).all()
    # from t60: a learnable T60 per line (HomogeneousAttenuation), gains < 1 for any raw value
    fdn = build_fdn(delays=DELAYS, t60=[1.0, 0.5, 0.3, 2.0], seed=0,
                    learnable_attenuation=True, dtype=torch.float64)
    att = fdn_structure(fdn).attenuation
    assert isinstance(att.raw_t60, torch.nn.Parameter)
    torch.testing.assert_close(att.gains_at(1000), t60_to_gain(torch.tensor(DELAYS, dtype=torch.float64), torch.tensor([1.0, 0.5, 0.3, 2.0],
                                                                                dtype=torch.float64), 1000))
    with torch.no_grad():
        att.raw_t60.fill_(50.0)
    assert (att.gains_at(1000) < 1).all()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(t60=1.0, line_gains=[0.9] * 4), ValueError, "at most one of"),
    (dict(delays=[0, 5]), ValueError, "delays must be integers >= 1"),
    (dict(delays=[3.5, 5]), ValueError, "delays must be integers >= 1"),
    (dict(input_gains=np.ones(3)), ValueError, r"input_gains must have shape \(4, any\)"),
    (dict(output_gains=np.ones((1, 5))), ValueError, r"output_gains must have shape \(any, 4\)"),
    (dict(line_gains=[0.9] * 3), ValueError, r"line_gains must have shape \(4,\)"),
    (dict(t60=[1.0] * 3), ValueError, r"t60 must be one number of seconds or one per line"),
    (dict(t60=0.0), ValueError, r"t60 must lie in"),
    (dict(line_gains=["a"] * 4), TypeError, r"line_gains must be real array-like"),
    (dict(attenuation=flamo.Gain([0.5] * 3)), ValueError, r"attenuation must have shape \(4, 4\)"),
    (dict(attenuation="lowpass"), TypeError, "attenuation must be a flamo module"),
    (dict(direct_gain=[[1.0, 2.0]]), ValueError, r"direct_gain must have shape \(1, 1\)"),
    (dict(dtype=torch.float16), TypeError, "dtype must be"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        build_fdn(**{"delays": DELAYS, "seed": 0, **kwargs})


def test_normalize_energy_on_grid():
    fdn = build_fdn(delays=DELAYS, t60=0.3, seed=3, direct_gain=0.7, dtype=torch.float64)
    grid = flamo.Grid(1024, fs=1000, dtype=torch.float64)
    core_ir = fdn_structure(fdn).core.impulse_response(grid).detach()
    before = normalize_energy(fdn, grid, target=2.0)
    np.testing.assert_allclose(before, float(core_ir.square().sum()), rtol=1e-10)
    after = fdn_structure(fdn).core.impulse_response(grid).detach()
    np.testing.assert_allclose(float(after.square().sum()), 2.0, rtol=1e-10)
    torch.testing.assert_close(after, core_ir * (2.0 / before) ** 0.5)  # shape unchanged
    assert fdn["direct"].gains.item() == pytest.approx(0.7)  # the direct path is untouched
    with pytest.raises(ValueError, match="target must be > 0"):
        normalize_energy(fdn, grid, target=0)


def test_built_fdn_round_trips_through_presets():
    fdn = build_fdn(delays=DELAYS, t60=0.5, seed=0, direct_gain=0.2,
                    learnable_attenuation=True)
    rebuilt = flamo.from_config(fdn.config())
    grid = flamo.Grid(256, fs=1000, alias_decay_db=10)
    torch.testing.assert_close(rebuilt.response(grid), fdn.response(grid))
    assert fdn_structure(rebuilt).delays.delays.tolist() == DELAYS
