"""Presets: every module and system survives config() -> JSON -> from_config with the same response;
saving refuses what would not load; malformed presets raise ValueError/TypeError naming the field."""

import copy
import json
import resource

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flamo
from flamo.reverb import allpass_fdn, build_fdn
from flamo.functional import Interval, LowerBound
from flamo.modules.base import DSPModule
from conftest import random_stable_sos

GRID = flamo.Grid(nfft=128, alias_decay_db=10, dtype=torch.float64)


def _modules():
    sos_bank = np.stack([random_stable_sos(np.random.default_rng(i), 2) for i in range(3)])
    return {
        "gain": flamo.Gain(np.random.default_rng(0).normal(size=(2, 3))),
        "gain-sigmoid": flamo.Gain(torch.tensor([0.2, 0.9], dtype=torch.float64), mapping=Interval(0, 1)),
        "delay": flamo.Delay([3.0, 11.5], learnable=True, mapping=LowerBound()),
        "orthogonal": flamo.Matrix(3, seed=2).double(),
        "householder": flamo.Matrix(3, kind="householder", seed=2),
        "hadamard": flamo.Matrix(4, kind="hadamard"),
        "free": flamo.Matrix(3, kind="free", seed=2),
        "sos": flamo.SOS(sos_bank),
        "circulant": flamo.Matrix(5, kind="circulant", seed=1),
        "rotation": flamo.Matrix(5, kind="rotation", seed=1).double(),
        "fir": flamo.FIR(np.random.default_rng(1).normal(size=7)),
        "fir-diagonal": flamo.FIR(np.random.default_rng(2).normal(size=(3, 5)), mapping=LowerBound(-5)),
        "fir-full": flamo.FIR(np.random.default_rng(3).normal(size=(2, 3, 4))),
        "fractional-lagrange": flamo.FractionalDelay([3.2, 40.7], order=4),
        "fractional-thiran": flamo.FractionalDelay(torch.tensor([3.2, 40.7], dtype=torch.float64),
                                                   order=2, kind="thiran", learnable=False),
        "delay-matrix": flamo.DelayMatrix(np.array([[1.0, 2.5], [3.0, 4.0]]), np.array([[0.5, -0.8], [0.2, 0.9]]),
                                          learnable_delays=True, gain_mapping=Interval(-1, 1)),
        "paraunitary": flamo.Paraunitary([[0.0, 0.0, 0.0], [3.0, 9.0, 15.0], [1.0, 12.0, 4.0]], seed=0).double(),
        # mapped physical values round-trip exactly only in float64 (float32: to rounding)
        "velvet-filter": flamo.VelvetNoiseFilter.random(2, 0.01, 1000.0, 8000.0, seed=0).double(),
        "velvet-matrix": flamo.VelvetNoiseMatrix(4, stages=2, spread=30, seed=1, dtype=torch.float64),
        "filterbank": flamo.FilterBank([500.0, 1000.0, 2000.0], fraction=1, order=2),
        "allpass-fdn": allpass_fdn([3, 5], seed=0, dtype=torch.float64),
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
        "proportional-attenuation": flamo.ProportionalAttenuation([100.0, 200.0], torch.linspace(3.0, 0.5, 10)).double(),
        "fdn": build_fdn(delays=[5, 7, 9], attenuation=flamo.SOS(sos_bank), input_gains=1.0,
                         output_gains=1.0, direct_gain=0.5, seed=0),
    }


@pytest.mark.parametrize("name", list(_modules()))
def test_roundtrip_through_json_file(name, tmp_path):
    module = _modules()[name]
    path = flamo.save_preset(module, tmp_path / "preset.json")
    json.loads(path.read_text())  # valid JSON
    rebuilt = flamo.load_preset(path)
    assert type(rebuilt) is type(module)
    assert [p.dtype for p in rebuilt.parameters()] == [p.dtype for p in module.parameters()]
    # a float32 module's mapped values round-trip to its rounding (the stable SOS
    # parametrization's tanh/atanh), a float64 one's to 1e-12
    tol = 1e-6 if any(p.dtype == torch.float32 for p in module.parameters()) else 1e-12
    torch.testing.assert_close(rebuilt.response(GRID), module.response(GRID), rtol=tol, atol=tol)
    assert [n for n, _ in rebuilt.named_parameters()] == [n for n, _ in module.named_parameters()]


def test_config_is_in_physical_units():
    cfg = flamo.Gain(torch.tensor([0.25]), mapping=Interval(0, 1)).config()
    assert cfg["matrix"] == [0.25] and cfg["mapping"] == {"type": "Interval", "low": 0.0, "high": 1.0}
    assert flamo.Delay([10.0]).config() == {"type": "Delay", "delays": [10.0], "dtype": "float32",
                                            "mapping": None, "learnable": False}


def test_bad_presets(tmp_path):
    with pytest.raises(ValueError, match="unknown module type 'Nope'"):
        flamo.from_config({"type": "Nope"})
    (tmp_path / "x.json").write_text('{"module": {}}')
    with pytest.raises(ValueError, match="not a flamo preset"):
        flamo.load_preset(tmp_path / "x.json")
    with pytest.raises(ValueError, match="no inverse"):
        flamo.Gain([1.0], mapping=torch.tanh).config()


# -- every module kind, every field checked, malformed presets: only ValueError / TypeError ------


def _flamo_types():
    return {name for name, cls in DSPModule.registry.items() if cls.__module__.startswith("flamo.")}


def test_every_module_kind_has_a_roundtrip_case_and_declared_fields():
    cases = {}
    for module in _modules().values():
        for sub in module.modules():
            cases.setdefault(type(sub).__name__, sub)
    assert _flamo_types() <= set(cases), sorted(_flamo_types() - set(cases))
    for name, module in cases.items():
        cfg = module.config()
        assert set(cfg) == set(type(module).config_fields) | {"type", "dtype"} or \
            set(cfg) == set(type(module).config_fields) | {"type"}, name


def _loop_system():
    return flamo.Series({"in": flamo.Gain(np.ones((3, 1))), "mix": flamo.Gain(np.eye(3)),
                         "loop": flamo.Recursion(flamo.Delay([5.0, 7.0, 9.0]), flamo.Matrix(3, seed=0)),
                         "out": flamo.Gain(np.ones((1, 3)))})


def test_unstable_trained_sos_is_refused_at_save_with_the_reason(tmp_path):
    """Defect 3: a trained SOS whose poles left the circle was saved and then refused on load."""
    sos = flamo.SOS(np.array([[1.0, 0.0, 0.0, 1.0, -0.5, 0.25]]), stable=False)
    with torch.no_grad():  # what a training step can do to coefficients: poles at 1.5
        sos.raw[0, 3:] = torch.tensor([-3.0, 2.25])
    path = tmp_path / "p.json"
    with pytest.raises(ValueError, match=r"not written: the preset would not load back: .*unstable section, "
                                         r"max pole radius 1\.5 >= 1"):
        flamo.save_preset(flamo.Series(flamo.Gain([[1.0]]), sos), path)
    assert not path.exists()
    sos.check_stability = False  # the user says so: saved and loaded as it is
    rebuilt = flamo.load_preset(flamo.save_preset(sos, path))
    assert rebuilt.check_stability is False
    torch.testing.assert_close(rebuilt.response(GRID), sos.response(GRID))
    unchecked = flamo.SOS(np.array([[1.0, 0.0, 0.0, 1.0, -3.0, 2.25]]), check_stability=False, stable=False)
    assert flamo.load_preset(flamo.save_preset(unchecked, path)).config() == unchecked.config()


def _bad(cfg, error, match):
    with pytest.raises(error, match=match):
        flamo.from_config(cfg)


def test_field_errors_name_the_path():
    cfg = _loop_system().config()
    bad = copy.deepcopy(cfg)
    bad["parts"][2][1]["forward"]["delays"] = "abc"
    _bad(bad, TypeError, r"^parts\[2\]\.forward\.delays: must be a number or nested lists")
    bad = copy.deepcopy(cfg)
    bad["parts"][2][1]["feedback"]["init"][1] = [1.0, 2.0]
    _bad(bad, ValueError, r"^parts\[2\]\.feedback\.init\[1\]: ragged nested lists: shape \(2,\), but "
                          r"parts\[2\]\.feedback\.init\[0\] has shape \(3,\)")
    bad = copy.deepcopy(cfg)
    bad["parts"][2][1]["forward"]["delays"] = [5.0, -1.0, 9.0]
    _bad(bad, ValueError, r"^parts\[2\]\.forward: Delay: delays must be >= 0")
    bad = copy.deepcopy(cfg)
    bad["parts"][0][1]["learnable"] = "no"
    _bad(bad, TypeError, r"^parts\[0\]\.learnable: must be true or false, got 'no'")
    bad = copy.deepcopy(cfg)
    bad["parts"][2][1]["check"] = 1
    _bad(bad, TypeError, r"^parts\[2\]\.check: must be true or false, got 1")
    bad = copy.deepcopy(cfg)
    bad["parts"][3][1]["matrix"] = [[1.0, float("nan"), 1.0]]
    _bad(bad, ValueError, r"^parts\[3\]\.matrix\[0\]\[1\]: values must be finite")
    bad = copy.deepcopy(cfg)
    bad["parts"][1][1]["matrx"] = bad["parts"][1][1].pop("matrix")
    _bad(bad, ValueError, r"^parts\[1\]: unknown field\(s\) \['matrx'\] for Gain")
    _bad({"type": "Delay"}, ValueError, r"missing field\(s\) \['delays'\] for Delay")
    _bad({"type": "Gain", "matrix": [1.0], "mapping": {"type": "skew_expm"}}, ValueError,
         r"^mapping: mapping 'skew_expm' has no inverse")
    _bad({"type": "Gain", "matrix": [0.5], "mapping": {"type": "Interval", "low": "0"}}, TypeError,
         r"^mapping: mapping 'Interval': parameter 'low' must be a finite number")
    _bad({"type": "Biquad", "kind": "peak", "freq": 1000.0, "q_range": [0, "x"]}, TypeError, r"^q_range: must be")
    _bad({"type": "Series", "parts": [["a", {"type": "Gain", "matrix": [1.0]}], ["b", {"type": "Nope"}]]},
         ValueError, r"^parts\[1\]\.type: unknown module type 'Nope'")
    _bad({"type": "Series", "parts": [["a.b", {"type": "Gain", "matrix": [1.0]}]]}, ValueError,
         r"part names must be non-empty strings without '\.'")
    _bad({"type": "Series", "parts": [["forward", {"type": "Gain", "matrix": [1.0]}]]}, ValueError,
         r"not attributes of a system, got 'forward'")


def test_duplicate_part_names_are_rejected(tmp_path):
    gain = {"type": "Gain", "matrix": [[1.0]]}
    _bad({"type": "Parallel", "parts": [["a", gain], ["b", gain], ["a", gain]]}, ValueError,
         r"^parts\[2\]\[0\]: duplicate part name 'a' \(also parts\[0\]\[0\]\)")
    path = tmp_path / "dup.json"
    path.write_text('{"format": "flamo-preset/1", "module": {"type": "Gain", "matrix": [1.0], "matrix": [2.0]}}')
    with pytest.raises(ValueError, match=rf"{path} is not valid JSON: duplicate key 'matrix'"):
        flamo.load_preset(path)


@pytest.mark.parametrize("dtype", ["float16", "Tensor", "cuda", "int64", 32, None])
def test_unknown_dtypes_are_rejected(dtype):
    with pytest.raises((ValueError, TypeError), match=r"^dtype: must be one of \('float32', 'float64'\)"):
        flamo.from_config({"type": "Delay", "delays": [1.0], "dtype": dtype})


@pytest.mark.parametrize("cfg, match", [
    ({"type": "Matrix", "n": 10 ** 6}, "must give init"),  # would ask for a 4 TB random init
    ({"type": "Matrix", "n": 10 ** 6, "kind": "free"}, "must give init"),
    ({"type": "Matrix", "n": 10 ** 6, "kind": "orthogonal", "init": None}, "must give init"),
    ({"type": "Matrix", "n": 2 ** 20, "kind": "hadamard"}, "largest Hadamard order a config may ask for"),
    ({"type": "Matrix", "n": 10 ** 6, "kind": "free", "init": [[1.0]]}, r"init must have shape \(1000000, 1000000\)"),
    ({"type": "FractionalDelay", "delays": [3.0], "order": 10 ** 9}, r"^order: must lie in \[1, 256\]"),
    ({"type": "GEQ", "command_db": [0.0] * 300, "centres": list(range(1, 301))}, "at most 256 entries"),
    ({"type": "Paraunitary", "delays": [[0.0] * 4, [1.0] * 4]}, r"missing field\(s\) \['matrices'\]"),
])
def test_sizes_no_data_backs_are_rejected_before_allocation(cfg, match):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match=match):
        flamo.from_config(cfg)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing big


def test_deep_nesting_raises_value_error(tmp_path):
    cfg = {"type": "Gain", "matrix": [1.0]}
    for _ in range(100):
        cfg = {"type": "Series", "parts": [["s", cfg]]}
    _bad(cfg, ValueError, "nested deeper than 64 levels")
    path = tmp_path / "deep.json"
    path.write_text('{"format": "flamo-preset/1", "module": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match=rf"{path}"):
        flamo.load_preset(path)
    cyclic = {"type": "Series", "parts": []}
    cyclic["parts"].append(["self", cyclic])
    _bad(cyclic, ValueError, "nested deeper")
    _bad({"type": "FIR", "taps": [[[[[1.0]]]]]}, ValueError, r"^taps\[0\]\[0\]\[0\]: nested deeper than the field allows")


def test_non_finite_and_non_json_presets(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"format": "flamo-preset/1", "module": {"type": "Delay", "delays": [NaN]}}')
    with pytest.raises(ValueError, match="non-finite number NaN"):
        flamo.load_preset(path)
    path.write_bytes(b'{"format": "flamo-preset/1", "module": \xff}')
    with pytest.raises(ValueError, match="not valid JSON"):
        flamo.load_preset(path)
    path.write_text('{"format": "flamo-preset/1", "module": {"type": "Delay", "delays": [1.0]}, "x": 1}')
    with pytest.raises(ValueError, match="exactly the keys 'format' and 'module'"):
        flamo.load_preset(path)
    gain = flamo.Gain([1.0])
    with torch.no_grad():
        gain.raw[0] = float("nan")
    with pytest.raises(ValueError, match="non-finite parameter values"):
        flamo.save_preset(gain, path)


# Mutations of valid configs: whatever they become, from_config builds a module or raises
# ValueError / TypeError (never KeyError, IndexError, RecursionError, RuntimeError, ...).
_CONFIGS = {name: module.config() for name, module in _modules().items()}
_CONFIGS["loop-system"] = _loop_system().config()

_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-1000, 1000), st.sampled_from([0, -1, 2 ** 31, 10 ** 12, 2 ** 64]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.sampled_from(["float32", "float64", "Gain", "Series", "octave", "hadamard", "Interval", "type"]))
_json = st.recursive(_json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["type", "matrix", "parts", "x", "n"]),
                                                 inner, max_size=3)), max_leaves=12)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@st.composite
def _mutated(draw):
    cfg = copy.deepcopy(_CONFIGS[draw(st.sampled_from(sorted(_CONFIGS)))])
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(cfg))
        path = draw(st.sampled_from(paths))
        if not path:
            continue
        parent = cfg
        for key in path[:-1]:
            parent = parent[key]
        key, old = path[-1], parent[path[-1]]
        action = draw(st.sampled_from(["replace", "delete", "duplicate", "wrap", "negate", "add-key", "retype"]))
        if action == "replace":
            parent[key] = draw(_json)
        elif action == "delete":
            del parent[key]
        elif action == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(old))
        elif action == "wrap":
            parent[key] = [old]
        elif action == "negate" and isinstance(old, (int, float)) and not isinstance(old, bool):
            parent[key] = draw(st.sampled_from([-old, old * 1e300, old + 0.5, 0]))
        elif action == "add-key" and isinstance(old, dict):
            old[draw(st.sampled_from(["x", "dtype", "type", "mapping", "learnable"]))] = draw(_json)
        elif action == "retype" and isinstance(old, dict) and "type" in old:
            old["type"] = draw(st.sampled_from(sorted(_flamo_types())))
    return cfg


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_mutated_configs_raise_only_value_or_type_errors(cfg):
    try:
        module = flamo.from_config(cfg)
    except (ValueError, TypeError):
        return
    assert isinstance(module, DSPModule)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(_CONFIGS)), st.integers(0, 10 ** 6), st.integers(0, 255),
       st.booleans())
def test_damaged_preset_files_raise_only_value_or_type_errors(tmp_path_factory, name, where, byte, cut):
    text = json.dumps({"format": "flamo-preset/1", "module": _CONFIGS[name]}).encode()
    where %= len(text)
    data = text[:where] if cut else text[:where] + bytes([byte]) + text[where + 1:]
    path = tmp_path_factory.mktemp("damaged") / "p.json"
    path.write_bytes(data)
    try:
        flamo.load_preset(path)
    except (ValueError, TypeError):
        pass
