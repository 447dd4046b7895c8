"""Presets: every module and system survives config() -> JSON -> from_config with the same response."""

import json

import numpy as np
import pytest
import torch

import flamo
from flamo.functional import Sigmoid, Softplus
from conftest import random_stable_sos

GRID = flamo.Grid(nfft=128, alias_decay_db=10, dtype=torch.float64)


def _modules():
    sos_bank = np.stack([random_stable_sos(np.random.default_rng(i), 2) for i in range(3)])
    return {
        "gain": flamo.Gain(np.random.default_rng(0).normal(size=(2, 3))),
        "gain-sigmoid": flamo.Gain(torch.tensor([0.2, 0.9], dtype=torch.float64), mapping=Sigmoid(0, 1)),
        "delay": flamo.Delay([3.0, 11.5], learnable=True, mapping=Softplus()),
        "orthogonal": flamo.Matrix(3, seed=2).double(),
        "householder": flamo.Matrix(3, kind="householder", seed=2),
        "hadamard": flamo.Matrix(4, kind="hadamard"),
        "free": flamo.Matrix(3, kind="free", seed=2),
        "sos": flamo.SOS(sos_bank),
        "circulant": flamo.Matrix(5, kind="circulant", seed=1),
        "fir": flamo.FIR(np.random.default_rng(1).normal(size=7)),
        "fir-diagonal": flamo.FIR(np.random.default_rng(2).normal(size=(3, 5)), mapping=Softplus(-5)),
        "fir-full": flamo.FIR(np.random.default_rng(3).normal(size=(2, 3, 4))),
        "fractional-lagrange": flamo.FractionalDelay([3.2, 40.7], order=4),
        "fractional-thiran": flamo.FractionalDelay(torch.tensor([3.2, 40.7], dtype=torch.float64),
                                                   order=2, kind="thiran", learnable=False),
        "delay-matrix": flamo.DelayMatrix(np.array([[1.0, 2.5], [3.0, 4.0]]), np.array([[0.5, -0.8], [0.2, 0.9]]),
                                          learnable_delays=True, gain_mapping=Sigmoid(-1, 1)),
        "paraunitary": flamo.Paraunitary.velvet(3, stages=2, spread=20, seed=0).double(),
        # mapped physical values round-trip exactly only in float64 (float32: to rounding)
        "biquad": flamo.Biquad("peak", 1000.0, q=2.0, gain_db=-4.0, learnable=False).double(),
        "biquad-diag": flamo.Biquad("lowshelf1", [100.0, 300.0], gain_db=[3.0, -2.0]).double(),
        "svf": flamo.SVF([500.0, 2000.0], resonance=[0.3, 1.2], mix=[[1.0, 0.5, -0.2], [0.0, 1.0, 1.0]]).double(),
        "peq": flamo.PEQ([[80.0, 1000.0, 9000.0]] * 2, gain_db=[3.0, -5.0, 2.0], q=[0.7, 2.0, 0.7]).double(),
        "geq": flamo.GEQ(torch.linspace(-6, 6, 10)).double(),
        "geq-third": flamo.GEQ(torch.linspace(-3, 3, 56).reshape(2, 28), centres="third_octave").double(),
        "homogeneous": flamo.HomogeneousAttenuation([100.0, 200.0], [1.5, 2.0]).double(),
        "onepole": flamo.OnePoleAttenuation([100.0, 200.0], 2.0, 0.5).double(),
        "shelf": flamo.ShelfAttenuation([100.0, 200.0], 2.0, 0.5, crossover=[800.0, 1200.0]).double(),
        "geq-attenuation": flamo.GEQAttenuation([100.0, 200.0], torch.linspace(3.0, 0.5, 10)).double(),
        "fdn": flamo.Parallel(
            flamo.Series({"b": flamo.Gain(np.ones((3, 1))),
                          "loop": flamo.Recursion(flamo.Series(flamo.Delay([5.0, 7.0, 9.0]), flamo.SOS(sos_bank)),
                                                  flamo.Matrix(3, seed=0)),
                          "c": flamo.Gain(np.ones((1, 3)))}),
            flamo.Gain(np.array([[0.5]]))),
    }


@pytest.mark.parametrize("name", list(_modules()))
def test_roundtrip_through_json_file(name, tmp_path):
    module = _modules()[name]
    path = flamo.save_preset(module, tmp_path / "preset.json")
    json.loads(path.read_text())  # valid JSON
    rebuilt = flamo.load_preset(path)
    assert type(rebuilt) is type(module)
    assert [p.dtype for p in rebuilt.parameters()] == [p.dtype for p in module.parameters()]
    torch.testing.assert_close(rebuilt.response(GRID), module.response(GRID),
                               rtol=1e-12, atol=1e-12)
    assert [n for n, _ in rebuilt.named_parameters()] == [n for n, _ in module.named_parameters()]


def test_config_is_in_physical_units():
    cfg = flamo.Gain(torch.tensor([0.25]), mapping=Sigmoid(0, 1)).config()
    assert cfg["matrix"] == [0.25] and cfg["mapping"] == {"type": "Sigmoid", "low": 0.0, "high": 1.0}
    assert flamo.Delay([10.0]).config() == {"type": "Delay", "samples": [10.0], "dtype": "float32",
                                            "mapping": None, "learnable": False}


def test_bad_presets(tmp_path):
    with pytest.raises(ValueError, match="unknown module type 'Nope'"):
        flamo.from_config({"type": "Nope"})
    (tmp_path / "x.json").write_text('{"module": {}}')
    with pytest.raises(ValueError, match="not a flamo preset"):
        flamo.load_preset(tmp_path / "x.json")
    with pytest.raises(ValueError, match="no inverse"):
        flamo.Gain([1.0], mapping=torch.tanh).config()
