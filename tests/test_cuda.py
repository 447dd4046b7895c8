"""Device consistency: the same systems on CUDA and on CPU (skipped without a GPU)."""

import numpy as np
import pytest
import torch

import flamo
from conftest import random_stable_sos
from flamo.reverb import build_fdn

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _systems():
    rng = np.random.default_rng(0)
    sos_bank = np.stack([random_stable_sos(np.random.default_rng(i), 3) for i in range(4)])
    A = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    return {
        "gain": flamo.Gain(rng.normal(size=(3, 2))),
        "orthogonal": flamo.Matrix(5, seed=0),
        "delay": flamo.Delay([3.0, 1000.0, 2.5], learnable=True),
        "sos": flamo.SOS(sos_bank),
        "geq": flamo.GEQAttenuation([31, 37, 41, 43], np.linspace(3.0, 0.5, 10)),
        "fdn": build_fdn(delays=[31, 37, 41, 43], matrix="free", matrix_init=A,
                         input_gains=rng.normal(size=4), output_gains=rng.normal(size=4),
                         direct_gain=0.1, line_gains=0.99 ** np.array([31.0, 37, 41, 43]),
                         learnable_attenuation=True, dtype=torch.float64),
    }


@pytest.mark.parametrize("name", list(_systems()))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_response_and_gradients_match_cpu(name, dtype):
    cpu = _systems()[name].to(dtype)
    gpu = _systems()[name].to(dtype).cuda()
    grid = flamo.Grid(nfft=2048, alias_decay_db=30, dtype=dtype)  # one grid for both devices
    h_cpu, h_gpu = cpu.impulse_response(grid), gpu.impulse_response(grid)
    assert h_gpu.device.type == "cuda"
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h_gpu.cpu(), h_cpu, **tol)
    (h_cpu ** 2).sum().backward()
    (h_gpu ** 2).sum().backward()
    for p_cpu, p_gpu in zip(cpu.parameters(), gpu.parameters()):
        torch.testing.assert_close(p_gpu.grad.cpu(), p_cpu.grad, **tol)


def test_filtering_a_signal_on_cuda():
    module = flamo.SOS(random_stable_sos(np.random.default_rng(1), 2)).double()
    grid = flamo.Grid(nfft=512, alias_decay_db=40, dtype=torch.float64)
    x = torch.randn(3, 300, 1, dtype=torch.float64)
    torch.testing.assert_close(module.cuda()(x.cuda(), grid).cpu(), module.cpu()(x, grid))


def test_baselines_on_cuda():
    from baselines import fdn_impulse_response, sosfilt

    rng = np.random.default_rng(2)
    m = torch.tensor([11, 13, 17])
    A = torch.as_tensor(np.linalg.qr(rng.normal(size=(3, 3)))[0])
    b, c, g = (torch.as_tensor(v) for v in (rng.normal(size=3), rng.normal(size=3), 0.9 ** np.array([11.0, 13, 17])))
    cpu = fdn_impulse_response(500, m, A, b, c, 0.2, g=g)
    gpu = fdn_impulse_response(500, m, A.cuda(), b.cuda(), c.cuda(), 0.2, g=g.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu)
    sos = torch.as_tensor(random_stable_sos(rng, 3))
    x = torch.as_tensor(rng.normal(size=(400, 2)))  # (T, C), time first
    torch.testing.assert_close(sosfilt(sos.cuda(), x.cuda()).cpu(), sosfilt(sos, x, backend="scipy"))


def test_sos_gradient_with_a_zero_on_the_grid_on_cuda():
    """One frequency block on a GPU: the zero-safe gradient path there too (cf. test_sos_response)."""
    from flamo.functional import sos_response

    sos = torch.tensor([[1.0, 2.0, 1.0, 1.0, -0.5, 0.3], [0.5, 0.1, -0.2, 1.0, 0.4, 0.2]],
                       dtype=torch.float64)  # b(z) = (1 + z^-1)^2 vanishes at Nyquist
    grid = flamo.Grid(nfft=64, dtype=torch.float64)
    grads = []
    for device in ("cpu", "cuda"):
        s = sos.detach().to(device).requires_grad_(True)
        h = sos_response(s, grid)
        (h.real.sum() + h.imag.sum()).backward()  # nonzero gradient at the zero too
        grads.append(s.grad.cpu())
    assert torch.isfinite(grads[1]).all()
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-10, atol=1e-12)
