"""Perturbation runs, the accuracy statistic and surface configurations in JSON
(flamo.optim.surface), on systems whose minimum is known in closed form."""

import json

import numpy as np
import pytest
import torch

import flamo
from flamo.optim.surface import (CONFIG_FORMAT, Axis, Perturbation, SurfaceConfig,
                                 perturbation_runs)

GRID = flamo.Grid(nfft=64, dtype=torch.float64)


def _mse(p, t):
    return ((p - t).abs() ** 2).mean()


def _delay_gain():
    """Delay (swept) then gain (perturbed); the target is the delay of 5 samples, gain 1."""
    model = flamo.Series({"d": flamo.Delay([3.0], learnable=True, mapping=flamo.functional.identity),
                          "g": flamo.Gain([[1.0]])}).double()
    target = flamo.Delay([5.0]).double().response(GRID)
    return model, target


def test_runs_accuracy_one_where_the_minimum_cannot_move():
    # |g z^-d - z^-5|^2 averaged over the circle is g^2 + 1 - 2 g [d == 5] for integer d:
    # the minimum is at d = 5 for every g > 0, with the value (g - 1)^2
    model, target = _delay_gain()
    cfg = SurfaceConfig(Axis("d.raw[0]", np.arange(0.0, 11.0)), target=(5.0,),
                        perturbation=Perturbation("g.raw[0, 0]", 0.5, 2.0), n_runs=6, seed=3)
    res = perturbation_runs(model, lambda s: s.response(GRID), _mse, target, cfg)
    g = res.perturbation_values
    np.testing.assert_array_equal(g, np.random.default_rng(3).uniform(0.5, 2.0, 6))
    assert len(set(g.round(6))) == 6  # the runs really are perturbed
    assert res.accuracy == 1.0
    assert res.argmin_index().ravel().tolist() == [5] * 6
    for r, run in enumerate(res.runs):
        np.testing.assert_allclose(run.loss[5], (g[r] - 1) ** 2, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(run.loss[4], g[r] ** 2 + 1, rtol=1e-9)
    assert model.g.raw.item() == 1.0  # the system itself is not modified
    frame = res.to_frame()
    assert frame["hit"].all() and (frame["offset d.raw[0] [steps]"] == 0).all()


def test_runs_accuracy_below_one_where_a_perturbation_moves_the_minimum():
    # gain a (swept) times gain b (perturbed) against 1: |a b - 1|^2, minimum at a = 1/b
    model = flamo.Series({"a": flamo.Gain([[1.0]]), "b": flamo.Gain([[1.0]])}).double()
    target = torch.ones(GRID.M, 1, 1, dtype=torch.complex128)
    grid = np.round(np.linspace(0.5, 2.0, 31), 12)  # step 0.05; 1.0 is point 10
    base = dict(axes=Axis("a.raw[0, 0]", grid), target=(1.0,),
                perturbation=Perturbation("b.raw[0, 0]", 0.8, 1.25, log=True), n_runs=40, seed=7)
    res = perturbation_runs(model, lambda s: s.response(GRID), _mse, target, SurfaceConfig(**base))
    b = res.perturbation_values
    assert ((b >= 0.8) & (b <= 1.25)).all()
    # independent: the grid point nearest to 1/b (the loss is a parabola in a about 1/b)
    expected_idx = np.argmin(np.abs(grid[None, :] - 1 / b[:, None]), axis=1)
    np.testing.assert_array_equal(res.argmin_index()[:, 0], expected_idx)
    expected = np.mean(expected_idx == 10)
    assert 0 < expected < 1 and res.accuracy == expected
    # the tolerance in grid steps: within 2 steps, and within 31 (every run)
    for tol in (2, 31):
        res_t = perturbation_runs(model, lambda s: s.response(GRID), _mse, target,
                                  SurfaceConfig(**base, tolerance=tol))
        assert res_t.accuracy == np.mean(np.abs(expected_idx - 10) <= tol)
    assert res_t.accuracy == 1.0


def test_runs_two_axes_and_no_perturbation():
    model, target = _delay_gain()
    cfg = SurfaceConfig([Axis("d.raw[0]", np.arange(0.0, 9.0)), Axis("g.raw[0, 0]", np.linspace(0, 2, 5))],
                        target=(5.0, 1.0))
    res = perturbation_runs(model, lambda s: s.response(GRID), _mse, target, cfg)
    assert res.perturbation_values.size == 0 and res.runs[0].loss.shape == (9, 5)
    assert res.argmin_index().tolist() == [[5, 2]] and res.accuracy == 1.0


def test_axis_mapping_converts_physical_values():
    peak = flamo.Biquad("peak", 1000.0, q=2.0, gain_db=6.0).double()
    grid = flamo.Grid(nfft=256, fs=48000, dtype=torch.float64)
    target = peak.response(grid)
    values = np.geomspace(500, 2000, 21)  # 1000 Hz is point 10
    cfg = SurfaceConfig(Axis("raw_freq", values, mapping=peak.freq_mapping), target=(1000.0,))
    res = perturbation_runs(peak, lambda s: s.response(grid), _mse, target, cfg)
    assert res.runs[0].argmin() == (pytest.approx(1000.0),) and res.accuracy == 1.0


def test_config_json_round_trip(tmp_path):
    peak = flamo.Biquad("peak", 1000.0, q=2.0, gain_db=6.0)
    cfg = SurfaceConfig([Axis("raw_freq", np.geomspace(100, 1e4, 7), mapping=peak.freq_mapping,
                              label="f0 [Hz]"),
                         Axis("raw_gain", [-6.0, 0.1, 6.0], mapping=peak.gain_mapping)],
                        target=(1000.0, 0.1), perturbation=Perturbation("raw_q", 0.5, 8.0,
                                                                        mapping=peak.q_mapping, log=True),
                        n_runs=5, seed=11, tolerance=1, batch_size=9, name="complex MSE")
    path = cfg.save(tmp_path / "surface.json")
    assert not list(tmp_path.glob(".*tmp"))  # atomic write: no temporary left behind
    back = SurfaceConfig.load(path)
    assert back.to_config() == cfg.to_config()
    np.testing.assert_array_equal(back.axes[0].values, cfg.axes[0].values)  # exact floats
    np.testing.assert_array_equal(back.perturbation_values(), cfg.perturbation_values())
    x = torch.linspace(-3, 3, 5, dtype=torch.float64)
    assert torch.equal(back.axes[0].mapping(x), peak.freq_mapping(x))
    assert json.loads(path.read_text())["format"] == CONFIG_FORMAT


def _write(tmp_path, surface, fmt=CONFIG_FORMAT):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"format": fmt, "surface": surface}))
    return path


@pytest.mark.parametrize("change, error, match", [
    (lambda s: s.pop("axes"), ValueError, r"surface: missing key\(s\) \['axes'\]"),
    (lambda s: s.update(extra=1), ValueError, r"surface: unknown key\(s\) \['extra'\]"),
    (lambda s: s.update(axes=[]), ValueError, "surface.axes: must hold one or two axes"),
    (lambda s: s["axes"][0].update(path=3), TypeError, r"surface.axes\[0\].path: must be a non-empty string"),
    (lambda s: s["axes"][0].update(path="a-b"), ValueError, "path must look like"),
    (lambda s: s["axes"][0].update(values=[]), TypeError, r"surface.axes\[0\].values: must be a non-empty list"),
    (lambda s: s["axes"][0].update(values=[1.0, "x"]), TypeError, r"surface.axes\[0\].values\[1\]: must be a number"),
    (lambda s: s["axes"][0].update(mapping={"type": "os.system"}), ValueError, "unknown mapping 'os.system'"),
    (lambda s: s["axes"][0].update(mapping={"type": "Interval", "low": "0"}), TypeError, "must be a finite number"),
    (lambda s: s.update(n_runs=0), ValueError, r"surface.n_runs: must lie in \[1, None\]"),
    (lambda s: s.update(n_runs=True), TypeError, "surface.n_runs: must be an integer"),
    (lambda s: s.update(seed=-1), ValueError, "surface.seed"),
    (lambda s: s.update(tolerance=1.5), TypeError, "surface.tolerance: must be an integer"),
    (lambda s: s.update(target=[20.0]), ValueError, "target 20 lies outside axis"),
    (lambda s: s.update(target=[1.0, 2.0]), ValueError, "one finite value per axis"),
    (lambda s: s.update(perturbation=None), ValueError, "without a perturbation would repeat"),
    (lambda s: s["perturbation"].update(low=5.0), ValueError, "need low < high"),
    (lambda s: s["perturbation"].update(log="yes"), TypeError, "surface.perturbation.log: must be true or false"),
    (lambda s: s["perturbation"].update(path="d.raw"), ValueError, "overlaps a swept axis"),
    (lambda s: s.update(name=""), TypeError, "surface.name: must be a non-empty string"),
])
def test_config_json_fields_rejected(tmp_path, change, error, match):
    surface = {"axes": [{"path": "d.raw[0]", "values": [0.0, 1.0, 2.0], "mapping": None, "label": None}],
               "target": [1.0], "perturbation": {"path": "g.raw[0, 0]", "low": 0.5, "high": 2.0},
               "n_runs": 3, "seed": 0, "tolerance": 0}
    SurfaceConfig.load(_write(tmp_path, surface))  # the unchanged config loads
    change(surface)
    with pytest.raises(error, match=match):
        SurfaceConfig.load(_write(tmp_path, surface))


def test_config_json_files_rejected(tmp_path):
    path = tmp_path / "c.json"
    for text, match in (('{"format": "flamo-surface/1", "surface": {"axes": [{"path": "d.raw", '
                         '"values": [NaN]}]}}', "non-finite number NaN"),
                        ('{"format": "flamo-surface/1", "format": "x"}', "duplicate key 'format'"),
                        ("not json", "is not valid JSON"),
                        ('{"format": "flamo-preset/1", "surface": {}}', "not a surface configuration"),
                        ('{"format": "flamo-surface/1", "surface": {}, "code": "print(1)"}',
                         "exactly the keys 'format' and 'surface'")):
        path.write_text(text)
        with pytest.raises(ValueError, match=match):
            SurfaceConfig.load(path)


def test_config_checks_in_python():
    axis = Axis("d.raw[0]", [0.0, 1.0])
    with pytest.raises(ValueError, match="values must be a non-empty 1-D array of finite"):
        Axis("d.raw", [0.0, np.inf])
    with pytest.raises(TypeError, match="mapping must have an inverse"):
        Axis("d.raw", [0.0], mapping=lambda x: x)
    with pytest.raises(ValueError, match="log=True needs low > 0"):
        Perturbation("g.raw", 0.0, 1.0, log=True)
    with pytest.raises(ValueError, match="no target given"):
        SurfaceConfig(axis).target_index()
    model, target = _delay_gain()
    with pytest.raises(ValueError, match="no parameter 'x.raw'"):
        perturbation_runs(model, lambda s: s.response(GRID), _mse, target,
                          SurfaceConfig(axis, perturbation=Perturbation("x.raw", 0.5, 1.0), n_runs=2))
    with pytest.raises(ValueError, match="cannot be saved"):
        SurfaceConfig(Axis("d.raw", [0.0], mapping=_NoConfig())).save("/nonexistent/never.json")


class _NoConfig:
    def __call__(self, x):
        return x

    def inverse(self, y):
        return y
