"""Grouped FDN (coupled rooms): each uncoupled room decays at its T60; coupling gives a double slope."""

import math

import numpy as np
import pytest
import torch

import flamo
from flamo.optim import schroeder_edc, t60_from_edc
from flamo.reverb import GFDNConfig, build_gfdn, coupled_matrix, fdn_structure

FS = 8000.0
GROUPS = [[101, 127, 149, 173], [211, 239, 263, 293]]
T60 = [0.3, 1.5]


def _edc_db(coupling, room):
    """EDC of a source and a receiver in ``room`` (gains only on its lines)."""
    sel = np.zeros(8)
    sel[GFDNConfig(group_delays=GROUPS).groups()[room]] = 0.5
    system = build_gfdn(group_delays=GROUPS, t60=T60, coupling=coupling, seed=3, input_gains=sel,
                        output_gains=sel, dtype=torch.float64)
    h = system.impulse_response(flamo.Grid(nfft=2**15, fs=FS, dtype=torch.float64))[:, 0, 0]
    return schroeder_edc(h.detach(), db=True)


@pytest.mark.parametrize("room", [0, 1])
def test_uncoupled_rooms_decay_at_their_own_t60(room):
    edc = _edc_db(0.0, room)
    for start, stop in ((-10.0, -40.0), (-30.0, -60.0)):  # a single slope: early and late agree
        t60 = float(t60_from_edc(edc, FS, start, stop))
        assert abs(t60 - T60[room]) < 0.03 * T60[room], (start, t60)


def test_coupling_gives_a_double_slope_decay():
    edc = _edc_db(0.1, room=0)  # source and receiver in the short room, coupled to the long one
    early = float(t60_from_edc(edc, FS, -5.0, -20.0))
    late = float(t60_from_edc(edc, FS, -45.0, -65.0))
    assert abs(early - T60[0]) < 0.15 * T60[0], early  # the direct decay of the short room
    assert late > 3 * early and late < 1.05 * T60[1], (early, late)  # then the long room's tail
    uncoupled = _edc_db(0.0, room=0)
    ratio = float(t60_from_edc(uncoupled, FS, -45.0, -65.0) / t60_from_edc(uncoupled, FS, -5.0, -20.0))
    assert abs(ratio - 1) < 0.1  # without coupling there is one slope


def test_coupled_matrix_is_orthogonal_and_block_diagonal_without_coupling():
    q1, q2 = (torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n)))[0]
              for n in (3, 3))
    for theta in (0.0, 0.3, math.pi / 2):
        a = coupled_matrix([q1, q2], theta, seed=0)
        assert (a @ a.T - torch.eye(6, dtype=torch.float64)).abs().max() < 1e-12
        off = a[:3, 3:].norm() ** 2 / 3  # energy per line crossing rooms on one pass
        assert abs(float(off) - math.sin(theta) ** 2) < 1e-12  # equal groups: sin^2 theta
    assert torch.equal(coupled_matrix([q1, q2], 0.0)[:3, 3:], torch.zeros(3, 3, dtype=torch.float64))
    system = build_gfdn(group_delays=[[5, 7], [11, 13, 17]], t60=[0.5, 1.0], coupling=0.2, seed=1,
                        dtype=torch.float64)
    fdn = fdn_structure(system, fs=FS)  # the builder's layout, read back by the one reader
    assert fdn.A.shape == (5, 5) and fdn.m.tolist() == [5.0, 7.0, 11.0, 13.0, 17.0]
    assert (fdn.A @ fdn.A.T - torch.eye(5, dtype=torch.float64)).abs().max() < 1e-12
    preset = flamo.from_config(system.config())
    grid = flamo.Grid(nfft=512, fs=FS, alias_decay_db=60, dtype=torch.float64)
    torch.testing.assert_close(preset.response(grid), system.response(grid))


def test_gfdn_errors():
    with pytest.raises(ValueError, match=r"coupling must be an angle in \[0, pi / 2\]"):
        build_gfdn(group_delays=GROUPS, coupling=2.0)
    with pytest.raises(ValueError, match="one value or one per group"):
        build_gfdn(group_delays=GROUPS, t60=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="non-empty list of non-empty lists"):
        build_gfdn(group_delays=[[5, 7], []])
