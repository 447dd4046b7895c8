"""Shared fixtures and reference implementations for the tests."""

import os

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import settings

import flamo

# Property tests draw the same examples on every run, so a CI run cannot turn red on an
# example no earlier run saw; HYPOTHESIS_PROFILE=explore draws fresh ones (and uses the
# example database) when hunting for counterexamples locally.
settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture
def tasked(monkeypatch):
    """Register the test experiment ``tasked`` (tests/task_experiment.py) in this process."""
    import sys

    import task_experiment
    from experiments import registry

    monkeypatch.setitem(sys.modules, "experiments.tasked", task_experiment)
    monkeypatch.setattr(registry, "EXPERIMENTS", [*registry.EXPERIMENTS, "tasked"])
    for var in ("TASKED_N", "TASKED_SLEEP", "TASKED_FAIL", "TASK_LOG"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


def random_stable_sos(rng, k, max_radius=0.95):
    """(k, 6) random sections with complex-conjugate poles of radius < max_radius."""
    r = rng.uniform(0.1, max_radius, k)
    theta = rng.uniform(0, np.pi, k)
    b = rng.normal(size=(k, 3))
    a = np.stack([np.ones(k), -2 * r * np.cos(theta), r * r], axis=1)
    return np.concatenate([b, a], axis=1)


def fdn_transfer_numpy(z, m, A, b, c, d, g):
    """Independent reference: d + c^T (I - D(z) A)^-1 D(z) b, D = diag(g z^-m), numpy."""
    out = np.empty(len(z), dtype=complex)
    for k, zk in enumerate(z):
        D = np.diag(g * zk ** (-np.asarray(m, dtype=float)))
        out[k] = d + c @ np.linalg.solve(np.eye(len(m)) - D @ A, D @ b)
    return out


def fdn_simulate(x, m, A, b, c, d, g):
    """Sample-by-sample FDN in numpy: s[n] = A o[n] + b x[n], o_i[n] = g_i s_i[n - m_i]."""
    N, T = len(m), len(x)
    s = np.zeros((T, N))
    y = np.zeros(T)
    for n in range(T):
        o = np.array([g[i] * s[n - m[i], i] if n >= m[i] else 0.0 for i in range(N)])
        s[n] = A @ o + b * x[n]
        y[n] = d * x[n] + c @ o
    return y


def sosfreqz_on(sos, grid):
    """scipy.signal.sosfreqz at the grid's frequencies (unit circle)."""
    _, h = scipy.signal.sosfreqz(np.asarray(sos, dtype=float), worN=grid.omega.double().numpy())
    return h



class _ResponseCall(torch.nn.Module):
    """forward(grid) = inner.response(grid), so functional_call can swap the parameters."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, grid):
        return self.inner.response(grid)


def response_with(module, names, values, grid):
    """module.response(grid) with its parameters ``names`` replaced by ``values``; autograd
    flows to ``values`` (used with gradcheck)."""
    params = {f"inner.{n}": v for n, v in zip(names, values)}
    return torch.func.functional_call(_ResponseCall(module), params, (grid,))
