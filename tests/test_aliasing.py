"""flamo.aliasing: the closed forms against frequency sampling, the error model, bad input."""

import math

import numpy as np
import pytest
import torch

import flamo
from flamo import aliasing


def _one_pole_ir(pole, nfft, db):
    """float64 frequency-sampled IR of 1 / (1 - p z^-1) with the library."""
    sos = flamo.SOS(np.array([[1.0, 0.0, 0.0, 1.0, -pole, 0.0]]), learnable=False).double()
    grid = flamo.Grid(nfft, 48000, db, dtype=torch.float64)
    with torch.no_grad():
        return sos.impulse_response(grid)[:, 0, 0].numpy()


@pytest.mark.parametrize("pole", [0.9, -0.95, 0.999])
@pytest.mark.parametrize("db", [0.0, 20.0, 60.0])
def test_aliased_one_pole_matches_frequency_sampling(pole, db):
    nfft = 256
    got = _one_pole_ir(pole, nfft, db)
    want = aliasing.aliased_one_pole(pole, nfft, db)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-11 * 10 ** (db / 20) * np.abs(want).max())


def test_aliased_one_pole_is_the_wrapped_sum():
    # brute-force sum of gamma^(k nfft) p^(n + k nfft) over many wraps
    p, nfft, db = 0.97 * np.exp(0.3j), 64, 10.0
    gamma = 10 ** (-db / (20 * nfft))
    n = np.arange(nfft)
    brute = sum(gamma ** (k * nfft) * p ** (n + k * nfft) for k in range(200))
    np.testing.assert_allclose(aliasing.aliased_one_pole(p, nfft, db), brute, rtol=1e-12)


@pytest.mark.parametrize("db", [0.0, 30.0])
def test_aliasing_error_is_exact_for_one_pole(db):
    nfft, fs, t60 = 512, 48000.0, 0.02
    p = aliasing.decay_rate(t60, fs)
    h = p ** np.arange(nfft)
    measured = np.linalg.norm(_one_pole_ir(p, nfft, db) - h) / np.linalg.norm(h)
    assert measured == pytest.approx(aliasing.aliasing_error(nfft, t60, fs, db), rel=1e-6)


def test_aliasing_error_in_db_and_decay_rate():
    # 20 log10 q = -(db + 60 nfft / (fs T60)): for small q the error is about q
    nfft, t60, fs, db = 2**15, 9.0, 48000.0, 80.0
    expected_db = -(db + 60 * nfft / (fs * t60))
    assert 20 * math.log10(aliasing.aliasing_error(nfft, t60, fs, db)) == pytest.approx(expected_db, abs=1e-3)
    assert aliasing.decay_rate(1.0, 1000.0) ** 1000 == pytest.approx(1e-3)


@pytest.mark.parametrize("nfft, t60, db", [(64, 10.0, 0.0), (2**15, 9.0, 80.0), (512, 0.02, 30.0)])
def test_aliasing_error_db_is_the_linear_error_in_db(nfft, t60, db):
    # from q near 1 (a long T60 in a short window) to q ~ 1e-40
    linear = aliasing.aliasing_error(nfft, t60, 48000.0, db)
    assert aliasing.aliasing_error_db(nfft, t60, 48000.0, db) == pytest.approx(20 * math.log10(linear), rel=1e-12)


def test_aliasing_error_db_stays_finite_where_the_linear_error_underflows():
    # T60 0.05 s, nfft 2^18: 20 log10 q = -60 nfft / (fs T60) = -6553.6 dB, far below float64
    nfft, t60, fs = 2**18, 0.05, 48000.0
    assert aliasing.aliasing_error(nfft, t60, fs) == 0.0
    assert aliasing.aliasing_error_db(nfft, t60, fs) == pytest.approx(-60 * nfft / (fs * t60), rel=1e-12)
    db = np.array([0.0, 20.0])
    assert np.allclose(aliasing.aliasing_error_db(nfft, t60, fs, db), -60 * nfft / (fs * t60) - db, rtol=1e-12)


def test_rounding_error_grows_with_db_and_is_smaller_in_float64():
    db = np.array([0.0, 40.0, 80.0, 120.0])
    e32 = aliasing.rounding_error(2**15, 2.0, 48000, db, torch.float32)
    e64 = aliasing.rounding_error(2**15, 2.0, 48000, db, torch.float64)
    assert np.all(np.diff(e32) > 0)
    np.testing.assert_allclose(e32 / e64, torch.finfo(torch.float32).eps / torch.finfo(torch.float64).eps)
    # amplification: about 10^(db/20) over a slowly growing factor, never more
    assert np.all(e32[1:] / e32[0] < 10 ** (db[1:] / 20))


def test_recommendation_minimizes_the_prediction():
    for dtype in (torch.float32, torch.float64):
        rec = flamo.recommend_alias_decay_db(2**15, 9.0, 48000, dtype)
        grid = np.linspace(0, 400, 4001)
        pred = aliasing.predicted_error(2**15, 9.0, 48000, grid, dtype)
        assert aliasing.predicted_error(2**15, 9.0, 48000, rec, dtype) <= pred.min() * (1 + 1e-9)
    # float64 tolerates far more anti-aliasing than float32
    assert (flamo.recommend_alias_decay_db(2**15, 9.0, dtype=torch.float64)
            > flamo.recommend_alias_decay_db(2**15, 9.0, dtype=torch.float32) + 40)
    # a response that dies out within the window needs no anti-aliasing
    assert flamo.recommend_alias_decay_db(2**15, 0.01) == 0.0


@pytest.mark.parametrize("call, match", [
    (lambda: aliasing.aliasing_error(1, 1.0), "nfft"),
    (lambda: aliasing.aliasing_error(2.0, 1.0), "nfft"),
    (lambda: aliasing.aliasing_error(64, 0.0), "t60"),
    (lambda: aliasing.aliasing_error(64, float("inf")), "t60"),
    (lambda: aliasing.aliasing_error(64, 1.0, fs=-1), "fs"),
    (lambda: aliasing.aliasing_error(64, 1.0, 48000, -3.0), "alias_decay_db"),
    (lambda: aliasing.aliasing_error_db(64, 1.0, 48000, -3.0), "aliasing_error_db.*alias_decay_db"),
    (lambda: aliasing.rounding_error(64, 1.0, 48000, 10.0, constant=0), "constant"),
    (lambda: flamo.recommend_alias_decay_db(64, 1.0, max_db=0), "max_db"),
    (lambda: aliasing.aliased_one_pole(1.0, 64, 0.0), "pole"),
])
def test_bad_values_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_dtype_raises_type_error():
    with pytest.raises(TypeError, match="dtype"):
        flamo.recommend_alias_decay_db(2**15, 1.0, dtype=torch.float16)
