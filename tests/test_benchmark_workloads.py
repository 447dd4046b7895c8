"""The asv workloads: the plain-torch floors compute the same systems as the library."""

import torch

import flamo
from benchmarks import workloads as wl


def test_fdn_floor_is_the_library_fdn():
    """The floor takes its numbers from the builder's system and must give its response."""
    params = wl.FDNParams(6, torch.device("cpu"))
    nfft = 2**13
    with torch.no_grad():
        library = params.library_system().response(flamo.Grid(nfft, fs=wl.FS))[:, 0, 0]
        floor = wl.floor_fdn_response(params.m, params.base, *params.leaves(), nfft)
    assert floor.shape == library.shape == (nfft // 2 + 1,)
    scale = library.abs().max().item()
    torch.testing.assert_close(floor, library, rtol=0, atol=1e-4 * scale)
    # and the gains are the homogeneous decay of T60 (the one T60 -> gain formula)
    torch.testing.assert_close(params.g, flamo.functional.t60_to_gain(params.m.double(), wl.T60,
                                                                      wl.FS).float())


def test_sos_floor_is_the_library_cascade():
    sos = wl.random_sos(3)
    nfft = 2**10
    with torch.no_grad():
        library = flamo.SOS(sos).response(flamo.Grid(nfft))  # (M, 3, 3) diagonal
    floor = wl.floor_sos_response(sos, nfft)
    torch.testing.assert_close(floor.T, torch.diagonal(library, dim1=-2, dim2=-1), rtol=1e-4,
                               atol=1e-4 * library.abs().max().item())
