"""Tests of baselines.fdn: naive vs block, closed forms, frequency-domain truth."""

import numpy as np
import pytest
import scipy.signal
import torch
from scipy.stats import ortho_group

from baselines import fdn_block, fdn_impulse_response, fdn_naive

f64 = torch.float64


def random_sos(rng, K, rmax=0.9, gain=0.95):
    """K stable biquads per line, magnitude response bounded by about ``gain``."""
    sos = np.zeros((K, 6))
    for k in range(K):
        r, th = rng.uniform(0.0, rmax), rng.uniform(0, np.pi)
        a = rng.uniform(0.5, 2.0) * np.array([1, -2 * r * np.cos(th), r * r])
        # numerator = scaled denominator of a smaller-radius pole pair: |F| <= bounded
        rz = r * rng.uniform(0.0, 1.0)
        bb = np.array([1, -2 * rz * np.cos(th), rz * rz])
        w, h = scipy.signal.freqz(bb, a, worN=512)
        sos[k, :3] = bb * gain / np.abs(h).max()
        sos[k, 3:] = a
    return sos


def random_fdn(seed, N, mmax=12, filters=False, K=1, decay=0.8):
    rng = np.random.default_rng(seed)
    m = rng.integers(1, mmax + 1, size=N)
    A = ortho_group.rvs(N, random_state=seed) if N > 1 else np.array([[-1.0]])
    params = dict(
        m=m.tolist(),
        A=torch.tensor(A),
        b=torch.tensor(rng.standard_normal(N)),
        c=torch.tensor(rng.standard_normal(N)),
        d=torch.tensor(rng.standard_normal(), dtype=f64),
        g=torch.tensor(decay ** m.astype(float)),
    )
    params["sos"] = (torch.tensor(np.stack([random_sos(rng, K) for _ in range(N)]))
                     if filters else None)
    return params


def fdn_ir_numpy(m, A, b, c, d, g=None, sos=None, nfft=4096):
    """IR by inverse FFT of H(z) = d + c^T (I - D(z) A)^-1 D(z) b on nfft bins."""
    m, A, b, c = np.asarray(m), np.asarray(A), np.asarray(b), np.asarray(c)
    N = len(m)
    w = 2 * np.pi * np.arange(nfft) / nfft
    D = np.exp(-1j * w[:, None] * m[None, :])  # (nfft, N)
    if g is not None:
        D = D * np.asarray(g)[None, :]
    if sos is not None:
        sos = np.asarray(sos)
        for i in range(N):
            si = sos[i] / sos[i][:, 3:4]  # scipy wants a0 = 1
            D[:, i] *= scipy.signal.sosfreqz(si, worN=w)[1]
    M = np.eye(N)[None] - D[:, :, None] * A[None]
    H = float(d) + np.linalg.solve(M, (D * b[None, :])[..., None])[..., 0] @ c
    return np.fft.ifft(H).real


def fdn_ir_torch_freq(m, A, b, c, d, g, sos, nfft):
    """Differentiable frequency-domain IR (torch complex) for gradient checks."""
    N = len(m)
    w = 2 * np.pi * torch.arange(nfft, dtype=f64) / nfft
    zinv = torch.exp(-1j * w)  # (nfft,)
    D = torch.exp(-1j * w[:, None] * torch.tensor(m, dtype=f64)[None, :]) * g[None, :]
    powers = torch.stack([torch.ones_like(zinv), zinv, zinv**2], -1)  # (nfft, 3)
    for k in range(sos.shape[1]):
        num = powers @ sos[:, k, :3].T.to(powers.dtype)  # (nfft, N)
        den = powers @ sos[:, k, 3:].T.to(powers.dtype)
        D = D * num / den
    M = torch.eye(N, dtype=D.dtype)[None] - D[:, :, None] * A.to(D.dtype)[None]
    x = torch.linalg.solve(M, (D * b.to(D.dtype)[None, :])[..., None])[..., 0]
    H = d + x @ c.to(D.dtype)
    return torch.fft.ifft(H).real


@pytest.mark.parametrize("seed,N,filters,use_g", [
    (0, 1, False, True), (1, 3, False, False), (2, 4, False, True), (3, 6, True, True),
    (4, 2, True, False), (5, 5, True, True),
])
def test_naive_equals_block(seed, N, filters, use_g):
    p = random_fdn(seed, N, filters=filters, K=2, decay=1.0 if not use_g else 0.9)
    if not use_g:
        p["g"] = None
    x = torch.tensor(np.random.default_rng(seed).standard_normal(150))
    y_ref = fdn_naive(x, **p)
    y = fdn_block(x, **p)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12 * y_ref.abs().max().item())


def test_block_edge_cases():
    # equal delays (one block = max delay), delay 1 (one-sample blocks), T < min(m)
    for m in ([4, 4, 4], [1, 3, 6], [9, 10, 11]):
        p = random_fdn(7, 3)
        p["m"] = m
        for T in (1, 5, 40):
            x = torch.randn(T, dtype=f64)
            torch.testing.assert_close(fdn_block(x, **p), fdn_naive(x, **p),
                                       rtol=1e-12, atol=1e-12)
    # delays as a tensor, integer-valued floats
    p = random_fdn(8, 3)
    h1 = fdn_impulse_response(50, **p)
    p["m"] = torch.tensor(p["m"], dtype=torch.float32)
    torch.testing.assert_close(fdn_impulse_response(50, **p), h1)


def test_single_line_closed_form():
    m, a, b, c, d = 7, 0.9, 0.5, 2.0, 0.3
    h = fdn_impulse_response(200, [m], torch.tensor([[a]], dtype=f64), [b], [c], d)
    ref = np.zeros(200)
    ref[0] = d
    k = np.arange(200 // m)
    ref[m * (k + 1)[m * (k + 1) < 200]] = (b * c * a**k)[m * (k + 1) < 200]
    np.testing.assert_allclose(h.numpy(), ref, rtol=1e-13, atol=1e-15)
    # with a gain g: h[m (k + 1)] = b c g^(k+1) a^k
    h = fdn_impulse_response(200, [m], torch.tensor([[a]], dtype=f64), [b], [c], d, g=[0.8])
    ref[m * (k + 1)[m * (k + 1) < 200]] = (b * c * 0.8 ** (k + 1) * a**k)[m * (k + 1) < 200]
    np.testing.assert_allclose(h.numpy(), ref, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("filters", [False, True])
def test_ir_matches_frequency_domain(filters):
    p = random_fdn(11, 4, mmax=15, filters=filters, K=2, decay=0.85)
    nfft = 4096
    ref = fdn_ir_numpy(nfft=nfft, **{k: (v.numpy() if isinstance(v, torch.Tensor) else v)
                                     for k, v in p.items()})
    assert np.abs(ref[nfft // 2:]).max() < 1e-13  # time aliasing negligible
    h = fdn_impulse_response(1000, **p)
    np.testing.assert_allclose(h.numpy(), ref[:1000], rtol=0, atol=1e-12)


def test_gradients_match_frequency_domain():
    p = random_fdn(12, 3, mmax=10, filters=True, K=1, decay=0.85)
    names = ["A", "b", "c", "d", "g", "sos"]
    T, nfft = 400, 4096

    def grads(ir_fn):
        leaves = {k: p[k].clone().requires_grad_() for k in names}
        h = ir_fn(leaves)
        (h[:T] ** 2).sum().backward()
        return [leaves[k].grad for k in names]

    g_time = grads(lambda q: fdn_impulse_response(T, p["m"], q["A"], q["b"], q["c"], q["d"],
                                                  g=q["g"], sos=q["sos"]))
    g_freq = grads(lambda q: fdn_ir_torch_freq(p["m"], q["A"], q["b"], q["c"], q["d"],
                                               q["g"], q["sos"], nfft))
    for name, gt, gf in zip(names, g_time, g_freq):
        torch.testing.assert_close(gt, gf, rtol=1e-8, atol=1e-10, msg=name)


def test_block_gradcheck():
    p = random_fdn(13, 3, mmax=4, filters=True, K=1, decay=0.9)
    x = torch.randn(30, dtype=f64)
    names = ["A", "b", "c", "d", "g", "sos"]
    leaves = [p[k].clone().requires_grad_() for k in names]

    def fn(A, b, c, d, g, sos):
        return fdn_block(x, p["m"], A, b, c, d, g=g, sos=sos)

    assert torch.autograd.gradcheck(fn, leaves)


def test_float32_block():
    p = random_fdn(14, 4, filters=True, K=1)
    p32 = {k: (v.float() if isinstance(v, torch.Tensor) else v) for k, v in p.items()}
    h64 = fdn_impulse_response(300, **p)
    h32 = fdn_impulse_response(300, **p32)
    assert h32.dtype == torch.float32
    torch.testing.assert_close(h32.double(), h64, rtol=0, atol=1e-5)


def test_bad_inputs():
    p = random_fdn(15, 3, filters=True)
    x = torch.randn(20, dtype=f64)

    def call(**kw):
        fdn_block(x, **{**p, **kw})

    with pytest.raises(ValueError, match="m"):
        call(m=[0, 2, 3])
    with pytest.raises(ValueError, match="m"):
        call(m=[1.5, 2, 3])
    with pytest.raises(ValueError, match="m"):
        call(m=[[1, 2, 3]])
    with pytest.raises(ValueError, match="A"):
        call(A=torch.eye(2, dtype=f64))
    with pytest.raises(ValueError, match="b"):
        call(b=torch.ones(4, dtype=f64))
    with pytest.raises(ValueError, match="c"):
        call(c=torch.ones(2, dtype=f64))
    with pytest.raises(ValueError, match="g"):
        call(g=torch.ones(3, 1, dtype=f64))
    with pytest.raises(ValueError, match="d"):
        call(d=torch.ones(2, dtype=f64))
    with pytest.raises(ValueError, match="sos"):
        call(sos=torch.ones(3, 6, dtype=f64))
    with pytest.raises(ValueError, match="sos"):
        call(sos=torch.ones(2, 1, 6, dtype=f64))
    bad = p["sos"].clone()
    bad[1, 0, 3:] = torch.tensor([1.0, 0.0, -1.2])
    with pytest.raises(ValueError, match=r"sos.*\(1, 0\)"):
        call(sos=bad)
    with pytest.raises(ValueError, match="finite"):
        call(b=torch.tensor([1.0, float("inf"), 0.0], dtype=f64))
    with pytest.raises(TypeError, match="A"):
        call(A=np.eye(3))
    with pytest.raises(ValueError, match="x"):
        fdn_block(torch.ones(2, 20, dtype=f64), **p)
    with pytest.raises(ValueError, match="length"):
        fdn_impulse_response(0, **p)
    with pytest.raises(ValueError, match="method"):
        fdn_impulse_response(10, method="fft", **p)
