"""Adapters of this project's methods (run in the project's environment, see protocol.py).

Methods
-------
``library``
    The library by frequency sampling, its default path: FDNs from
    :func:`flamo.reverb.build_fdn` (the structured loop solve: one LU per frequency, reused
    by the backward), filters from the catalogue, ``module.impulse_response(grid)`` /
    ``module(x, grid)``.
``library-time``
    The same systems by the library's time method: the exact recursion of
    :func:`flamo.render` (loops in blocks of their shortest delay, the adjoint run backward
    in time), ``impulse_response(grid, method="time")`` / ``response(grid, method="time")``;
    ``method="auto"`` picks it where it is the faster. Not for the colorless step: its
    objective is the sampled transfer function of a lossless loop, which the DFT of the
    first nfft samples of the impulse response (what the time method gives) is not.
``library-generic``
    The same systems with ``Recursion(structured_solve=False)``: the generic batched solve
    and autograd's backward (the path that also gives higher-order gradients).
``baselines-block-fdn``
    The time-domain block FDN of :mod:`baselines` (exact recursion over blocks of the
    shortest delay, autograd).
``baselines-sosfilt-scipy``, ``baselines-sosfilt-torch``
    The recursive IIR cascade of :mod:`baselines` (scipy's filter with an adjoint-filter
    backward; a block state-space recursion in torch).

Every system is built in float32 from the case's numbers; ``realize`` reads the same
parameters back in float64 from a float64 twin of the system, through the modules' own
mappings.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

import baselines
import flamo
from flamo.functional import sos_response
from flamo.optim.energy_decay import schroeder_edc, t60_from_edc
from flamo.optim.losses import feedback_sparsity, magnitude_mse, multi_resolution_stft_loss
from flamo.reverb import build_fdn, fdn_structure

from . import systems
from .protocol import Adapter

F32 = torch.float32


def _t(x, dtype=F32):
    return torch.as_tensor(np.asarray(x), dtype=dtype)


class _Library(Adapter):
    package, version = "flamo (this project)", flamo.__version__
    structured = True
    method = "frequency"  # or "time" (library-time)

    def params(self):
        return list(self.system.parameters())

    def _twin(self, raw):
        """float64 copy of the system holding the raw values ``raw``."""
        twin = copy.deepcopy(self.system).double()
        with torch.no_grad():
            for p, r in zip(twin.parameters(), raw):
                p.copy_(torch.as_tensor(r, dtype=torch.float64))
        return twin

    def _set_solve(self):
        for module in self.system.modules():
            if isinstance(module, flamo.Recursion):
                module.structured_solve = self.structured
        self.notes = ("Recursion(structured_solve=True): one LU per frequency reused by the backward"
                      if self.structured else "Recursion(structured_solve=False): generic batched solve")


def _arrays(fdn, A=None):
    """m, A, b, c of a single-input single-output FDN structure as float64 numpy arrays."""
    A = fdn.A if A is None else A
    return dict(m=fdn.m.numpy(), A=A.detach().numpy(), b=fdn.b[:, 0].detach().numpy(),
                c=fdn.c[0].detach().numpy())


class _LibraryLoop(_Library):
    """An FDN from build_fdn, its impulse response on the case's grid."""

    def _finish(self, case):
        self._set_solve()
        self.grid = flamo.Grid(nfft=case["nfft"], fs=systems.FS, alias_decay_db=systems.ALIAS_DECAY_DB)

    def forward(self):
        return self.system.impulse_response(self.grid, method=self.method)[:, 0, 0]


class LibraryFDN(_LibraryLoop):
    """fdn: build_fdn with a free matrix and learnable line gains (Interval mapping)."""

    def __init__(self, case, nums):
        super().__init__(case, nums)
        self.system = build_fdn(delays=nums["m"].tolist(), matrix="free", matrix_init=_t(nums["A"]),
                                input_gains=_t(nums["b"]), output_gains=_t(nums["c"]),
                                line_gains=_t(nums["g"]), learnable_attenuation=True, dtype=F32)
        self._finish(case)

    def realize(self, raw):
        fdn = fdn_structure(self._twin(raw), fs=systems.FS)
        return dict(_arrays(fdn), g=fdn.gains.detach().numpy())


class LibraryFDNGEQ(_LibraryLoop):
    """fdn_geq: an accurate-cascade GEQ per line (flamo.GEQ, broadband offset on), in the
    forward path (build_fdn's attenuation) or after the matrix in the feedback path."""

    def __init__(self, case, nums):
        super().__init__(case, nums)
        n = len(nums["m"])
        geq = flamo.GEQ(_t(nums["command_db"]), offset=True)
        common = dict(delays=nums["m"].tolist(), input_gains=_t(nums["b"]), output_gains=_t(nums["c"]),
                      dtype=F32)
        if case["arrangement"] == "forward":
            self.system = build_fdn(matrix="free", matrix_init=_t(nums["A"]), attenuation=geq, **common)
        else:  # FLAMO's examples: the GEQ after the matrix, as the feedback path (lossless lines)
            self.feedback = flamo.Series({"matrix": flamo.Matrix(n, kind="free", init=_t(nums["A"])),
                                          "attenuation": geq})
            self.system = build_fdn(matrix=self.feedback, **common)
        self._finish(case)

    def realize(self, raw):
        fdn = fdn_structure(self._twin(raw), fs=systems.FS)
        if self.case["arrangement"] == "forward":
            return dict(_arrays(fdn), sos=fdn.sections.detach().numpy())
        matrix, geq = fdn.feedback["matrix"], fdn.feedback["attenuation"]  # read the parts
        return dict(_arrays(fdn, matrix.matrix), sos=geq.sos_at(systems.FS).detach().numpy())


class LibraryCascade(_Library):
    """cascade: flamo.SOS (C, 8, 6), a diagonal C x C module, filtering x by frequency
    sampling on a grid of systems.cascade_nfft(T) points (no time-aliasing mitigation)."""

    def __init__(self, case, nums):
        super().__init__(case, nums)
        self.system = flamo.SOS(_t(nums["sos"]))
        self.x = _t(nums["x"]).T.contiguous()  # (T, C): time first
        self.grid = flamo.Grid(nfft=systems.cascade_nfft(case["length"]), fs=systems.FS)
        self.notes = f"nfft {self.grid.nfft}"

    def forward(self):
        if self.method == "time":
            return flamo.render(self.system, self.x).T
        return self.system(self.x, self.grid)[: self.case["length"]].T

    def realize(self, raw):
        return dict(sos=self._twin(raw).sos.detach().numpy(), x=self.nums["x"])


class LibraryColorless(_Library):
    """colorless: build_fdn (orthogonal matrix starting at A0, lossless lines), |H| on the
    grid, loss magnitude_mse(|H|, 1) + 0.2 feedback_sparsity(A), one Adam step."""

    def __init__(self, case, nums):
        super().__init__(case, nums)
        self.system = build_fdn(delays=nums["m"].tolist(), matrix="orthogonal", matrix_init=_t(nums["A"]),
                                input_gains=_t(nums["b"]), output_gains=_t(nums["c"]), dtype=F32)
        self._set_solve()
        self.grid = flamo.Grid(nfft=case["nfft"], fs=systems.FS, alias_decay_db=systems.ALIAS_DECAY_DB)
        self.matrix = fdn_structure(self.system).feedback
        self.ones = torch.ones(self.grid.M)
        self.optimizer = torch.optim.Adam(self.params(), lr=1e-3)

    def forward(self):
        return self.system.response(self.grid)[:, 0, 0].abs()

    def loss(self, output):
        return (magnitude_mse(output, self.ones)
                + systems.COLORLESS_SPARSITY_WEIGHT * feedback_sparsity(self.matrix))

    def realize(self, raw):
        return _arrays(fdn_structure(self._twin(raw), fs=systems.FS))


class LibraryFit(_Library):
    """fit: flamo.functional.sos_response of the shared parametrization systems.fit_sos."""

    def __init__(self, case, nums):
        super().__init__(case, nums)
        self.coeffs = torch.nn.Parameter(_t(nums["theta0"]))
        self.grid = flamo.Grid(nfft=case["nfft"], fs=systems.FS)

    def params(self):
        return [self.coeffs]

    def forward(self):
        return sos_response(systems.fit_sos(self.coeffs, torch), self.grid).abs()


def _generic(cls):
    return type(cls.__name__ + "Generic", (cls,), {"structured": False})


def _time(cls):
    def __init__(self, case, nums):
        cls.__init__(self, case, nums)
        self.notes = 'method="time": exact recursion (flamo.render), adjoint run backward in time'

    return type(cls.__name__ + "Time", (cls,), {"method": "time", "__init__": __init__})


# -- baselines ----------------------------------------------------------------------------
class _Baseline(Adapter):
    package, version = "baselines (this project)", flamo.__version__

    def params(self):
        return self.leaves


class BlockFDN(_Baseline):
    """fdn: baselines.fdn_impulse_response (the block recursion), leaves A, b, c, g."""

    notes = "exact time-domain recursion in blocks of the shortest delay, autograd"

    def __init__(self, case, nums):
        super().__init__(case, nums)
        self.m = [int(v) for v in nums["m"]]
        self.leaves = [_t(nums[k]).requires_grad_(True) for k in ("A", "b", "c", "g")]

    def forward(self):
        A, b, c, g = self.leaves
        return baselines.fdn_impulse_response(self.case["nfft"], self.m, A, b, c, 0.0, g=g)

    def realize(self, raw):
        return dict(m=self.nums["m"], A=raw[0], b=raw[1], c=raw[2], g=raw[3])


class _Sosfilt(_Baseline):
    backend = "scipy"

    def __init__(self, case, nums):
        super().__init__(case, nums)
        self.notes = f"baselines.sosfilt(backend={self.backend!r})"
        if self.fit:
            self.leaves = [torch.nn.Parameter(_t(nums["theta0"]))]
            self.impulse = torch.zeros(case["nfft"])
            self.impulse[0] = 1
        else:
            self.leaves = [_t(nums["sos"]).requires_grad_(True)]
            self.x = _t(nums["x"]).T.contiguous()  # (T, C): time first

    def forward(self):
        if self.fit:
            sos = systems.fit_sos(self.leaves[0], torch)
            return torch.fft.rfft(baselines.sosfilt(sos, self.impulse, backend=self.backend)).abs()
        return baselines.sosfilt(self.leaves[0], self.x, backend=self.backend).T

    def realize(self, raw):
        return dict(sos=raw[0], x=self.nums["x"])


class SosfiltTorch(_Sosfilt):
    backend = "torch"


ADAPTERS = {
    "library": {"fdn": LibraryFDN, "fdn_geq": LibraryFDNGEQ, "cascade": LibraryCascade,
                "colorless": LibraryColorless, "fit": LibraryFit},
    "library-time": {"fdn": _time(LibraryFDN), "fdn_geq": _time(LibraryFDNGEQ),
                     "cascade": _time(LibraryCascade)},
    "library-generic": {"fdn": _generic(LibraryFDN), "fdn_geq": _generic(LibraryFDNGEQ),
                        "colorless": _generic(LibraryColorless)},
    "baselines-block-fdn": {"fdn": BlockFDN},
    "baselines-sosfilt-scipy": {"cascade": _Sosfilt, "fit": _Sosfilt},
    "baselines-sosfilt-torch": {"cascade": SosfiltTorch, "fit": SosfiltTorch},
}


# -- metric and loss parity (float64) ---------------------------------------------------
def parity_mrstft(data, fft_sizes):
    """The project's multi-resolution STFT loss of each (pred, target) pair, (P,)."""
    pred, target = torch.as_tensor(data["pred"]), torch.as_tensor(data["target"])
    return {"loss": np.array([float(multi_resolution_stft_loss(p, t, fft_sizes=tuple(fft_sizes)))
                              for p, t in zip(pred, target)])}


def parity_edc(data, fs, ranges):
    """The project's normalized Schroeder EDC (dB) and T60 per decay range of each RIR."""
    out = {}
    for i, h in enumerate(data[k] for k in sorted(data, key=lambda k: int(k[1:]))):
        edc = schroeder_edc(torch.as_tensor(h), db=True)
        out[f"edc{i}"] = edc.numpy()
        out[f"t60_{i}"] = np.array([float(t60_from_edc(edc, fs, hi, lo)) for hi, lo in ranges])
    return out


PARITY = {"mrstft": parity_mrstft, "edc": parity_edc}
