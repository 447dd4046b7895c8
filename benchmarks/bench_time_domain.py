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


# -- the library's time domain (flamo.render, flamo.Stream, response(method="time")) -----
STREAM_SECONDS = {1: 0.25, 64: 1.0, 512: 1.0}  # audio per measurement, by block size


def stream_fdn():
    """The benchmark FDN (N = 16) with an octave GEQAttenuation per line (T60 2 s .. 0.5 s)."""
    import flamo

    m = wl.fdn_delays(16)
    return wl.library_fdn(16, attenuation=flamo.GEQAttenuation(m, torch.linspace(2.0, 0.5, 10)))


class StreamRealTime:
    """flamo.Stream of a 16-line FDN with a GEQ per line at 48 kHz, fed consecutive blocks
    of ``block`` samples (float32, one thread): the real-time factor, processing time over
    audio time (below 1: faster than real time)."""

    params = ([1, 64, 512],)
    param_names = ["block"]
    timeout = 600

    def setup(self, block):
        import flamo

        wl.prepare("cpu")
        self.stream = flamo.Stream(stream_fdn(), fs=wl.FS, dtype=torch.float32)
        samples = int(STREAM_SECONDS[block] * wl.FS) // block * block
        self.blocks = list(torch.randn(samples, 1).split(block))

    def run(self):
        self.stream.reset()
        for x in self.blocks:
            self.stream(x)

    def time_stream(self, block):
        self.run()

    def track_real_time_factor(self, block):
        import time

        self.run()  # warm-up
        t0 = time.perf_counter()
        self.run()
        return (time.perf_counter() - t0) / (sum(len(x) for x in self.blocks) / wl.FS)

    track_real_time_factor.unit = "s/s"


class ResponseMethods:
    """The FDN of bench_fdn (N lines, HomogeneousAttenuation) through
    ``response(grid, method)``: a spectral-loss gradient step by the time backend, and the
    ratios, in one process, of "time" and "auto" over frequency sampling (CPU: the
    recursions run there)."""

    params = ([6, 16, 64], [2 ** 15, 2 ** 17])
    param_names = ["N", "nfft"]
    timeout = 600

    def setup(self, n, nfft):
        import flamo

        self.device = wl.prepare("cpu")
        self.system = wl.FDNParams(n, self.device).library_system()
        self.grid = flamo.Grid(nfft, fs=wl.FS)

    def step(self, method):
        self.system.zero_grad(set_to_none=True)
        wl.spectral_loss(self.system.response(self.grid, method=method)).backward()

    def time_forward_backward_time_method(self, n, nfft):
        self.step("time")

    def track_time_over_frequency(self, n, nfft):
        return (wl.median_time(lambda: self.step("time"), self.device, repeat=3)
                / wl.median_time(lambda: self.step("frequency"), self.device, repeat=3))

    def track_auto_over_best(self, n, nfft):
        times = {m: wl.median_time(lambda m=m: self.step(m), self.device, repeat=3)
                 for m in ("time", "frequency", "auto")}
        return times["auto"] / min(times["time"], times["frequency"])


class TimeMethodOverBlockFDN:
    """The library's ``impulse_response(grid, method="time")`` against the baseline block
    FDN (``baselines.fdn_impulse_response``), both exact block recursions in blocks of the
    shortest delay, on the same FDN (bench_fdn's, N lines, IR of ``seconds`` at 48 kHz):
    a squared-error gradient step of each, and their ratio measured interleaved in one
    process (the library renders the grid's nfft = next power of two samples)."""

    params = ([4, 16, 64], [1, 8])
    param_names = ["N", "seconds"]
    timeout = 600

    def setup(self, n, seconds):
        import math

        import flamo

        self.device = wl.prepare("cpu")
        baselines = wl.import_baselines()
        length = int(seconds * wl.FS)
        self.target = torch.zeros(length)
        self.system = wl.FDNParams(n, self.device).library_system()
        self.grid = flamo.Grid(nfft=2 ** math.ceil(math.log2(length)), fs=wl.FS)
        fdn = wl.FDNParams(n, self.device)
        self.leaves, self.m = fdn.leaves(), [int(v) for v in fdn.m.tolist()]
        self.base, self.fdn, self.length = fdn.base, baselines.fdn_impulse_response, length

    def library_step(self):
        self.system.zero_grad(set_to_none=True)
        ir = self.system.impulse_response(self.grid, method="time")[:self.length, 0, 0]
        ((ir - self.target) ** 2).sum().backward()

    def block_step(self):
        for t in self.leaves:
            t.grad = None
        w, g, b, c = self.leaves
        a = self.base @ torch.linalg.matrix_exp(w - w.T)
        ((self.fdn(self.length, self.m, a, b, c, 0.0, g=g) - self.target) ** 2).sum().backward()

    def time_library_step(self, n, seconds):
        self.library_step()

    def track_library_over_block(self, n, seconds):
        return wl.interleaved_ratio(self.library_step, self.block_step, self.device, repeat=5)
