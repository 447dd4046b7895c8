"""Time-domain baselines on the systems of bench_fdn and bench_sos: the block FDN
(``baselines.fdn_impulse_response``) and the recursive IIR cascade (``baselines.sosfilt``),
each producing a 1 s impulse response at 48 kHz; backward through a spectral loss of its
DFT."""

import torch

from . import workloads as wl

IR_LENGTH = wl.FS  # 1 s


class _Benchmarks:
    timeout = 600

    def time_forward(self, *args):
        with torch.no_grad():
            self.run()
        wl.sync(self.device)

    def time_forward_backward(self, *args):
        self.step()

    def peakmem_forward_backward(self, device, *args):
        if device != "cpu":
            raise wl.SkipNotImplemented
        self.step()

    def track_cuda_peak_forward_backward(self, device, *args):
        if device != "cuda":
            raise wl.SkipNotImplemented
        return wl.cuda_peak_bytes(self.step, self.device)

    track_cuda_peak_forward_backward.unit = "bytes"

    def step(self):
        for t in self.leaves:
            t.grad = None
        wl.spectral_loss(torch.fft.rfft(self.run(), dim=0)).backward()  # time first
        wl.sync(self.device)


class BlockFDN(_Benchmarks):
    """baselines.fdn_impulse_response (block recursion over the shortest delay), N lines."""

    params = (wl.DEVICES, [6, 16, 64])
    param_names = ["device", "N"]

    def setup(self, device, n):
        baselines = wl.import_baselines()

        self.device = wl.prepare(device)
        self.params = wl.FDNParams(n, self.device)
        self.leaves = self.params.leaves()
        self.fdn = baselines.fdn_impulse_response

    def run(self):
        w, g, b, c = self.leaves
        m = [int(v) for v in self.params.m.tolist()]
        a = self.params.base @ torch.linalg.matrix_exp(w - w.T)
        return self.fdn(IR_LENGTH, m, a, b, c, 0.0, g=g)


class RecursiveSOS(_Benchmarks):
    """baselines.sosfilt: 8 biquads per channel run on a unit impulse (adjoint-filter
    backward)."""

    params = (wl.DEVICES, [1, 64])
    param_names = ["device", "channels"]

    def setup(self, device, channels):
        baselines = wl.import_baselines()

        self.device = wl.prepare(device)
        self.leaves = [wl.random_sos(channels, device=self.device).requires_grad_(True)]
        self.impulse = torch.zeros(IR_LENGTH, channels, device=self.device)  # (T, C)
        self.impulse[0] = 1.0
        self.sosfilt = baselines.sosfilt

    def run(self):
        return self.sosfilt(self.leaves[0], self.impulse)
