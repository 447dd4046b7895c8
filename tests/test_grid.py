import math

import numpy as np
import pytest
import torch

import flamo


@pytest.mark.parametrize("nfft", [2, 7, 1024])
@pytest.mark.parametrize("db", [0.0, 30.0])
def test_contract_quantities(nfft, db):
    g = flamo.Grid(nfft=nfft, fs=16000, alias_decay_db=db, dtype=torch.float64)
    assert g.M == nfft // 2 + 1
    assert g.gamma == pytest.approx(10 ** (-db / (20 * nfft)), rel=1e-15)
    k = np.arange(g.M)
    np.testing.assert_allclose(g.omega.numpy(), 2 * np.pi * k / nfft, rtol=0, atol=1e-14)
    np.testing.assert_allclose(g.z.numpy(), np.exp(2j * np.pi * k / nfft) / g.gamma, atol=1e-13)
    np.testing.assert_allclose(g.freqs.numpy(), k * 16000 / nfft, atol=1e-9)
    assert g.omega.shape == (g.M,) and g.z.shape == (g.M,)
    # the amplitude of each wrap: gamma ** nfft = 10 ** (-db / 20)
    assert g.gamma ** nfft == pytest.approx(10 ** (-db / 20), rel=1e-12)


def test_default_dtypes_and_float32_rounding():
    g = flamo.Grid(nfft=2**15)
    assert g.omega.dtype == torch.float32 and g.z.dtype == torch.complex64
    g64 = g.replace(dtype=torch.float64)
    assert g64.z.dtype == torch.complex128
    # float32 values are the correctly rounded float64 values
    assert torch.equal(g.z, g64.z.to(torch.complex64))


def _count_calls(points):
    _count_calls.calls += 1
    return torch.ones(3, dtype=torch.float64)


def test_cached_tensors_are_per_device_computed_once_and_constant():
    g = flamo.Grid(nfft=64, alias_decay_db=10)
    assert g.z is g.z
    _count_calls.calls = 0
    assert g.cached(_count_calls) is g.cached(_count_calls, "cpu")
    assert _count_calls.calls == 1
    assert not g.z.requires_grad


def test_envelopes_are_inverse():
    """The gamma^n weighting of rfft and the gamma^-n of irfft undo each other."""
    g = flamo.Grid(nfft=256, alias_decay_db=60, dtype=torch.float64)
    x = torch.ones(256, 1, dtype=torch.float64)
    np.testing.assert_allclose(flamo.signal.irfft(flamo.signal.rfft(x, g), g).numpy(), 1.0, rtol=1e-12)
    weighted = torch.fft.irfft(flamo.signal.rfft(x, g), n=256, dim=-2)[:, 0]
    assert weighted[-1].item() == pytest.approx(10 ** (-60 / 20 * 255 / 256), rel=1e-10)


@pytest.mark.parametrize("kwargs, exc", [
    (dict(nfft=1), ValueError), (dict(nfft=0), ValueError), (dict(nfft=2.0), TypeError),
    (dict(nfft=True), TypeError), (dict(nfft=8, fs=0), ValueError), (dict(nfft=8, fs=-1), ValueError),
    (dict(nfft=8, fs=math.inf), ValueError), (dict(nfft=8, alias_decay_db=-1), ValueError),
    (dict(nfft=8, alias_decay_db=math.nan), ValueError), (dict(nfft=8, dtype=torch.float16), TypeError),
])
def test_bad_grid_arguments(kwargs, exc):
    with pytest.raises(exc, match="Grid"):
        flamo.Grid(**kwargs)


def test_equality_and_pickle():
    import pickle
    g = flamo.Grid(nfft=128, alias_decay_db=3)
    _ = g.z
    g2 = pickle.loads(pickle.dumps(g))
    assert g2 == g and hash(g2) == hash(g)
    assert g != g.replace(nfft=256)
