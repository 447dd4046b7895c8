"""Adapters of the competitors (run in the competitor environment, see protocol.py).

Here ``import flamo`` is the reference library FLAMO 0.2.20 (Dal Santo et al., ICASSP 2025),
never this project's. Every adapter follows its package's documented usage; where a default
had to be changed to run the workload at all, ``notes`` says so.

Methods
-------
``FLAMO``
    ``flamo.processor.dsp`` modules in a ``system.Shell`` with an ``FFT`` input layer and an
    ``iFFTAntiAlias`` output layer (impulse responses) or an ``abs`` output layer (the
    colorless step), as FLAMO's examples write them; ``device="cpu"`` passed explicitly.
    FDNs: ``Recursion(fF=Series(parallelDelay, parallelGain), fB=Matrix)`` (FLAMO's fast
    diagonal path); GEQ per line: ``parallelGEQ`` in the forward path or after the matrix
    in the feedback path (``Series(Matrix, parallelGEQ)``, FLAMO's ``e8_fdn`` example).
``FLAMO-SOSFilter``, ``FLAMO-Biquad``
    ``parallelSOSFilter`` (the same sections) and ``parallelBiquad`` (8 RBJ lowpass sections
    per channel, cut-offs at the case's pole angles: FLAMO's Biquad has lowpass, highpass and
    bandpass designs only, so it cannot hold arbitrary sections; timed as a cascade of the
    same size and checked against the sections it realizes), in a Shell with FFT / iFFT
    layers of the same FFT size as the project's.
``dasp``
    ``dasp_pytorch.signal.sosfilt_via_fsm`` (frequency sampling at its own FFT size, the next
    power of two >= 2T - 1); the fit workload uses ``fft_sosfreqz``.
``philtorch-ssm``, ``philtorch-diag_ssm``
    ``philtorch.lti.lfilter`` with ``backend="ssm"`` / ``"diag_ssm"``, one call per section.
``torchlpc``
    ``torchlpc.sample_wise_lpc`` for the all-pole part of each section (the LTI coefficients
    expanded over time), the 3-tap numerator in plain torch.
``scipy``
    ``scipy.signal.sosfilt`` in float32, forward only (no gradients).
"""

from __future__ import annotations

import importlib.metadata
from collections import OrderedDict

import numpy as np
import scipy
import scipy.signal
import torch

from . import systems
from .protocol import Adapter

F32 = torch.float32
CPU = "cpu"


def _version(dist):
    return importlib.metadata.version(dist)


def _t(x, dtype=F32):
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def _impulse(length, channels=1):
    x = torch.zeros(1, length, channels)
    x[:, 0] = 1
    return x


# -- FLAMO 0.2.20 -----------------------------------------------------------------------
class _FLAMO(Adapter):
    package, version = "flamo (FLAMO)", _version("flamo")

    def params(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def _raw(self, raw):
        """The raw float64 arrays as tensors, in the order of params()."""
        return [torch.as_tensor(r, dtype=torch.float64) for r in raw]

    def _mapped(self, raw):
        """{part: mapped float64 value} of ``self.parts`` (FLAMO modules) for raw values
        ``raw`` given in the order of params(); also the raw tensors by parameter id."""
        by_id = dict(zip([id(p) for p in self.params()], self._raw(raw)))
        return {k: m.map(by_id[id(m.param)]).numpy() for k, m in self.parts.items()}, by_id

    def _fdn_shell(self, b, loop, c):
        """Shell(Series(b, loop, c), FFT, iFFTAntiAlias): the impulse response, as FLAMO's
        examples build an FDN."""
        from flamo.processor import dsp, system

        nfft, alias = self.case["nfft"], systems.ALIAS_DECAY_DB
        core = system.Series(OrderedDict(input_gain=b, feedback_loop=loop, output_gain=c))
        self.model = system.Shell(core=core, input_layer=dsp.FFT(nfft),
                                  output_layer=dsp.iFFTAntiAlias(nfft=nfft, alias_decay_db=alias, device=CPU))
        self.x = _impulse(nfft)

    def _fdn_physical(self, mapped):
        return dict(m=self.nums["m"], A=mapped["A"], b=mapped["b"][:, 0], c=mapped["c"][0])


def _flamo_fdn_parts(nums, nfft, alias):
    from flamo.processor import dsp

    n = len(nums["m"])
    kw = dict(nfft=nfft, alias_decay_db=alias, device=CPU)
    b = dsp.Gain(size=(n, 1), requires_grad=True, **kw)
    b.assign_value(_t(nums["b"]).reshape(n, 1))
    c = dsp.Gain(size=(1, n), requires_grad=True, **kw)
    c.assign_value(_t(nums["c"]).reshape(1, n))
    delays = dsp.parallelDelay(size=(n,), max_len=int(nums["m"].max()), isint=True,
                               requires_grad=False, **kw)
    delays.assign_value(delays.sample2s(_t(nums["m"])))
    return b, c, delays


class FLAMOFDN(_FLAMO):
    notes = "Recursion(Series(parallelDelay, parallelGain), Matrix random) -> FLAMO's diagonal loop path"

    def __init__(self, case, nums):
        super().__init__(case, nums)
        from flamo.processor import dsp, system

        n, nfft, alias = len(nums["m"]), case["nfft"], systems.ALIAS_DECAY_DB
        kw = dict(nfft=nfft, alias_decay_db=alias, device=CPU)
        b, c, delays = _flamo_fdn_parts(nums, nfft, alias)
        gains = dsp.parallelGain(size=(n,), requires_grad=True, **kw)
        gains.assign_value(_t(nums["g"]))
        matrix = dsp.Matrix(size=(n, n), matrix_type="random", requires_grad=True, **kw)
        matrix.assign_value(_t(nums["A"]))
        loop = system.Recursion(fF=system.Series(OrderedDict(delays=delays, gains=gains)), fB=matrix)
        self._fdn_shell(b, loop, c)
        self.parts = dict(b=b, c=c, g=gains, A=matrix)

    def forward(self):
        return self.model(self.x)[0, :, 0]

    def realize(self, raw):
        mapped, _ = self._mapped(raw)
        return dict(self._fdn_physical(mapped), g=mapped["g"])


def flamo_geq_gains(command_db, centres):
    """FLAMO's GEQ gains [broadband, low shelf, peaks at ``centres``, high shelf] (dB), (N, B + 3),
    from the octave commands (N, 10) at 31.25 Hz .. 16 kHz: the mean command as the broadband
    gain (as the project's GEQ offset), every filter's gain relative to it, the peaks
    interpolated in log frequency at FLAMO's centres, the shelves at the edge bands."""
    octaves = 31.25 * 2.0 ** np.arange(command_db.shape[-1])
    mean = command_db.mean(-1, keepdims=True)
    rel = command_db - mean
    peaks = np.stack([np.interp(np.log(centres), np.log(octaves), r) for r in rel])
    return np.concatenate([mean, rel[:, :1], peaks, rel[:, -1:]], axis=-1)


class FLAMOFDNGEQ(_FLAMO):
    def __init__(self, case, nums):
        super().__init__(case, nums)
        from flamo.processor import dsp, system

        n, nfft, alias = len(nums["m"]), case["nfft"], systems.ALIAS_DECAY_DB
        kw = dict(nfft=nfft, alias_decay_db=alias, device=CPU)
        b, c, delays = _flamo_fdn_parts(nums, nfft, alias)
        matrix = dsp.Matrix(size=(n, n), matrix_type="random", requires_grad=True, **kw)
        matrix.assign_value(_t(nums["A"]))
        # parameters in dB (FLAMO's default map takes linear gains to dB)
        self.geq = dsp.parallelGEQ(size=(n,), octave_interval=1, fs=systems.FS, map=lambda x: x,
                                   requires_grad=True, **kw)
        centres = self.geq.center_freq.double().numpy()
        self.geq.assign_value(_t(flamo_geq_gains(nums["command_db"], centres).T))
        if case["arrangement"] == "forward":
            loop = system.Recursion(fF=system.Series(OrderedDict(delays=delays, attenuation=self.geq)),
                                    fB=matrix)
            self.notes = "Recursion(Series(parallelDelay, parallelGEQ), Matrix): FLAMO's diagonal loop path"
        else:
            loop = system.Recursion(fF=delays, fB=system.Series(OrderedDict(mixing_matrix=matrix,
                                                                            attenuation=self.geq)))
            self.notes = "Recursion(parallelDelay, Series(Matrix, parallelGEQ)) as FLAMO's e8_fdn: generic solve"
        self._fdn_shell(b, loop, c)
        self.parts = dict(b=b, c=c, A=matrix)

    def forward(self):
        return self.model(self.x)[0, :, 0]

    def realize(self, raw):
        from flamo.auxiliary.eq import geq

        mapped, by_id = self._mapped(raw)
        gains = self.geq.map(by_id[id(self.geq.param)])  # (B + 3, N) dB
        centre = self.geq.center_freq.to(torch.float64)
        shelf = self.geq.shelving_crossover.to(torch.float64)
        sos = []
        for i in range(gains.shape[1]):
            num, den = geq(centre, shelf, torch.tensor(2.7, dtype=torch.float64), gains[:, i],
                           fs=systems.FS, dtype=torch.float64)
            sos.append(torch.cat([num, den], 0).T.numpy())
        return dict(self._fdn_physical(mapped), sos=np.stack(sos))


class FLAMOColorless(_FLAMO):
    notes = ("FLAMO's e8_colorless_fdn: Shell(FFT, abs), Matrix orthogonal, mse_loss + 0.2 "
             "sparsity_loss, Adam lr 1e-3")

    def __init__(self, case, nums):
        super().__init__(case, nums)
        from flamo.optimize.loss import mse_loss, sparsity_loss
        from flamo.processor import dsp, system

        n, nfft, alias = len(nums["m"]), case["nfft"], systems.ALIAS_DECAY_DB
        kw = dict(nfft=nfft, alias_decay_db=alias, device=CPU)
        b, c, delays = _flamo_fdn_parts(nums, nfft, alias)
        matrix = dsp.Matrix(size=(n, n), matrix_type="orthogonal", requires_grad=True, **kw)
        matrix.assign_value(_t(nums["W"]))  # A = expm(triu(W, 1) - triu(W, 1)^T)
        loop = system.Recursion(fF=delays, fB=matrix)
        core = system.Series(OrderedDict(input_gain=b, feedback_loop=loop, output_gain=c))
        self.model = system.Shell(core=core, input_layer=dsp.FFT(nfft),
                                  output_layer=dsp.Transform(transform=lambda x: torch.abs(x)))
        self.parts = dict(b=b, c=c, A=matrix)
        self.x = _impulse(nfft)
        self.ones = torch.ones(1, nfft // 2 + 1, 1)
        self.mse, self.sparsity = mse_loss(nfft=nfft, device=CPU), sparsity_loss()
        self.optimizer = torch.optim.Adam(self.params(), lr=1e-3)

    def forward(self):
        return self.model(self.x)[0, :, 0]

    def loss(self, output):
        out = output.reshape(1, -1, 1)
        return (self.mse(out, self.ones)
                + systems.COLORLESS_SPARSITY_WEIGHT * self.sparsity(out, self.ones, self.model))

    def realize(self, raw):
        return self._fdn_physical(self._mapped(raw)[0])


class FLAMOSOSFilter(_FLAMO):
    def __init__(self, case, nums):
        super().__init__(case, nums)
        from flamo.processor import dsp, system

        if self.fit:
            nfft, channels = case["nfft"], 1
        else:
            nfft, channels = systems.cascade_nfft(case["length"]), nums["sos"].shape[0]
        # normalize_a0=False: the default mapping divides by a0 in place, which breaks
        # autograd ("modified by an inplace operation"); every section here has a0 = 1.
        self.sos = dsp.parallelSOSFilter(size=(channels,), n_sections=systems.SECTIONS, nfft=nfft,
                                         fs=systems.FS, device=CPU, normalize_a0=False)
        # SOSFilter is built with requires_grad=False whatever the caller asks; enable it.
        self.sos.param.requires_grad_(True)
        self.notes = (f"nfft {nfft}; normalize_a0=False (the default in-place a0 division breaks "
                      f"backward); param.requires_grad_(True) (SOSFilter forces False)")
        if self.fit:
            raw = np.zeros((systems.SECTIONS, 6, 1))
            raw[:, :5, 0] = nums["theta0"]  # the shared parametrization in the first 5 slots
            self.sos.map = lambda p: systems.fit_sos(p[:, :5, 0], torch).unsqueeze(-1)
            self.sos.assign_value(_t(raw))
            self.model = system.Shell(core=self.sos, input_layer=dsp.FFT(nfft),
                                      output_layer=dsp.Transform(transform=lambda x: torch.abs(x)))
            self.x = _impulse(nfft)
        else:
            self.sos.assign_value(_t(nums["sos"]).permute(1, 2, 0))  # (K, 6, C)
            self.model = system.Shell(core=self.sos, input_layer=dsp.FFT(nfft), output_layer=dsp.iFFT(nfft))
            self.x = _t(nums["x"]).T.unsqueeze(0)  # (1, T, C)

    def theta(self):
        return self.sos.param[:, :5, 0]

    def forward(self):
        if self.fit:
            return self.model(self.x)[0, :, 0]
        return self.model(self.x)[0, : self.case["length"]].T

    def realize(self, raw):
        return dict(sos=self.sos.map(self._raw(raw)[0]).permute(2, 0, 1).contiguous().numpy(),
                    x=self.nums["x"])


class FLAMOBiquad(_FLAMO):
    def __init__(self, case, nums):
        super().__init__(case, nums)
        from flamo.processor import dsp, system

        nfft, channels = systems.cascade_nfft(case["length"]), nums["sos"].shape[0]
        self.bq = dsp.parallelBiquad(size=(channels,), n_sections=systems.SECTIONS, filter_type="lowpass",
                                     nfft=nfft, fs=systems.FS, requires_grad=True, device=CPU)
        sos = nums["sos"]
        poles = np.arccos(np.clip(-sos[..., 4] / (2 * np.sqrt(sos[..., 5])), -1, 1))  # (C, K) rad
        raw = np.stack([np.clip(poles / np.pi, 0.01, 0.99), np.ones_like(poles)], axis=1)  # (C, 2, K)
        self.bq.assign_value(_t(raw).permute(2, 1, 0))  # (K, 2, C): [fc / (fs/2), linear gain]
        self.model = system.Shell(core=self.bq, input_layer=dsp.FFT(nfft), output_layer=dsp.iFFT(nfft))
        self.x = _t(nums["x"]).T.unsqueeze(0)
        self.notes = f"nfft {nfft}; 8 RBJ lowpass sections (cut-off at the pole angles), not the case's sections"

    def forward(self):
        return self.model(self.x)[0, : self.case["length"]].T

    def realize(self, raw):
        from flamo.functional import lowpass_filter, rad2hertz

        p = self.bq.map(self._raw(raw)[0])  # (K, 2, C): [fc / (fs/2), gain dB]
        num, den = lowpass_filter(fc=rad2hertz(p[:, 0] * torch.pi, fs=systems.FS), gain=p[:, 1],
                                  fs=systems.FS, dtype=torch.float64)  # (3, K, C) each
        sos = torch.cat([num, den], 0).permute(2, 1, 0).contiguous()  # (C, K, 6)
        return dict(sos=sos.numpy(), x=self.nums["x"])


# -- time-domain filters and dasp -------------------------------------------------------------
class _Cascade(Adapter):
    """Leaves: the (C, 8, 6) sections (cascade) or the (8, 5) shared parameters (fit)."""

    def __init__(self, case, nums):
        super().__init__(case, nums)
        if self.fit:
            self.leaves = [torch.nn.Parameter(_t(nums["theta0"]))]
            self.x = torch.zeros(1, case["nfft"])
            self.x[0, 0] = 1
        else:
            self.leaves = [_t(nums["sos"]).requires_grad_(True)]
            self.x = _t(nums["x"])

    def params(self):
        return self.leaves

    def sections(self):
        """(C, K, 6) sections of the current parameters."""
        if self.fit:
            return systems.fit_sos(self.leaves[0], torch).unsqueeze(0)
        return self.leaves[0]

    def forward(self):
        y = self.filter(self.sections(), self.x)
        return torch.fft.rfft(y[0]).abs() if self.fit else y

    def realize(self, raw):
        return dict(sos=raw[0], x=self.nums["x"])


class Philtorch(_Cascade):
    package = "philtorch"
    backend = "ssm"

    def __init__(self, case, nums):
        super().__init__(case, nums)
        import philtorch

        self.version = philtorch.__version__
        self.notes = f"philtorch.lti.lfilter(backend={self.backend!r}), one call per section"
        if self.backend == "diag_ssm":
            self.notes += "; its complex output's real part"

    def filter(self, sos, x):
        from philtorch.lti import lfilter

        sos = sos / sos[..., 3:4]
        for k in range(sos.shape[-2]):
            x = lfilter(sos[:, k, :3], sos[:, k, 4:], x, backend=self.backend)
            if x.is_complex():  # diag_ssm runs in the complex eigenbasis of the companion matrix
                x = x.real
        return x


class PhiltorchDiag(Philtorch):
    backend = "diag_ssm"


class TorchLPC(_Cascade):
    package, version = "torchlpc", _version("torchlpc")
    notes = "all-pole part of each section by torchlpc.sample_wise_lpc, 3-tap numerator in plain torch"

    def filter(self, sos, x):
        from torchlpc import sample_wise_lpc

        sos = sos / sos[..., 3:4]
        T = x.shape[-1]
        for k in range(sos.shape[-2]):
            b = sos[:, k, :3]
            x1 = torch.nn.functional.pad(x, (1, 0))[:, :T]
            x2 = torch.nn.functional.pad(x, (2, 0))[:, :T]
            fir = b[:, :1] * x + b[:, 1:2] * x1 + b[:, 2:3] * x2
            a = sos[:, k, 4:].unsqueeze(1).expand(-1, T, -1)
            x = sample_wise_lpc(fir, a)
        return x


class Dasp(_Cascade):
    package, version = "dasp-pytorch", _version("dasp-pytorch")
    notes = "dasp_pytorch.signal.sosfilt_via_fsm (its own FFT size: next power of two >= 2T - 1)"

    def forward(self):
        from dasp_pytorch.signal import fft_sosfreqz, sosfilt_via_fsm

        if self.fit:
            return fft_sosfreqz(self.sections(), n_fft=self.case["nfft"])[0].abs()
        return sosfilt_via_fsm(self.leaves[0], self.x)


class Scipy(Adapter):
    package, version = "scipy", scipy.__version__
    notes = "scipy.signal.sosfilt in float32, forward only"
    differentiable = False

    def __init__(self, case, nums):
        super().__init__(case, nums)
        self.sos = (nums["sos"] / nums["sos"][..., 3:4]).astype(np.float32)
        self.x = nums["x"].astype(np.float32)

    def params(self):
        return []

    def forward(self):
        return torch.from_numpy(np.stack([scipy.signal.sosfilt(s, xi) for s, xi in zip(self.sos, self.x)]))

    def realize(self, raw):
        return dict(sos=self.nums["sos"], x=self.nums["x"])


ADAPTERS = {
    "FLAMO": {"fdn": FLAMOFDN, "fdn_geq": FLAMOFDNGEQ, "colorless": FLAMOColorless},
    "FLAMO-SOSFilter": {"cascade": FLAMOSOSFilter, "fit": FLAMOSOSFilter},
    "FLAMO-Biquad": {"cascade": FLAMOBiquad},
    "dasp": {"cascade": Dasp, "fit": Dasp},
    "philtorch-ssm": {"cascade": Philtorch, "fit": Philtorch},
    "philtorch-diag_ssm": {"cascade": PhiltorchDiag, "fit": PhiltorchDiag},
    "torchlpc": {"cascade": TorchLPC, "fit": TorchLPC},
    "scipy": {"cascade": Scipy},
}


# -- metric and loss parity (float64) ---------------------------------------------------
def parity_mrstft(data, fft_sizes):
    """auraloss.freq.MultiResolutionSTFTLoss configured as the project's loss: the same frame
    lengths, hop n/4, Hann windows of the frame length, spectral convergence + log-magnitude
    L1 with weight 1 each; (P,)."""
    import auraloss

    loss = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=list(fft_sizes), hop_sizes=[n // 4 for n in fft_sizes], win_lengths=list(fft_sizes),
        window="hann_window", w_sc=1.0, w_log_mag=1.0, w_lin_mag=0.0, w_phs=0.0)
    pred, target = torch.as_tensor(data["pred"]), torch.as_tensor(data["target"])
    return {"loss": np.array([float(loss(p[None, None], t[None, None])) for p, t in zip(pred, target)])}


def parity_edc(data, fs, ranges):
    """pyrato's Schroeder integration (normalized, dB) and its linear-regression T60."""
    import pyfar
    import pyrato

    out = {}
    for i, h in enumerate(data[k] for k in sorted(data, key=lambda k: int(k[1:]))):
        edc = pyrato.edc.schroeder_integration(pyfar.Signal(h, fs))
        edc = edc / float(edc.time[0, 0])
        out[f"edc{i}"] = 10 * np.log10(edc.time[0])
        out[f"t60_{i}"] = np.array([float(np.squeeze(pyrato.parameters.reverberation_time_linear_regression(
            edc, T=f"T{int(hi - lo)}"))) for hi, lo in ranges])
    return out


PARITY = {"mrstft": parity_mrstft, "edc": parity_edc}
