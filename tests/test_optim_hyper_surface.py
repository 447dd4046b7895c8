"""Hyperconditioning (batched parameters == per-item evaluation) and loss sweeps."""

import numpy as np
import pytest
import torch

import flamo
from flamo.reverb import build_fdn
from flamo.optim import hyper
from flamo.optim.surface import Axis, local_minima, sweep
from conftest import sosfreqz_on

GRID = flamo.Grid(nfft=64, alias_decay_db=20, dtype=torch.float64)


def _system():
    rng = np.random.default_rng(0)
    n = 3
    sos = np.concatenate([rng.normal(size=(n, 1, 3)), np.tile([1.0, -0.5, 0.2], (n, 1, 1))], -1)
    attenuation = flamo.Series({"filters": flamo.SOS(sos),
                                "att": flamo.Gain(rng.uniform(0.5, 0.9, n))})
    return build_fdn(delays=[3, 5, 7], learnable_delays=True, attenuation=attenuation, seed=1,
                     input_gains=rng.normal(size=(n, 1)), output_gains=rng.normal(size=(1, n)),
                     tone=flamo.SOS(np.array([[1.0, 0.2, 0.1, 1.0, -0.3, 0.1]])),
                     dtype=torch.float64)


def test_batched_response_equals_per_item():
    system = _system()
    shapes = hyper.parameter_shapes(system)
    assert "loop.forward_path.delays.raw" in shapes and "tone.raw" in shapes
    base = hyper.flatten(hyper.raw_parameters(system)).detach()
    batch = base + 0.05 * torch.randn(4, base.numel(), dtype=torch.float64)
    params = hyper.unflatten(batch, shapes)
    assert torch.equal(hyper.flatten(params, shapes), batch)
    out = hyper.batched_response(system, params, GRID)
    assert out.shape == (4, GRID.M, 1, 1)
    for b in range(4):
        with torch.no_grad():
            for name, p in system.named_parameters():
                p.copy_(params[name][b])
        assert torch.allclose(out[b], system.response(GRID), rtol=1e-10, atol=1e-12)


def test_parameter_head_and_gradients():
    system = _system()
    head = hyper.ParameterHead(5, system)
    params = {k: v.double() for k, v in head(torch.randn(2, 5)).items()}
    out = hyper.batched_response(system, params, GRID)
    out.abs().sum().backward()
    assert head.linear.weight.grad is not None and torch.isfinite(head.linear.weight.grad).all()
    with pytest.raises(ValueError, match="unknown parameter"):
        hyper.batched_response(system, {"nope.raw": torch.zeros(1)}, GRID)
    with pytest.raises(ValueError, match="entries"):
        hyper.unflatten(torch.zeros(3), hyper.parameter_shapes(system))


def test_sweep_finds_known_minimum_and_matches_loop():
    system = flamo.Series({"g": flamo.Gain([[1.0]]), "d": flamo.Delay([4.0], learnable=True,
                                                                   mapping=flamo.functional.identity)}).double()
    target = flamo.Series(flamo.Gain([[0.3]]), flamo.Delay([4.0])).double().response(GRID)
    mse = lambda p, t: ((p - t).abs() ** 2).mean()
    values = np.linspace(-1, 1, 41)  # step 0.05: 0.3 is on the grid
    res = sweep(system, lambda s: s.response(GRID), mse, target,
                Axis("g.raw[0, 0]", values, label="gain"), batch_size=7)
    assert res.argmin() == (pytest.approx(0.3),)
    # closed form: |g - 0.3|^2 |z^-4|^2 with |z^-1| = gamma on this grid
    np.testing.assert_allclose(res.loss, (values - 0.3) ** 2 * GRID.gamma ** 8, rtol=1e-6, atol=1e-12)  # 0.3 was stored in float32
    # 2-D: gain x delay, minimum at (0.3, 4)
    res2 = sweep(system, lambda s: s.response(GRID), mse, target,
                 [Axis("g.raw[0,0]", values), Axis("d.raw", np.arange(2.0, 7.0, 0.5))], batch_size=50)
    assert res2.loss.shape == (41, 10)
    assert res2.argmin() == (pytest.approx(0.3), pytest.approx(4.0))
    df = res2.to_frame()
    assert len(df) == 410 and set(df.columns) == {"g.raw[0,0]", "d.raw", "loss"}
    # physical -> raw transform
    sig = flamo.functional.Interval(0, 1)
    sys2 = flamo.Gain([[0.5]], mapping=sig).double()
    r3 = sweep(sys2, lambda s: s.response(GRID), mse, torch.full((GRID.M, 1, 1), 0.8, dtype=torch.complex128),
               Axis("raw", np.linspace(0.05, 0.95, 19), mapping=sig))
    assert r3.argmin()[0] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="no parameter"):
        sweep(system, lambda s: s.response(GRID), mse, target, Axis("x.raw", [1.0]))


def test_local_minima():
    assert local_minima(np.array([3, 1, 2, 0, 5, 5, 4])).tolist() == [1, 3]


@pytest.mark.parametrize("freq", [[100.0, 1000.0, 9000.0], [[80.0, 2000.0, 6000.0], [300.0, 700.0, 12000.0]]],
                         ids=["1x1", "diagonal"])
def test_batched_peq_equals_per_item_design(freq):
    """PEQ raw parameters with two leading batch dims (as a network predicts them): each item
    equals a PEQ built from that item's physical values (mapped here in numpy), sampled by scipy."""
    fs, ranges = 48000.0, {"freq_range": (20.0, 20000.0), "q_range": (0.3, 10.0), "gain_range_db": (-18.0, 18.0)}
    template = flamo.PEQ(freq, **ranges).double()
    grid = flamo.Grid(nfft=256, fs=fs, dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    params = {n: torch.randn(3, 2, *s, generator=gen, dtype=torch.float64)
              for n, s in hyper.parameter_shapes(template).items()}
    out = hyper.batched_response(template, params, grid)
    n = template.shape[0]
    assert out.shape == (3, 2, grid.M, n, n)
    sig = lambda x: 1 / (1 + np.exp(-x.numpy()))
    for i, j in [(0, 0), (1, 1), (2, 0)]:
        f_lo, f_hi = ranges["freq_range"]
        f = f_lo * (f_hi / f_lo) ** sig(params["raw_freq"][i, j])
        q = 0.3 * (10.0 / 0.3) ** sig(params["raw_q"][i, j])
        g = -18.0 + 36.0 * sig(params["raw_gain"][i, j])
        item = flamo.PEQ(torch.as_tensor(f), gain_db=torch.as_tensor(g), q=torch.as_tensor(q),
                         **ranges).double()
        sos = item.sos_at(fs).detach().reshape(n, -1, 6).numpy()
        expected = np.stack([sosfreqz_on(sos[c] / sos[c, :, 3:4], grid) for c in range(n)], -1)
        got = out[i, j].detach().numpy()
        np.testing.assert_allclose(np.diagonal(got, axis1=-2, axis2=-1), expected, rtol=1e-9, atol=1e-12)
        assert np.count_nonzero(got * (1 - np.eye(n))) == 0
