"""The asv workloads: the plain-torch floors compute the same systems as the library."""

import pytest
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


def test_arrangements_are_the_same_loop_rewritten():
    """Each arrangement of the filtered benchmark FDN is the loop its name says, checked
    against a dense solve per bin: forward (I - z^-m H A)^-1 z^-m H b, feedback_after
    (I - z^-m H A)^-1 z^-m b, feedback_before (I - z^-m A H)^-1 z^-m b."""
    from flamo.reverb import build_fdn

    sos = torch.cat([0.4 * torch.rand(4, 2, 3, dtype=torch.float64),
                     torch.tensor([1.0, -0.9, 0.5], dtype=torch.float64).expand(4, 2, 3)], -1)
    system = build_fdn(delays=[3, 5, 7, 11], attenuation=flamo.SOS(sos), seed=0, dtype=torch.float64)
    grid = flamo.Grid(2**6, fs=wl.FS, alias_decay_db=20, dtype=torch.float64)
    with torch.no_grad():
        out = {a: wl.arrange_fdn(system, a).response(grid) for a in wl.ARRANGEMENTS}
        loop = system["loop"]
        z_m = loop.forward_path["delays"].response(grid)
        h = loop.forward_path["attenuation"].response(grid)
        a = loop.feedback_path.response(grid)
        b, c = system["input"].response(grid), system["output"].response(grid)
        eye = torch.eye(4, dtype=a.dtype)
        fwd = c @ torch.linalg.solve(eye - z_m @ h @ a, z_m @ h @ b)
        after = c @ torch.linalg.solve(eye - z_m @ h @ a, z_m @ b)
        before = c @ torch.linalg.solve(eye - z_m @ a @ h, z_m @ b)
    for name, ref in (("forward", fwd), ("feedback_after", after), ("feedback_before", before)):
        torch.testing.assert_close(out[name], ref)
    assert (after - before).abs().max() > 1e-2 * after.abs().max()  # the loops differ
    with pytest.raises(ValueError, match="arrangement must be one of"):
        wl.arrange_fdn(system, "sideways")
