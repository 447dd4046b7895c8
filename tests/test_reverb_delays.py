"""Tests of flamo.reverb.delays and of the T60 <-> gain conversions (flamo.functional.attenuation)."""

import itertools
import math

import numpy as np
import pytest
import torch

from flamo.reverb import (COLORLESS_FDN_DELAYS, coprime_delays, first_primes, gain_to_t60,
                          prime_power_delays, t60_to_gain)


def pairwise_coprime(values):
    return all(math.gcd(a, b) == 1 for a, b in itertools.combinations(values, 2))


@pytest.mark.parametrize("n, low, high", [(4, 1000, 3000), (6, 500, 2500), (16, 300, 5000),
                                          (8, 100, 140)])
def test_coprime_delays_are_coprime_in_range_and_spread(n, low, high):
    m = coprime_delays(n, low, high, seed=3)
    assert len(m) == n and m == sorted(m) and len(set(m)) == n
    assert all(isinstance(v, int) for v in m)
    assert min(m) >= low and max(m) <= high
    assert pairwise_coprime(m)
    # one length per equal bin of the range
    edges = np.linspace(low, high + 1, n + 1)
    assert [int(np.searchsorted(edges, v, side="right") - 1) for v in m] == list(range(n))


def test_coprime_delays_deterministic_by_seed():
    a = coprime_delays(6, 500, 3000, seed=7)
    assert a == coprime_delays(6, 500, 3000, seed=7)
    others = {tuple(coprime_delays(6, 500, 3000, seed=s)) for s in range(5)}
    assert len(others) > 1


def test_coprime_delays_tight_range_falls_back_to_exhaustive_search():
    # bins [3, 4], [5], [6]: 6 shares a factor with 3 and 4, so only a search finds [3, 4, 5]
    assert coprime_delays(3, 3, 6, seed=0) == [3, 4, 5]


@pytest.mark.parametrize("n, low, high, match", [
    (3, 4, 6, "no set of n=3 pairwise co-prime integers exists"),  # 4 and 6 share 2
    (5, 10, 12, "distinct lengths"),
    (0, 10, 100, "n must be an int >= 1"),
    (3, 0, 100, "low must be an int >= 1"),
    (3, 100, 50, "high must be an int >= 100"),
    (2.0, 10, 100, "n must be an int"),
])
def test_coprime_delays_errors(n, low, high, match):
    with pytest.raises(ValueError, match=match):
        coprime_delays(n, low, high, seed=0)


def test_first_primes():
    assert first_primes(8) == [2, 3, 5, 7, 11, 13, 17, 19]


def test_prime_power_delays_nearest_power_of_own_prime():
    targets = [500, 800, 1200, 1500, 2000, 2600]
    m = prime_power_delays(targets)
    primes = first_primes(len(targets))
    for v, p, t in zip(m, primes, targets):
        powers = [p ** k for k in range(1, 40) if p ** k < 10 * t]
        assert v == min(powers, key=lambda q: abs(q - t))
    assert pairwise_coprime(m)
    assert prime_power_delays([1000, 1000], primes=[31, 37]) == [961, 1369]


@pytest.mark.parametrize("targets, primes, match", [
    ([100, 200], [3, 3], "distinct primes"),
    ([100, 200], [3, 4], "distinct primes"),
    ([100, 200], [3], "one prime per target"),
    ([1, 200], None, "targets must be finite lengths >= 2"),
    ([], None, "non-empty"),
])
def test_prime_power_delays_errors(targets, primes, match):
    with pytest.raises(ValueError, match=match):
        prime_power_delays(targets, primes)


def test_colorless_fdn_delay_sets():
    sizes = {"N4": 4, "N6": 6, "N6b": 6, "N8": 8}
    assert set(COLORLESS_FDN_DELAYS) == set(sizes)
    for key, m in COLORLESS_FDN_DELAYS.items():
        assert len(m) == sizes[key] and pairwise_coprime(m)
    assert COLORLESS_FDN_DELAYS["N6"] == (887, 911, 941, 1699, 1951, 2053)


def test_t60_to_gain_decays_60_db_in_t60():
    m = torch.tensor([887.0, 1699.0, 2053.0], dtype=torch.float64)
    fs, t60 = 48000.0, 1.7
    g = t60_to_gain(m, t60, fs)
    # after fs * T60 samples a signal has passed each line fs T60 / m times
    level_db = 20 * torch.log10(g) * (fs * t60 / m)
    torch.testing.assert_close(level_db, torch.full_like(m, -60.0))
    torch.testing.assert_close(gain_to_t60(m, g, fs), torch.full_like(m, t60))
    per_band = t60_to_gain(m, torch.tensor([[0.5], [2.0]]), fs)  # bands x lines
    assert per_band.shape == (2, 3) and (per_band[0] < per_band[1]).all()


@pytest.mark.parametrize("call, match", [
    (lambda: t60_to_gain([100], 0.0, 48000), "t60 must be > 0"),
    (lambda: t60_to_gain([-1], 1.0, 48000), "delays must be >= 0"),
    (lambda: t60_to_gain([100], 1.0, 0), "fs must be > 0"),
    (lambda: gain_to_t60([100], 1.0, 48000), r"gain must lie in \(0, 1\)"),
])
def test_decay_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
