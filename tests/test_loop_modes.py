"""Modal decomposition of any system whose loop is a Recursion (flamo.reverb.loop_modes),
against the eigenvalues and residues of state-space realizations built here, step by step,
from the difference equations of the same small systems (delays <= 8)."""

import numpy as np
import pytest
import scipy.linalg
import torch

import flamo
from flamo.reverb import build_fdn, loop_modes, modal_decomposition

FS = 48000.0
F64 = torch.float64
DELAYS = [3, 5]


def state_space(step, states, inputs=1):
    """(A, B, C, D) of the linear map (state, x) -> (next state, y) given by ``step``."""
    basis = np.eye(states + inputs)
    columns = [step(e[:states], e[states:]) for e in basis]
    nxt = np.stack([c[0] for c in columns], 1)
    out = np.stack([c[1] for c in columns], 1)
    return nxt[:, :states], nxt[:, states:], out[:, :states], out[:, states:]


def modes_of(A, B, C, D):
    """Eigenvalues and residues rho_i (H(z) = D + sum rho_i / (z - lambda_i)) of a SISO
    state-space system, from its right and left eigenvectors."""
    lam, left, right = scipy.linalg.eig(A, left=True, right=True)
    rho = (C @ right)[0] * (left.conj().T @ B)[:, 0] / np.einsum("ij,ij->j", left.conj(), right)
    return lam, rho


def biquad_tdf2(section, q, z):
    """One transposed-direct-form-II step of a normalized section: (y, new z)."""
    b0, b1, b2, _, a1, a2 = section
    y = b0 * q + z[0]
    return y, np.array([b1 * q - a1 * y + z[1], b2 * q - a2 * y])


def delay_step(lines, w):
    """Shift registers: lines[i] holds x[n-1] .. x[n-m_i]; returns (outputs, new lines)."""
    return np.array([s[-1] for s in lines]), [np.concatenate([[wi], s[:-1]]) for s, wi in zip(lines, w)]


def split(state, sizes):
    out, i = [], 0
    for n in sizes:
        out.append(state[i:i + n])
        i += n
    return out


def matched(poles, reference):
    """Index into ``poles`` of the pole nearest to each reference pole (a permutation)."""
    index = np.array([np.argmin(np.abs(poles - p)) for p in reference])
    assert np.unique(index).size == index.size
    return index


def sections_of(module):
    s = module.sos_at(FS).detach().numpy()[:, 0, :]
    return s / s[:, 3:4]


def system_filter_in_forward(seed=0):
    """Series(b, Parallel(Recursion(Series(Delay, Biquad), Gain 2x2), direct), c)."""
    rng = np.random.default_rng(seed)
    biquad = flamo.Biquad("lowpass", [4000.0, 9000.0], q=[0.8, 1.3], learnable=False).double()
    A = 0.6 * np.linalg.qr(rng.normal(size=(2, 2)))[0] + 0.1 * rng.normal(size=(2, 2))
    b, c, d = rng.normal(size=(2, 1)), rng.normal(size=(1, 2)), np.diag(rng.normal(size=2))
    loop = flamo.Recursion(flamo.Series(flamo.Delay([float(m) for m in DELAYS]), biquad), flamo.Gain(A))
    system = flamo.Series(flamo.Gain(b), flamo.Parallel(loop, flamo.Gain(d)), flamo.Gain(c)).double()
    sos = sections_of(biquad)

    def step(state, x):
        *lines, z0, z1 = split(state, DELAYS + [2, 2])
        q, lines = delay_step(lines, np.zeros(2))  # the delay outputs depend on the state only
        y0, z0 = biquad_tdf2(sos[0], q[0], z0)
        y1, z1 = biquad_tdf2(sos[1], q[1], z1)
        y = np.array([y0, y1])
        u = b[:, 0] * x[0]
        w = u + A @ y  # loop input enters the delay lines
        lines = [np.concatenate([[wi], s[1:]]) for s, wi in zip(lines, w)]
        return np.concatenate([*lines, z0, z1]), c @ (y + d @ u)

    return system, state_space(step, sum(DELAYS) + 4)


def system_filter_in_feedback(seed=1):
    """Recursion(Delay, Series(Gain 2x2, Biquad)) between input and output gains."""
    rng = np.random.default_rng(seed)
    biquad = flamo.Biquad("peak", [2000.0, 7000.0], q=[1.0, 2.0], gain_db=[-3.0, 2.0], learnable=False).double()
    A = 0.5 * np.linalg.qr(rng.normal(size=(2, 2)))[0]
    b, c = rng.normal(size=(2, 1)), rng.normal(size=(1, 2))
    loop = flamo.Recursion(flamo.Delay([float(m) for m in DELAYS]), flamo.Series(flamo.Gain(A), biquad))
    system = flamo.Series(flamo.Gain(b), loop, flamo.Gain(c)).double()
    sos = sections_of(biquad)

    def step(state, x):
        *lines, z0, z1 = split(state, DELAYS + [2, 2])
        y, lines = delay_step(lines, np.zeros(2))
        v = A @ y
        r0, z0 = biquad_tdf2(sos[0], v[0], z0)
        r1, z1 = biquad_tdf2(sos[1], v[1], z1)
        w = b[:, 0] * x[0] + np.array([r0, r1])
        lines = [np.concatenate([[wi], s[1:]]) for s, wi in zip(lines, w)]
        return np.concatenate([*lines, z0, z1]), c @ y

    return system, state_space(step, sum(DELAYS) + 4)


@pytest.mark.parametrize("build", [system_filter_in_forward, system_filter_in_feedback])
def test_poles_and_residues_match_a_state_space_realization(build):
    system, (A, B, C, D) = build()
    lam, rho = modes_of(A, B, C, D)
    modes = loop_modes(system, fs=FS)
    assert modes.converged and modes.poles.size == lam.size == sum(DELAYS) + 4
    index = matched(modes.poles, lam)
    np.testing.assert_allclose(modes.poles[index], lam, atol=1e-10)
    np.testing.assert_allclose(modes.residues[index], rho, atol=1e-9 * np.abs(rho).max())
    assert modes.direct == pytest.approx(D[0, 0], abs=1e-12)
    # and the modes rebuild the impulse response of the system
    h = system.impulse_response(flamo.Grid(nfft=256, fs=FS, alias_decay_db=120.0, dtype=F64))
    np.testing.assert_allclose(modes.impulse_response(256), h[:, 0, 0].detach().numpy(), atol=1e-9)


def test_an_fdn_agrees_with_the_closed_form_decomposition():
    """Per-line gains: modal_decomposition takes fdn_modes' closed form; loop_modes, which
    only probes the loop, finds the same poles and residues."""
    fdn = build_fdn(delays=[3, 5, 7, 8], attenuation=flamo.Gain(torch.tensor([0.9, 0.8, 0.85, 0.7], dtype=F64)),
                    input_gains=1.0, output_gains=1.0, direct_gain=0.3, seed=1).double()
    closed, probed = modal_decomposition(fdn), loop_modes(fdn)
    index = matched(probed.poles, closed.poles)
    np.testing.assert_allclose(probed.poles[index], closed.poles, atol=1e-11)
    np.testing.assert_allclose(probed.residues[index], closed.residues, atol=1e-10)
    assert probed.direct == closed.direct


def test_modal_decomposition_takes_filters_in_the_loop():
    attenuation = flamo.Series(flamo.Gain(torch.tensor([0.9, 0.8], dtype=F64)),
                               flamo.Biquad("lowpass", [3000.0, 8000.0], learnable=False).double())
    fdn = build_fdn(delays=[4, 7], attenuation=attenuation, input_gains=1.0, output_gains=1.0, seed=0).double()
    modes = modal_decomposition(fdn, fs=FS)
    assert modes.converged and modes.poles.size == 4 + 7 + 2 * 2  # delays + biquad states
    z = np.exp(1j * np.linspace(0.05, 3.1, 9))
    truth = fdn.probe(torch.as_tensor(z), fs=FS).detach().numpy()[:, 0, 0]
    np.testing.assert_allclose(modes.transfer(z), truth, atol=1e-10 * np.abs(truth).max())


class _Opaque(flamo.DSPModule):
    shape = (1, 1)


def test_out_of_scope_systems_are_rejected_clearly():
    loop = flamo.Recursion(flamo.Delay([3.0]), flamo.Gain([0.5]))
    with pytest.raises(ValueError, match="exactly one flamo.Recursion.*got 0"):
        loop_modes(flamo.Gain([[1.0]]))
    with pytest.raises(ValueError, match="exactly one flamo.Recursion.*got 2"):
        loop_modes(flamo.Series(loop, flamo.Recursion(flamo.Delay([2.0]), flamo.Gain([0.3]))))
    with pytest.raises(ValueError, match="outside the loop must be static gains.*Delay 'pre'"):
        loop_modes(flamo.Series({"pre": flamo.Delay([2.0]), "loop": loop}))
    with pytest.raises(ValueError, match="nested loops"):
        loop_modes(flamo.Recursion(flamo.Series(flamo.Delay([3.0]), loop), flamo.Gain([0.2])))
    with pytest.raises(ValueError, match="without a rational.*_Opaque has no time-domain realization"):
        loop_modes(flamo.Recursion(flamo.Series(flamo.Delay([3.0]), _Opaque()), flamo.Gain([0.2])))
    with pytest.raises(ValueError, match="one input and one output.*\\(2, 2\\)"):
        loop_modes(flamo.Recursion(flamo.Delay([3.0, 4.0]), flamo.Matrix(2, seed=0)))
    with pytest.raises(TypeError, match="DSPModule"):
        loop_modes("fdn")
