"""The colorless-FDN protocols of the experiments: minibatches, early stopping, resume, the
DAFx 2023 loss terms against the released model written out."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

import flamo
from experiments import colorless_dafx23, colorless_fdn
from experiments.colorless_common import histogram
from experiments.tasks import TaskContext
from flamo.reverb import fdn_structure, line_outputs, published_colorless_fdn

SMALL = dataclasses.replace(colorless_fdn.Config.quick(), delay_sets=(("tiny", (7, 11, 13, 17)),),
                            ablation_set="tiny", points=2400, batch=400, epochs=3, ir_seconds=0.05,
                            energy_points=200, patience=1, min_delta=1e-9, figure_band_hz=(1e4, 1.25e4))


def test_minibatches_shuffle_the_training_frequencies_every_epoch():
    omega = torch.arange(1000, dtype=torch.float64) * math.pi / 1000
    batches = colorless_fdn.FrequencyBatches(omega, 300, seed=3, dtype=torch.float64, device="cpu")
    assert batches.steps_per_epoch == 3  # the last partial batch is dropped
    angles = lambda step: torch.angle(batches.points(step).z).abs()  # noqa: E731
    epoch0 = torch.cat([angles(k) for k in range(3)])
    assert epoch0.numel() == 900 and torch.unique(epoch0).numel() == 900
    assert not torch.equal(angles(0), angles(3))  # a new shuffle in epoch 1
    again = colorless_fdn.FrequencyBatches(omega, 300, seed=3, dtype=torch.float64, device="cpu")
    torch.testing.assert_close(torch.angle(again.points(4).z), torch.angle(batches.points(4).z))
    with pytest.raises(ValueError, match="no batch"):
        colorless_fdn.FrequencyBatches(omega[:10], 300, 0, torch.float64, "cpu")


def test_journal_early_stopping_rule(tmp_path):
    """Stop once the validation loss changed by <= min_delta in `patience` consecutive epochs
    (the released trainer's rule), counting from the second epoch."""
    monitor = colorless_fdn.JournalMonitor(tmp_path / "m.json", 1, None, 1e-4, 2)
    for values, stop in (([1.0, 0.5], False), ([1.0, 0.99995, 0.9999], True),
                         ([1.0, 0.99995, 0.9, 0.89995], False), ([0.5, 0.5, 0.49, 0.49, 0.49], True)):
        monitor.rows = [{"epoch": i + 1, "valid_total": v} for i, v in enumerate(values)]
        assert monitor.converged() is stop, values


def _tctx(work_dir):
    return TaskContext(key="tiny/alpha1/trial0", seed=0, run_seed=0, device=torch.device("cpu"),
                       dtype=torch.float64, _work_dir=work_dir)


def test_an_interrupted_trial_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    whole = colorless_fdn.run_trial(SMALL, _tctx(tmp_path / "a"), "tiny", (7, 11, 13, 17), 1.0, 0)
    calls = {"n": 0}
    original = colorless_fdn.JournalMonitor.__call__

    def killed_in_epoch_two(self, state):
        calls["n"] += 1
        if calls["n"] == 2 * self.steps_per_epoch - 3:
            raise KeyboardInterrupt
        original(self, state)

    monkeypatch.setattr(colorless_fdn.JournalMonitor, "__call__", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        colorless_fdn.run_trial(SMALL, _tctx(tmp_path / "b"), "tiny", (7, 11, 13, 17), 1.0, 0)
    assert (tmp_path / "b" / "last.pt").is_file()  # the checkpoint in the task's work folder
    monkeypatch.setattr(colorless_fdn.JournalMonitor, "__call__", original)
    resumed = colorless_fdn.run_trial(SMALL, _tctx(tmp_path / "b"), "tiny", (7, 11, 13, 17), 1.0, 0)
    assert resumed["epochs_run"] == whole["epochs_run"]
    assert resumed["final"]["residues_db"] == whole["final"]["residues_db"]
    assert [e["valid_total"] for e in resumed["epochs"]] == [e["valid_total"] for e in whole["epochs"]]


def _released_dafx_losses(system, sizes, max_points, ir_length):
    """The released DAFx 2023 loss, written out from its definition: zero-padded grids of
    linspace(0, pi, n) points, the released model H_i(z) = c_i [(diag(z^m) - A Gamma)^-1 b]_i
    at every entry (z = 0 included), sum_i mean((|H_i| - 1)^p), p = 2 below 1 and 4 above,
    and ||h||_2 / ||h||_1 of irfft(sum_i H_i, n = ir_length) of the padded row."""
    s = fdn_structure(system)
    A, b, g, m = s.A.detach(), s.b[:, 0].detach(), s.gains.detach(), s.m.double()
    c = s.output.raw.detach()[0]  # the released code's c
    spectral, temporal = [], []
    for n in sizes:
        z = torch.zeros(max_points, dtype=torch.complex128)
        z[:n] = torch.polar(torch.ones(n, dtype=torch.float64), torch.linspace(0, math.pi, n, dtype=torch.float64))
        D = torch.diag_embed(z[:, None] ** m.to(torch.complex128))
        x = torch.linalg.solve(D - (A * g).to(torch.complex128), b.to(torch.complex128).expand(max_points, -1)[..., None])
        H = x[..., 0] * c
        d = H.abs() - 1
        spectral.append(torch.where(d < 0, d.abs() ** 2, d.abs() ** 4).mean(0).sum())
        mask = torch.ones(max_points)
        mask[n:] = 0
        h = torch.fft.irfft(H.sum(-1) * mask, n=ir_length)
        temporal.append(torch.linalg.vector_norm(h, 2) / torch.linalg.vector_norm(h, 1))
    return float(torch.stack(spectral).mean()), float(torch.stack(temporal).mean())


def test_dafx23_loss_terms_are_the_released_ones():
    delays = (7, 11, 13, 17)
    system = published_colorless_fdn(delays, seed=2, init="dafx23", gain_per_sample=0.99, dtype=torch.float64)
    sizes, max_points, ir_length = (300, 351), 400, 500
    lines = [line_outputs(system, flamo.Grid(2 * (n - 1), dtype=torch.float64)) for n in sizes]
    output = {"lines": lines, "zero": [colorless_dafx23.response_at_zero(system)] * len(sizes)}
    with torch.no_grad():
        spectral = colorless_dafx23.DAFxSpectralLoss(max_points, 2.0, 4.0)(output)
        temporal = colorless_dafx23.DAFxTemporalLoss(ir_length)(output)
    want = _released_dafx_losses(system, sizes, max_points, ir_length)
    assert float(spectral) == pytest.approx(want[0], rel=1e-9)
    assert float(temporal) == pytest.approx(want[1], rel=1e-9)


def test_histogram_bins_are_2_db_wide_and_centred():
    edges, counts = histogram(np.array([-3.0, -1.0, 0.5, 3.5]))
    assert np.allclose(np.diff(edges), 2.0) and counts.sum() == 4
    assert edges[0] <= -3.0 - 0.0 and edges[-1] >= 3.5 - 0.0
