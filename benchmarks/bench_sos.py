"""Cascade of 8 biquads sampled at nfft = 2^16: the library against a plain complex64
product of section responses (the floor)."""

import torch

from . import workloads as wl

CHANNELS = [1, 64]


class _Library:
    def setup(self, device, channels):
        import flamo

        self.device = wl.prepare(device)
        sos = wl.random_sos(channels)
        # one cascade -> a 1 x 1 module; one cascade per channel -> a diagonal module
        self.module = flamo.SOS(sos[0] if channels == 1 else sos).to(self.device)
        self.grid = flamo.Grid(wl.SOS_NFFT, device=self.device)

    def _response(self):
        # The internal response: (M, 1, 1) or the (M, channels) diagonal, never the dense
        # (M, channels, channels) embedding that response(grid) returns.
        return self.module.structured_response(self.grid).data

    def forward(self):
        with torch.no_grad():
            self._response()
        wl.sync(self.device)

    def step(self):
        self.module.zero_grad(set_to_none=True)
        wl.spectral_loss(self._response()).backward()
        wl.sync(self.device)


class _Floor:
    def setup(self, device, channels):
        self.device = wl.prepare(device)
        self.sos = wl.random_sos(channels, device=self.device).requires_grad_(True)

    def forward(self):
        with torch.no_grad():
            wl.floor_sos_response(self.sos, wl.SOS_NFFT)
        wl.sync(self.device)

    def step(self):
        self.sos.grad = None
        wl.spectral_loss(wl.floor_sos_response(self.sos, wl.SOS_NFFT)).backward()
        wl.sync(self.device)


class _Benchmarks:
    params = (wl.DEVICES, CHANNELS)
    param_names = ["device", "channels"]

    def time_forward(self, device, channels):
        self.forward()

    def time_forward_backward(self, device, channels):
        self.step()

    def peakmem_forward_backward(self, device, channels):
        if device != "cpu":
            raise wl.SkipNotImplemented
        self.step()

    def track_cuda_peak_forward_backward(self, device, channels):
        if device != "cuda":
            raise wl.SkipNotImplemented
        return wl.cuda_peak_bytes(self.step, self.device)

    track_cuda_peak_forward_backward.unit = "bytes"


class SOSCascade(_Library, _Benchmarks):
    """flamo.SOS, 8 sections per channel."""


class SOSCascadeFloor(_Floor, _Benchmarks):
    """Plain complex64 product of the same sections' responses."""


class SOSOverFloor:
    """Library / floor time ratio (medians of 5 interleaved calls, one process)."""

    params = (wl.DEVICES, CHANNELS)
    param_names = ["device", "channels"]

    def setup(self, device, channels):
        self.library, self.floor = _Library(), _Floor()
        self.library.setup(device, channels)
        self.floor.setup(device, channels)
        self.device = self.library.device

    def track_time_ratio_forward(self, device, channels):
        return (wl.median_time(self.library.forward, self.device)
                / wl.median_time(self.floor.forward, self.device))

    track_time_ratio_forward.unit = "library/floor"

    def track_time_ratio_forward_backward(self, device, channels):
        return (wl.median_time(self.library.step, self.device)
                / wl.median_time(self.floor.step, self.device))

    track_time_ratio_forward_backward.unit = "library/floor"
