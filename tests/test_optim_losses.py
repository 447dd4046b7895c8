"""flamo.optim.losses and decay against direct numpy computations and pyroomacoustics."""

import math

import numpy as np
import pytest
import torch

from flamo.optim import energy_decay, losses


def _pair(shape, complex_=False, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=shape), rng.normal(size=shape)
    if complex_:
        a, b = a + 1j * rng.normal(size=shape), b + 1j * rng.normal(size=shape)
    return a, b, torch.as_tensor(a), torch.as_tensor(b)


def test_complex_and_magnitude_mse():
    a, b, ta, tb = _pair((7, 2, 3), complex_=True)
    assert losses.complex_mse(ta, tb).item() == pytest.approx(np.mean(np.abs(a - b) ** 2), rel=1e-12)
    assert losses.ComplexMSE()(ta, tb).item() == pytest.approx(np.mean(np.abs(a - b) ** 2), rel=1e-12)
    assert losses.magnitude_mse(ta, tb).item() == pytest.approx(
        np.mean((np.abs(a) - np.abs(b)) ** 2), rel=1e-12)
    ref_db = np.mean((20 * np.log10(np.abs(a) + 1e-8) - 20 * np.log10(np.abs(b) + 1e-8)) ** 2)
    assert losses.MagnitudeMSE(db=True)(ta, tb).item() == pytest.approx(ref_db, rel=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        losses.complex_mse(ta, tb[:3])


def test_masked_mse_subsets_and_partitions():
    a, b, ta, tb = _pair((10, 1, 1), complex_=True)
    idx = torch.tensor([1, 4, 7])
    ref = np.mean(np.abs(a[[1, 4, 7]] - b[[1, 4, 7]]) ** 2)
    assert losses.masked_mse(ta, tb, idx).item() == pytest.approx(ref, rel=1e-12)
    # partitions: every bin exactly once per cycle, and the mean over a cycle is the full MSE
    part = losses.MaskedMSE(fraction=0.5, seed=3, partition=True)
    seen = torch.cat([part.next_index(10), part.next_index(10)])
    assert sorted(seen.tolist()) == list(range(10))
    # seeded: same seed, same subsets; extra state restores the generator
    m1, m2 = losses.MaskedMSE(0.3, seed=5), losses.MaskedMSE(0.3, seed=5)
    assert torch.equal(m1.next_index(50), m2.next_index(50))
    state = m1.state_dict()
    first = m1.next_index(50)
    m2.load_state_dict(state)
    assert torch.equal(first, m2.next_index(50))
    assert len(first) == 15


def _np_stft_mag(x, n_fft):
    hop = n_fft // 4
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    xp = np.pad(x, n_fft // 2)
    frames = [xp[i:i + n_fft] * win for i in range(0, len(xp) - n_fft + 1, hop)]
    return np.abs(np.fft.rfft(np.array(frames), axis=-1)).T


def test_stft_loss_matches_numpy():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=300), rng.normal(size=300)
    sx, sy = _np_stft_mag(x, 64), _np_stft_mag(y, 64)
    eps = 1e-7
    ref = (np.linalg.norm(sy - sx) / np.linalg.norm(sy)
           + np.mean(np.abs(np.log(sx + eps) - np.log(sy + eps))))
    got = losses.multi_resolution_stft_loss(torch.as_tensor(x), torch.as_tensor(y), fft_sizes=(64,))
    assert got.item() == pytest.approx(ref, rel=1e-9)
    # (T, C) signals: the same loss per channel; per_item gives one value per channel
    two = losses.multi_resolution_stft_loss(torch.as_tensor(np.stack([x, x], -1)),
                                            torch.as_tensor(np.stack([y, y], -1)), fft_sizes=(64,),
                                            per_item=True)
    assert two.shape == (2,)
    np.testing.assert_allclose(two.numpy(), ref, rtol=1e-9)
    # mel variant: the filterbank applied to the same magnitudes
    fb = losses.mel_filterbank(33, 8, fs=16000, dtype=torch.float64).numpy()  # (bins, mels)
    mx, my = fb.T @ sx, fb.T @ sy
    ref_mel = (np.linalg.norm(my - mx) / np.linalg.norm(my)
               + np.mean(np.abs(np.log(mx + eps) - np.log(my + eps))))
    got_mel = losses.MelSTFTLoss(fs=16000, n_mels=8, fft_sizes=(64,))(torch.as_tensor(x), torch.as_tensor(y))
    assert got_mel.item() == pytest.approx(ref_mel, rel=1e-9)


def test_mel_filterbank_triangles():
    fb = losses.mel_filterbank(513, 20, fs=16000, dtype=torch.float64).numpy()
    assert fb.shape == (513, 20) and fb.min() >= 0 and fb.max() <= 1 + 1e-12
    centres = fb.argmax(axis=0)
    assert np.all(np.diff(centres) > 0)  # increasing centre frequencies
    with pytest.raises(ValueError, match="fmin"):
        losses.mel_filterbank(10, 4, fs=100, fmax=80)


def test_schroeder_edc_numpy_and_pyroomacoustics_t60():
    pra = pytest.importorskip("pyroomacoustics.experimental")
    fs, t60 = 8000, 0.8
    rng = np.random.default_rng(2)
    n = np.arange(int(1.5 * fs))
    h = rng.normal(size=n.size) * 10 ** (-3 * n / (fs * t60))  # 60 dB energy decay in t60
    edc = energy_decay.schroeder_edc(torch.as_tensor(h), normalize=False).numpy()
    assert np.allclose(edc, np.cumsum((h ** 2)[::-1])[::-1], rtol=1e-12)
    edc_db = energy_decay.schroeder_edc(torch.as_tensor(h), db=True)
    ours = energy_decay.t60_from_edc(edc_db, fs).item()
    theirs = pra.measure_rt60(h, fs=fs, decay_db=30)
    assert ours == pytest.approx(t60, rel=0.02)
    assert theirs == pytest.approx(t60, rel=0.02)
    assert ours == pytest.approx(theirs, rel=0.02)


def test_octave_filterbank_reconstructs_and_separates():
    fs = 16000
    centers = (250, 500, 1000, 2000, 4000)
    masks = energy_decay.octave_band_masks(257, fs, centers, dtype=torch.float64)
    assert masks.shape == (257, 5)  # frequency first
    assert torch.allclose(masks.sum(-1), torch.ones(257, dtype=torch.float64))
    x = torch.randn(400, 3, dtype=torch.float64)  # (T, C)
    bands = energy_decay.octave_filterbank(x, fs, centers)
    assert bands.shape == (5, 400, 3)  # bands lead, time stays first of (T, C)
    assert torch.allclose(bands.sum(0), x, atol=1e-10)
    t = torch.arange(2000, dtype=torch.float64) / fs
    tone = torch.sin(2 * math.pi * 1000 * t)  # a 1 kHz tone lands in the 1 kHz band
    split = energy_decay.octave_filterbank(tone, fs, centers)
    assert split.shape == (2000, 5)  # a (T,) signal's bands are its channels
    energy = (split[200:-200] ** 2).sum(0)
    assert energy.argmax().item() == 2 and energy[2] > 0.99 * energy.sum()
    # per-band T60 of a mono response: one value per band
    assert energy_decay.t60_from_edc(energy_decay.schroeder_edc(split, db=True), fs).shape == (5,)


def test_edc_loss_broadband_and_bands():
    a, b, ta, tb = _pair((64, 2), seed=3)  # (T, C), the layout module(x, grid) returns
    ea = np.cumsum((a ** 2)[::-1], axis=0)[::-1]
    eb = np.cumsum((b ** 2)[::-1], axis=0)[::-1]
    ref = np.mean((10 * np.log10(ea / ea[:1]) - 10 * np.log10(eb / eb[:1])) ** 2)
    assert losses.edc_loss(ta, tb).item() == pytest.approx(ref, rel=1e-9)
    assert losses.EDCLoss()(ta, tb).item() == pytest.approx(ref, rel=1e-9)
    per_band = losses.edc_loss(ta, tb, fs=16000, centers=(500, 2000))
    assert per_band.item() > 0 and torch.isfinite(per_band)
    assert losses.edc_loss(ta, ta, fs=16000, centers=(500, 2000)).item() == 0


def test_edr_loss_matches_numpy():
    a, b, ta, tb = _pair((200,), seed=4)
    def np_edr(x):
        p = _np_stft_mag(x, 32) ** 2
        e = np.cumsum(p[:, ::-1], axis=1)[:, ::-1]
        return 10 * np.log10(np.maximum(e / e[:, :1], 1e-20))
    ref = np.mean(np.abs(np_edr(a) - np_edr(b)))
    assert losses.edr_loss(ta, tb, n_fft=32).item() == pytest.approx(ref, rel=1e-9)


def test_colorless_and_sparsity_losses():
    rng = np.random.default_rng(5)
    h = rng.normal(size=(9, 4)) + 1j * rng.normal(size=(9, 4))
    total = h.sum(-1)
    dev = lambda x: np.abs(x) - 1
    ref = np.mean(np.mean(dev(h) ** 2, axis=-1) + dev(total) ** 2)
    got = losses.ColorlessSpectralLoss()(torch.as_tensor(h))
    assert got.item() == pytest.approx(ref, rel=1e-12)
    d = dev(h)
    ref_asym = np.mean(np.where(d < 0, np.abs(d) ** 2, np.abs(d) ** 4))
    assert losses.colorless_spectral_loss(torch.as_tensor(h), p_above=4).item() == pytest.approx(ref_asym, rel=1e-12)
    # feedback sparsity: 1 for a permutation, 0 for a normalized Hadamard
    import flamo
    perm = torch.eye(4)[[1, 2, 3, 0]]
    assert losses.feedback_sparsity(perm).item() == pytest.approx(1.0)
    assert losses.FeedbackSparsity(flamo.Matrix(4, kind="hadamard"))().item() == pytest.approx(0.0, abs=1e-6)
    m = flamo.Matrix(4, seed=1)
    a = m.matrix.detach().numpy()
    ref_s = (4 * 2 - np.abs(a).sum()) / (4 * (2 - 1))
    assert losses.feedback_sparsity(m).item() == pytest.approx(ref_s, rel=1e-5)
    with pytest.raises(TypeError, match="flamo.Matrix"):
        losses.FeedbackSparsity(object())
    # temporal sparsity ||h||2 / ||h||1
    x = rng.normal(size=(50, 3))  # (T, C)
    ref_t = np.mean(np.linalg.norm(x, axis=0) / np.abs(x).sum(0))
    assert losses.TemporalSparsity()(torch.as_tensor(x)).item() == pytest.approx(ref_t, rel=1e-12)
    assert losses.temporal_sparsity(torch.tensor([0.0, 3.0, 0.0])).item() == pytest.approx(1.0)


def test_losses_differentiable_float64():
    x = torch.randn(48, 1, dtype=torch.float64, requires_grad=True)
    y = torch.randn(48, 1, dtype=torch.float64)
    for fn in (lambda p: losses.edc_loss(p, y, fs=8000, centers=(500, 1000)),
               lambda p: losses.multi_resolution_stft_loss(p, y, fft_sizes=(16, 32)),
               lambda p: losses.edr_loss(p, y, n_fft=16)):
        assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-4)


def test_time_losses_take_module_outputs_and_refuse_time_last_signals():
    """module(x, grid) is (nfft, out): it goes into every time loss as it is; a time-last
    (C, T) signal has too short a time axis for an STFT and raises, naming the layout."""
    import flamo

    grid = flamo.Grid(nfft=1024, dtype=torch.float64)
    module = flamo.Delay([3.0, 8.0]).double()
    x = torch.randn(1024, 2, dtype=torch.float64)
    y = module(x, grid)
    assert y.shape == (1024, 2)
    for loss in (losses.MultiResolutionSTFTLoss((64, 128)), losses.EDCLoss(), losses.EDRLoss(64)):
        assert torch.isfinite(loss(y, x))
    # a delay of 3 samples: the STFT loss of the shifted signal against itself is 0
    assert losses.multi_resolution_stft_loss(y, y, (64,)).item() == 0
    with pytest.raises(ValueError, match="time first"):
        losses.multi_resolution_stft_loss(y.T, x.T, (64,))
    with pytest.raises(ValueError, match="time first"):
        losses.edc_loss(torch.ones(1, 5), torch.ones(1, 5))


def test_noise_floor_cut_finds_where_a_known_decay_meets_its_noise():
    """An exponential decay of known T60 (0.5 s) over white noise 40 dB down: integrated to
    the end, the noise reads as seconds of decay; cut at the noise floor, the T20 is right."""
    fs, t60 = 48000.0, 0.5
    rng = np.random.default_rng(0)
    t = np.arange(int(2 * fs)) / fs
    h = (rng.standard_normal(t.size) * 10 ** (-3 * t / t60))[:, None]
    h = torch.as_tensor(h + 10 ** (-40 / 20) * rng.standard_normal((t.size, 1)))
    cut, dynamic_range = energy_decay.noise_floor_cut(h, fs)
    # the decay reaches floor + 5 dB at (40 - 5) / 60 * 0.5 s = 0.29 s (50 ms windows)
    assert cut.shape == (1,) and cut.dtype == torch.int64
    assert 0.25 <= cut.item() / fs <= 0.35
    assert 35.0 <= dynamic_range.item() <= 41.0
    keep = torch.arange(t.size)[:, None] < cut[None, :]

    def read(x):
        return energy_decay.t60_from_edc(energy_decay.schroeder_edc(x, db=True), fs, -5.0, -25.0).item()

    assert read(h) > 2 * t60  # the flaw the cut removes
    assert read(h * keep) == pytest.approx(t60, rel=0.03)
    # channels are independent: a (T,) signal gives the same cut as its (T, 1) form, and a
    # second channel 20 dB further down meets the same floor ~ 20 / 60 * 0.5 s earlier
    one, _ = energy_decay.noise_floor_cut(h[:, 0], fs)
    assert one.shape == () and one.item() == cut.item()
    noise = 10 ** (-40 / 20) * torch.as_tensor(rng.standard_normal(t.size))
    two = torch.stack([h[:, 0], 0.1 * (h[:, 0] - noise) + noise], dim=1)
    cuts, _ = energy_decay.noise_floor_cut(two, fs)
    assert cuts[0] == cut[0] and 0.1 <= (cuts[0] - cuts[1]).item() / fs <= 0.25


def test_noise_floor_cut_of_a_noise_free_decay_lands_in_its_last_windows():
    """Without noise the "floor" is the decay's own tail (the last 10 %, 1.8-2 s): the cut
    comes within 5 dB of its mean, near the end, with the decay's full range above it."""
    fs, t60 = 8000.0, 0.5
    t = torch.arange(int(2 * fs), dtype=torch.float64) / fs
    h = torch.as_tensor(np.random.default_rng(1).standard_normal(t.numel())) * 10 ** (-3 * t / t60)
    cut, dynamic_range = energy_decay.noise_floor_cut(h, fs)
    assert 1.75 <= cut.item() / fs < 2.0
    # the floor lies about 120 dB/s x 1.9 s below the peak window
    assert 200.0 <= dynamic_range.item() <= 240.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(fs=0.0), "fs must be"), (dict(window_s=0.0), "window_s must be"),
    (dict(margin_db=-1.0), "margin_db must be"), (dict(tail=0.0), "tail must be"),
    (dict(window_s=2.0), "fewer than one window")])
def test_noise_floor_cut_rejects_invalid_arguments(kwargs, match):
    args = dict(h=torch.randn(8000, dtype=torch.float64), fs=8000.0) | kwargs
    with pytest.raises(ValueError, match=match):
        energy_decay.noise_floor_cut(**args)
    with pytest.raises(ValueError, match="non-finite"):
        energy_decay.noise_floor_cut(torch.tensor([1.0, float("nan")] * 4000), 8000.0)


# -- AveragePower (Dal Santo et al., Asilomar 2024) ----------------------------------------

def _np_smoothed_power(x, n_fft, hop, window, stride):
    """Magnitude STFT by explicit framing (periodic Hann, centred, zero padded), then a valid
    2-D convolution with the symmetric-Hann outer product (scipy), subsampled by stride."""
    import scipy.signal

    win = scipy.signal.get_window("hann", n_fft)  # periodic, as torch.stft's window
    xp = np.pad(x, n_fft // 2)
    frames = [xp[i:i + n_fft] * win for i in range(0, len(xp) - n_fft + 1, hop)]
    mag = np.abs(np.fft.rfft(np.array(frames), axis=-1)).T  # (bins, frames)
    kernel = np.outer(scipy.signal.windows.hann(window[0], sym=True),
                      scipy.signal.windows.hann(window[1], sym=True))
    smooth = scipy.signal.convolve2d(mag, kernel, mode="valid")
    return smooth[::stride[0], ::stride[1]]


def _np_average_power(x, y, n_fft, hop, window, stride):
    px, py = (_np_smoothed_power(s, n_fft, hop, window, stride) for s in (x, y))
    return np.linalg.norm(py - px) / (np.linalg.norm(px) * np.linalg.norm(py))


def test_average_power_matches_numpy_scipy():
    rng = np.random.default_rng(4)
    decay = np.exp(-np.arange(700) / 150.0)
    x, y = rng.normal(size=700) * decay, rng.normal(size=700) * decay
    settings = dict(n_fft=64, hop=16, window=(8, 6), stride=(3, 2))
    ref = _np_average_power(x, y, **settings)
    got = losses.average_power(torch.as_tensor(x), torch.as_tensor(y), **settings)
    assert got.item() == pytest.approx(ref, rel=1e-10)
    assert losses.AveragePower(**settings)(torch.as_tensor(x), torch.as_tensor(y)).item() == \
        pytest.approx(ref, rel=1e-10)
    # (..., T, C): one value per channel with per_item, the mean otherwise
    xy = torch.as_tensor(np.stack([x, y], -1))[None]  # (1, T, 2)
    yx = torch.as_tensor(np.stack([y, x], -1))[None]
    per = losses.average_power(xy, yx, per_item=True, **settings)
    assert per.shape == (1, 2)
    np.testing.assert_allclose(per.numpy(), [[ref, _np_average_power(y, x, **settings)]], rtol=1e-10)
    # normalize: both scaled to unit energy before the STFT
    ref_n = _np_average_power(x / np.linalg.norm(x), y / np.linalg.norm(y), **settings)
    got_n = losses.average_power(torch.as_tensor(3 * x), torch.as_tensor(0.1 * y), normalize=True, **settings)
    assert got_n.item() == pytest.approx(ref_n, rel=1e-10)


def test_average_power_closed_forms_and_published_defaults():
    rng = np.random.default_rng(5)
    y = torch.as_tensor(rng.normal(size=16128) * np.exp(-np.arange(16128) / 4000.0))
    # identical signals: 0; pred = c target: |c - 1| / (c ||P_t||) (the STFT is linear in the signal)
    assert losses.average_power(y, y).item() == 0.0
    p_t = np.linalg.norm(_np_smoothed_power(y.numpy(), 1024, 256, (64, 64), (4, 4)))
    for c in (0.5, 2.0):
        assert losses.average_power(c * y, y).item() == pytest.approx(abs(c - 1) / (c * p_t), rel=1e-10)
    # the defaults (Hann 1024 / hop 256, 64 x 64 at stride 4) need T >= 63 * 256 = 16128 samples
    with pytest.raises(ValueError, match="T >= 16128"):
        losses.average_power(y[:16127], y[:16127])


def test_average_power_validation():
    x = torch.randn(200, dtype=torch.float64)
    small = dict(n_fft=32, hop=8, window=4, stride=2)
    with pytest.raises(ValueError, match="same shape"):
        losses.average_power(x, x[:100], **small)
    bad = x.clone()
    bad[3] = float("nan")
    with pytest.raises(ValueError, match="target has non-finite"):
        losses.average_power(x, bad, **small)
    with pytest.raises(TypeError, match="pred must be a real floating tensor"):
        losses.average_power(torch.ones(200, dtype=torch.complex128), x, **small)
    with pytest.raises(ValueError, match="pred has zero smoothed power"):
        losses.average_power(torch.zeros_like(x), x, **small)
    with pytest.raises(ValueError, match="normalize=True needs nonzero energy"):
        losses.average_power(x, torch.zeros_like(x), normalize=True, **small)
    for kwargs, match in ((dict(n_fft=1), "n_fft must be an int >= 2"), (dict(hop=0), "hop must be"),
                          (dict(window=(4, 0)), "window must be"), (dict(stride=2.0), "stride must be"),
                          (dict(window=(40, 4)), "fewer than the smoothing window")):
        with pytest.raises(ValueError, match=match):
            losses.average_power(x, x, **{**small, **kwargs})
    with pytest.raises(TypeError, match="normalize must be True or False"):
        losses.AveragePower(normalize=1)
    with pytest.raises(ValueError, match="AveragePower: window must be"):
        losses.AveragePower(window=(64,))
    # a time-last signal (C, T): its time axis (2 samples) is shorter than half a frame
    two = x[None].expand(2, 200)
    with pytest.raises(ValueError, match="time axis"):
        losses.average_power(two, two, **small)


def test_average_power_gradcheck():
    rng = np.random.default_rng(6)
    x = torch.tensor(rng.normal(size=(32, 1)), requires_grad=True)
    y = torch.as_tensor(rng.normal(size=(32, 1)))
    for normalize in (False, True):  # the full Jacobian once, the fast (random projection) check once
        assert torch.autograd.gradcheck(
            lambda p: losses.average_power(p, y, n_fft=8, hop=2, window=(3, 4), stride=(2, 3),
                                           normalize=normalize), (x,), fast_mode=normalize)
