"""Feedback delay network evaluated by frequency sampling: the library against its floor.

Workload (``workloads.library_fdn``, from the library's builder): H(z) = c^T (I - D(z) A)^-1
D(z) b, N lines, D(z) = diag(g_i z^-m_i), A orthogonal (learnable through expm of a skew
matrix), evaluated at nfft // 2 + 1 frequencies. "forward" is the response under
``torch.no_grad``; "forward_backward" adds a spectral loss and its backward pass to the
learnable W, g (the library learns the T60 that sets g), b, c.
"""

import math
import time

import torch

from .workloads import (ARRANGEMENTS, DEVICES, FS, SOS_SECTIONS, T60, FDNParams,
                        SkipNotImplemented, arrange_fdn, cuda_peak_bytes, fdn_delays,
                        floor_fdn_response, host_peak_bytes, interleaved_ratio, library_fdn, prepare,
                        spectral_loss, sync)

SIZES = [6, 16, 64]
NFFTS = [2 ** 15, 2 ** 17]
#: The floor at N = 64, nfft = 2^17 needs ~9 GB and about a minute per step on one CPU
#: thread; it is skipped on CPU to keep a full `asv run --quick` within minutes (the
#: library case still runs there, and the floor runs on CUDA).
FLOOR_SKIP = [("cpu", 64, 2 ** 17)]


class _Library:
    """Builds the library FDN in setup; shared by the time/memory classes below."""

    def setup(self, device, n, nfft):
        import flamo

        self.device = prepare(device)
        self.system = FDNParams(n, self.device).library_system()
        self.grid = flamo.Grid(nfft, fs=FS, device=self.device)

    def forward(self):
        with torch.no_grad():
            self.system.response(self.grid)
        sync(self.device)

    def step(self):
        self.system.zero_grad(set_to_none=True)
        spectral_loss(self.system.response(self.grid)).backward()
        sync(self.device)


class _Floor:
    """The same FDN in plain torch (see workloads.floor_fdn_response)."""

    def setup(self, device, n, nfft):
        self.device = prepare(device)
        self.params = FDNParams(n, self.device)
        self.leaves = self.params.leaves()
        self.nfft = nfft

    def forward(self):
        with torch.no_grad():
            floor_fdn_response(self.params.m, self.params.base, *self.leaves, self.nfft)
        sync(self.device)

    def step(self):
        for t in self.leaves:
            t.grad = None
        spectral_loss(floor_fdn_response(self.params.m, self.params.base, *self.leaves,
                                         self.nfft)).backward()
        sync(self.device)


class _Timing:
    params = (DEVICES, SIZES, NFFTS)
    param_names = ["device", "N", "nfft"]
    timeout = 600

    def time_forward(self, device, n, nfft):
        self.forward()

    def time_forward_backward(self, device, n, nfft):
        self.step()


class _Memory:
    """Peak host memory (CPU) and peak CUDA memory (GPU) of one forward + backward step."""

    params = (DEVICES, SIZES, NFFTS)
    param_names = ["device", "N", "nfft"]
    timeout = 600

    def peakmem_forward_backward(self, device, n, nfft):
        if device != "cpu":  # process RSS says nothing about GPU memory: see track_cuda_peak
            raise SkipNotImplemented
        self.step()

    def track_cuda_peak_forward_backward(self, device, n, nfft):
        if device != "cuda":
            raise SkipNotImplemented
        return cuda_peak_bytes(self.step, self.device)

    track_cuda_peak_forward_backward.unit = "bytes"


class FDNTime(_Library, _Timing):
    """Library FDN: time of the response, and of response + spectral loss + backward."""


class FDNFloorTime(_Floor, _Timing):
    """Plain-torch floor of the same FDN."""

    skip_params = FLOOR_SKIP


class FDNMemory(_Library, _Memory):
    """Library FDN: peak memory of one forward + backward step."""


class FDNFloorMemory(_Floor, _Memory):
    """Plain-torch floor: peak memory of one forward + backward step."""

    skip_params = FLOOR_SKIP


class FDNOverFloor:
    """Library / floor ratios of one forward + backward step, both measured in this process
    (time: median of 5 rounds' ratios, each round timing both back to back; peak memory
    above the resident memory before the call). Below 1 means the library beats the
    plain-torch formulation."""

    params = (DEVICES, [16], NFFTS)
    param_names = ["device", "N", "nfft"]
    timeout = 600

    def setup(self, device, n, nfft):
        self.library, self.floor = _Library(), _Floor()
        self.library.setup(device, n, nfft)
        self.floor.setup(device, n, nfft)
        self.device = self.library.device

    def track_time_ratio(self, device, n, nfft):
        return interleaved_ratio(self.library.step, self.floor.step, self.device)

    track_time_ratio.unit = "library/floor"

    def track_peakmem_ratio(self, device, n, nfft):
        if self.device.type == "cuda":
            return (cuda_peak_bytes(self.library.step, self.device)
                    / cuda_peak_bytes(self.floor.step, self.device))
        return host_peak_bytes(self.library.step) / host_peak_bytes(self.floor.step)

    track_peakmem_ratio.unit = "library/floor"


def attenuation_filters(kind: str, n: int):
    """The N x N per-line attenuation module of the filtered benchmark FDN. ``kind``
    "geq": an octave GEQAttenuation (T60 2 s .. 0.5 s); "sos": a learnable SOS of 8 peak
    filters per line (63 Hz .. 8 kHz, Q = 1, -1 .. -3 dB, so |H_i| <= g_i < 1) times the line
    gain g_i."""
    import flamo
    from flamo.functional import biquad, t60_to_gain

    m = fdn_delays(n)
    if kind == "geq":
        t60 = torch.linspace(2.0, 0.5, 10)  # seconds, per octave band (31.25 Hz .. 16 kHz)
        return flamo.GEQAttenuation(m, t60)
    f64 = dict(dtype=torch.float64)
    freq = torch.logspace(math.log10(63.0), math.log10(8000.0), SOS_SECTIONS, **f64)
    gen = torch.Generator().manual_seed(0)
    gain_db = -1.0 - 2.0 * torch.rand(n, SOS_SECTIONS, generator=gen, **f64)
    sos = biquad("peak", freq.expand(n, -1), torch.ones(n, SOS_SECTIONS, **f64), gain_db, FS)
    sos[:, 0, :3] *= t60_to_gain(m.double(), T60, FS).unsqueeze(-1)
    return flamo.SOS(sos.float())


class _WithAttenuation(_Library):
    """The same FDN with an attenuation filter per line (:func:`attenuation_filters`)
    instead of the gains g. ``arrangement`` places the filters
    (:func:`workloads.arrange_fdn`): in the forward path after the delays (loop matrix
    I - diag(z^-m H(z)) A), or in the feedback path before (I - diag(z^-m) A diag(H(z))) or
    after the matrix (I - diag(z^-m H(z)) A, written the way FLAMO's own examples write it)."""

    def setup(self, device, kind, arrangement, n, nfft):
        import flamo

        self.device = prepare(device)
        filters = attenuation_filters(kind, n)
        self.system = arrange_fdn(library_fdn(n, attenuation=filters), arrangement).to(self.device)
        self.grid = flamo.Grid(nfft, fs=FS, device=self.device)


class FilterAlone(_Library):
    """The attenuation filters alone (:func:`attenuation_filters`): their per-line response
    on the grid, (M, N) as the loop receives it (``structured_response``: the public
    ``response`` would return the dense (M, N, N) diagonal matrix), a loss on it and the
    backward pass to their parameters, the part of a filtered FDN's step that the plain FDN
    does not have."""

    def setup(self, device, kind, n, nfft):
        import flamo

        self.device = prepare(device)
        self.system = attenuation_filters(kind, n).to(self.device)
        self.grid = flamo.Grid(nfft, fs=FS, device=self.device)

    def step(self):
        self.system.zero_grad(set_to_none=True)
        spectral_loss(self.system.structured_response(self.grid).data).backward()
        sync(self.device)


class FDNAttenuationOverPlain:
    """FDN with an attenuation filter per line in the loop (a GEQ, or 8 biquads), placed as
    ``arrangement`` says, against the plain FDN of the same N and nfft (both the library):
    forward + backward time of the former, and the ratio of the two measured in one process.
    ``arrangement`` was added after the
    results of the first commits were saved: asv matches saved results by the whole
    parameter tuple, so those older results (the "forward" case) show as a separate series."""

    params = (DEVICES, ["geq", "sos"], list(ARRANGEMENTS), [16], [2 ** 17])
    param_names = ["device", "filter", "arrangement", "N", "nfft"]
    timeout = 600

    def setup(self, device, kind, arrangement, n, nfft):
        self.filtered, self.plain = _WithAttenuation(), _Library()
        self.filtered.setup(device, kind, arrangement, n, nfft)
        self.plain.setup(device, n, nfft)
        self.device = self.plain.device

    def time_forward_backward(self, device, kind, arrangement, n, nfft):
        self.filtered.step()

    def track_time_ratio(self, device, kind, arrangement, n, nfft):
        return interleaved_ratio(self.filtered.step, self.plain.step, self.device)

    track_time_ratio.unit = "with filters/plain"


class HouseholderFDN:
    """The benchmark FDN with a learnable Householder feedback matrix (``matrix="householder"``:
    its loop takes the Sherman-Morrison solve, O(N) per frequency) against the same FDN with
    the same matrix values as a ``kind="free"`` Matrix (the LU structured path, O(N^3)) and
    against the plain-torch floor of :class:`FDNOverFloor` (a dense ``torch.linalg.solve``
    of the same size; its cost does not depend on the matrix's values): forward + backward
    time and interleaved ratios, one process."""

    params = (DEVICES, [16, 64], [2 ** 17])
    param_names = ["device", "N", "nfft"]
    timeout = 900

    def setup(self, device, n, nfft):
        import flamo

        self.rank_one, self.lu = _Library(), _Library()
        for case in (self.rank_one, self.lu):
            case.setup(device, n, nfft)
            case.system = library_fdn(n, matrix="householder").to(case.device)
        loop = self.lu.system["loop"]
        loop.feedback_path = flamo.Matrix(n, kind="free", init=loop.feedback_path.matrix.detach()).to(self.lu.device)
        self.device = self.rank_one.device
        self.floor = None
        if (device, n, nfft) not in FLOOR_SKIP:
            self.floor = _Floor()
            self.floor.setup(device, n, nfft)

    def time_forward_backward(self, device, n, nfft):
        self.rank_one.step()

    def track_time_ratio_lu(self, device, n, nfft):
        return interleaved_ratio(self.rank_one.step, self.lu.step, self.device)

    track_time_ratio_lu.unit = "Sherman-Morrison/LU"

    def track_time_ratio_floor(self, device, n, nfft):
        if self.floor is None:
            raise SkipNotImplemented
        return interleaved_ratio(self.rank_one.step, self.floor.step, self.device)

    track_time_ratio_floor.unit = "Sherman-Morrison/floor"


class LoopCheckCost:
    """Cost of the loop checks of :class:`flamo.Recursion` (singular pivots and the pole count
    from det(I - F B), read off the LU factors of the solve; one host synchronization): time
    of the library FDN with ``check=True`` over the same system with ``check=False``, forward
    (no_grad) and forward + backward, medians of 7 calls of each, alternated call by call in
    this process after one warm-up each."""

    params = (DEVICES, [6, 16], NFFTS)
    param_names = ["device", "N", "nfft"]
    timeout = 600

    def setup(self, device, n, nfft):
        from flamo.reverb import find_recursions

        self.library = _Library()
        self.library.setup(device, n, nfft)
        (self.loop,) = find_recursions(self.library.system)

    def _ratio(self, fn):
        times = {True: [], False: []}
        for rep in range(8):
            for check in (True, False):
                self.loop.check = check
                t0 = time.perf_counter()
                fn()
                if rep:  # the first round warms up both
                    times[check].append(time.perf_counter() - t0)
        self.loop.check = True
        median = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
        return median(times[True]) / median(times[False])

    def track_time_ratio_forward(self, device, n, nfft):
        return self._ratio(self.library.forward)

    track_time_ratio_forward.unit = "checked/unchecked"

    def track_time_ratio_forward_backward(self, device, n, nfft):
        return self._ratio(self.library.step)

    track_time_ratio_forward_backward.unit = "checked/unchecked"
