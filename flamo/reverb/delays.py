"""Delay-length sets for feedback delay networks.

Mutually prime delay lengths keep the modes of the delay lines from piling up on common
frequencies, which is why FDN designs use co-prime or prime-power lengths (Jot & Chaigne,
"Digital delay networks for designing artificial reverberators", AES 90th Conv., 1991;
Schlecht & Habets, "Feedback delay networks: echo density and mixing time", IEEE/ACM
TASLP 25(2), 2017).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..functional.matrices import is_prime

__all__ = ["COLORLESS_FDN_DELAYS", "coprime_delays", "prime_power_delays", "first_primes"]

#: Delay sets (samples at 48 kHz) published with the colorless-FDN paper: Dal Santo, Prawda,
#: Schlecht, Valimaki, "Differentiable feedback delay network for colorless reverberation",
#: DAFx 2023 (and arXiv 2402.11216). Keys name the size; "N6b" is the second N = 6 set.
COLORLESS_FDN_DELAYS = {
    "N4": (1499, 1889, 2381, 2999),
    "N6": (887, 911, 941, 1699, 1951, 2053),
    "N6b": (997, 1153, 1327, 1559, 1801, 2099),
    "N8": (809, 877, 937, 1049, 1151, 1249, 1373, 1499),
}

# Above this many candidates an exhaustive search is not attempted.
_EXHAUSTIVE_LIMIT = 64


def _check_int(value, name, owner, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _pick_in_bin(candidates, chosen, rng):
    """A candidate co-prime with every chosen length, nearest a random point of the bin."""
    target = rng.uniform(candidates[0], candidates[-1])
    for v in sorted(candidates, key=lambda v: (abs(v - target), v)):
        if all(math.gcd(v, u) == 1 for u in chosen):
            return v
    return None


def _exhaustive(values, n):
    """n pairwise co-prime values (depth-first search) or None when none exist."""
    def search(start, chosen):
        if len(chosen) == n:
            return list(chosen)
        for i in range(start, len(values)):
            v = values[i]
            if len(values) - i < n - len(chosen):
                return None
            if all(math.gcd(v, u) == 1 for u in chosen):
                found = search(i + 1, chosen + [v])
                if found:
                    return found
        return None
    return search(0, [])


def coprime_delays(n, low, high, seed=None, attempts=20) -> list:
    """n pairwise co-prime integer delay lengths spread over [low, high].

    The range is split into n equal bins and one length is drawn in each bin, nearest a
    random point of the bin among the candidates co-prime with those already chosen, so the
    set covers the range evenly. If a bin has no usable candidate the draw is repeated
    (``attempts`` times, with fresh random points); for small ranges an exhaustive search
    then decides whether a set exists at all.

    Parameters
    ----------
    n : int
        Number of delay lines, >= 1.
    low, high : int
        Inclusive range of lengths in samples, 1 <= low <= high.
    seed : int, optional
        Seed of the random draw; the same seed gives the same set.
    attempts : int, default 20
        Randomized attempts before giving up.

    Returns
    -------
    list of int
        n lengths in increasing order, pairwise co-prime (gcd = 1 for every pair).

    Raises
    ------
    ValueError
        For bad arguments, or when no set was found (the message says whether none exists).
    """
    owner = "coprime_delays"
    n = _check_int(n, "n", owner, 1)
    low = _check_int(low, "low", owner, 1)
    high = _check_int(high, "high", owner, low)
    attempts = _check_int(attempts, "attempts", owner, 1)
    size = high - low + 1
    if n > size:
        raise ValueError(f"{owner}: cannot choose n={n} distinct lengths in [{low}, {high}] "
                         f"({size} integers)")
    rng = np.random.default_rng(seed)
    edges = np.linspace(low, high + 1, n + 1)
    bins = [list(range(math.ceil(a), math.ceil(b))) for a, b in zip(edges[:-1], edges[1:])]
    for _ in range(attempts):
        chosen = []
        for candidates in bins:
            v = _pick_in_bin(candidates, chosen, rng) if candidates else None
            if v is None:
                break
            chosen.append(v)
        if len(chosen) == n:
            return sorted(chosen)
    if size <= _EXHAUSTIVE_LIMIT:
        found = _exhaustive(list(range(low, high + 1)), n)
        if found is None:
            raise ValueError(f"{owner}: no set of n={n} pairwise co-prime integers exists in "
                             f"[{low}, {high}]")
        return found
    raise ValueError(f"{owner}: found no set of n={n} pairwise co-prime lengths spread over "
                     f"[{low}, {high}] in {attempts} attempts; widen the range or lower n")


def first_primes(n) -> list:
    """The first n prime numbers, [2, 3, 5, ...]."""
    n = _check_int(n, "n", "first_primes", 0)
    primes, q = [], 2
    while len(primes) < n:
        if is_prime(q):
            primes.append(q)
        q += 1
    return primes


def prime_power_delays(targets, primes=None) -> list:
    """Prime-power delay lengths p_i^k_i nearest the target lengths.

    Line i gets its own prime p_i raised to the integer power k_i >= 1 for which p_i^k_i is
    nearest (in samples) to ``targets[i]``; distinct primes make the lengths pairwise
    co-prime by construction (a common FDN design, e.g. Smith, "Physical Audio Signal
    Processing", online book, section on FDN delay lengths). Small primes reach only a few
    lengths (2^k), so the result can lie far from a target: check it.

    Parameters
    ----------
    targets : sequence of float
        (N,) desired lengths in samples, each >= 2.
    primes : sequence of int, optional
        (N,) distinct primes, one per line; default the first N primes.

    Returns
    -------
    list of int
        (N,) lengths in the order of ``targets``.
    """
    owner = "prime_power_delays"
    t = np.asarray(targets, dtype=float)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"{owner}: targets must be a non-empty 1-D sequence, got shape {t.shape}")
    if not np.all(np.isfinite(t)) or np.any(t < 2):
        raise ValueError(f"{owner}: targets must be finite lengths >= 2 samples, got {t.tolist()}")
    if primes is None:
        primes = first_primes(t.size)
    primes = [int(p) for p in primes]
    if len(primes) != t.size:
        raise ValueError(f"{owner}: need one prime per target ({t.size}), got {len(primes)}")
    if len(set(primes)) != len(primes) or not all(is_prime(p) for p in primes):
        raise ValueError(f"{owner}: primes must be distinct primes, got {primes}")
    out = []
    for target, p in zip(t, primes):
        k = math.floor(math.log(target) / math.log(p))  # +-1 covers rounding of the log
        powers = [p ** j for j in range(max(1, k - 1), k + 2)]
        out.append(min(powers, key=lambda v: (abs(v - target), v)))
    return out
