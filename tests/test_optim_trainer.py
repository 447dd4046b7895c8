"""Trainer: exact resume, NaN detection, LBFGS, callbacks, early stopping, logging."""

import csv
import hashlib
import io
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import flamo
from flamo.optim import MaskedMSE, NonFiniteError, Trainer
from flamo.optim.datasets import RandomSOSTargets, SingleTarget

import resumable_training

GRID = flamo.Grid(nfft=64)


def _target():
    rng = np.random.default_rng(0)
    return flamo.SOS(np.array([[1.0, 0.5, 0.2, 1.0, -0.5, 0.3]])).response(GRID).detach() \
        + 0.01 * torch.as_tensor(rng.normal(size=(GRID.M, 1, 1)), dtype=torch.complex64)


def _make(tmp, **kw):
    torch.manual_seed(123)
    model = flamo.SOS(np.array([[0.9, 0.1, 0.0, 1.0, -0.1, 0.1], [1.0, 0.0, 0.1, 1.0, 0.1, 0.2]]))
    crit = {"masked": (MaskedMSE(0.5, seed=1), 1.0), "mse": (flamo.optim.ComplexMSE(), 0.5)}
    sched = lambda opt: torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.9)
    # data: a dataset of noisy copies, so the epoch order matters for exactness
    target = _target()
    data = [(torch.randn(1), target + 0.01 * i) for i in range(3)]
    return Trainer(model, crit, data=data, forward=_batched_forward, lr=1e-2,
                   scheduler=sched, steps_per_epoch=4, batch_size=1, grad_clip=1.0, progress=False,
                   checkpoint_dir=tmp, log_dir=tmp, seed=7, **kw)


def _batched_forward(m, x):
    return m.response(GRID).expand(len(x), GRID.M, 1, 1)  # x: (B, 1) batch of inputs


def test_resume_is_bitwise_identical(tmp_path):
    straight = _make(tmp_path / "a")
    straight.fit(max_steps=20)
    first = _make(tmp_path / "b")
    first.fit(max_steps=10)
    torch.manual_seed(999)  # a fresh process: any other RNG state
    np.random.seed(999)
    resumed = _make(tmp_path / "b").load_checkpoint(tmp_path / "b" / "last.pt")
    assert resumed.step == 10
    resumed.fit(max_steps=20)
    for (n, p), (_, q) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.equal(p, q), n
    assert straight.optimizer.param_groups[0]["lr"] == resumed.optimizer.param_groups[0]["lr"]
    # the resumed run continued the step log
    with open(tmp_path / "b" / "steps.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == list(range(1, 21))
    with open(tmp_path / "a" / "epochs.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 5
    assert straight.history[-1]["total"] < straight.history[0]["total"]


def test_resume_restarts_a_run_killed_before_its_first_checkpoint(tmp_path):
    """A kill inside the first epoch leaves steps.csv and no checkpoint: resume() starts
    afresh (a plain fit refuses the foreign log), and the result and the logs equal an
    uninterrupted run's; with a checkpoint it continues from it."""
    straight = _make(tmp_path / "a")
    straight.fit(max_steps=10)

    def kill_at_step_3(state):
        if state.step == 3:
            raise KeyboardInterrupt

    killed = _make(tmp_path / "b", callbacks=[kill_at_step_3])
    with pytest.raises(KeyboardInterrupt):
        killed.fit(max_steps=10)
    assert (tmp_path / "b" / "steps.csv").stat().st_size and not (tmp_path / "b" / "last.pt").exists()
    with pytest.raises(ValueError, match="already holds the log"):
        _make(tmp_path / "b").fit(max_steps=10)
    fresh = _make(tmp_path / "b")
    assert fresh.resume() is False and fresh.step == 0
    fresh.fit(max_steps=10)
    for (n, p), (_, q) in zip(straight.model.named_parameters(), fresh.model.named_parameters()):
        assert torch.equal(p, q), n
    for name in ("steps.csv", "epochs.csv"):
        assert (tmp_path / "b" / name).read_text() == (tmp_path / "a" / name).read_text(), name
    again = _make(tmp_path / "b")
    assert again.resume() is True and again.step == 10
    with pytest.raises(ValueError, match="no checkpoint_dir"):
        Trainer(flamo.Gain([[1.0]]), {"l": (lambda o, t: o.abs().sum(), 1.0)}, data=[(0, 0)],
                progress=False).resume()


def test_nan_detection_names_step_and_term():
    model = flamo.Gain([[1.0]])
    calls = {"n": 0}

    def bad(out, target):
        calls["n"] += 1
        return out.sum() * (float("nan") if calls["n"] == 3 else 1.0)

    tr = Trainer(model, {"good": (lambda o, t: (o ** 2).sum(), 1.0), "exploder": (bad, 1.0)},
                 data=(torch.ones(1), torch.zeros(1)), forward=lambda m, x: m.gains.sum() * x,
                 steps_per_epoch=10, progress=False)
    with pytest.raises(NonFiniteError, match=r"'exploder'.*step 3"):
        tr.fit(max_steps=10)


def test_lbfgs_fits_a_gain():
    model = flamo.Gain([[0.1]])
    tr = Trainer(model, {"mse": (lambda o, t: ((o - t) ** 2).sum(), 1.0)},
                 data=(None, torch.tensor(0.7)), forward=lambda m, _: m.gains.sum(),
                 optimizer=lambda p: torch.optim.LBFGS(p, lr=1, max_iter=20), steps_per_epoch=2,
                 progress=False)
    tr.fit(epochs=1)
    assert model.gains.item() == pytest.approx(0.7, abs=1e-5)
    assert tr.history[0]["total"] == pytest.approx(0.36, rel=1e-5)


def test_callback_stop_and_early_stopping():
    model = flamo.Gain([[0.0]])
    seen = []

    def cb(state):
        seen.append(state.step)
        if state.step == 5:
            state.request_stop("enough")

    tr = Trainer(model, {"c": (lambda o, t: o * 0 + 1.0, 1.0)}, data=(None, None),
                 forward=lambda m, _: m.gains.sum(), steps_per_epoch=2, callbacks=[cb], progress=False)
    tr.fit(max_steps=100)
    assert seen == [1, 2, 3, 4, 5] and tr.stop_reason == "enough"
    tr2 = Trainer(flamo.Gain([[0.0]]), {"c": (lambda o, t: o * 0 + 1.0, 1.0)}, data=(None, None),
                  forward=lambda m, _: m.gains.sum(), steps_per_epoch=2, early_stopping=3,
                  progress=False)
    tr2.fit(epochs=50)
    assert tr2.step == 8 and "early stopping" in tr2.stop_reason  # epoch 1 best, then 3 bad


def test_bad_arguments():
    with pytest.raises(TypeError, match="criteria"):
        Trainer(flamo.Gain([[1.0]]), {"a": lambda o, t: o})
    with pytest.raises(ValueError, match="reserved"):
        Trainer(flamo.Gain([[1.0]]), {"total": (lambda o, t: o, 1.0)})
    with pytest.raises(ValueError, match="exactly one"):
        Trainer(flamo.Gain([[1.0]]), {"a": (lambda o, t: o, 1.0)}, progress=False).fit()


def test_datasets():
    ds = RandomSOSTargets(5, sections=2, grid=GRID, seed=3)
    sos, mag = ds[2]
    assert sos.shape == (2, 6) and mag.shape == (GRID.M,)
    assert torch.equal(ds[2][1], RandomSOSTargets(5, 2, GRID, seed=3)[2][1])
    assert flamo.functional.sos_poles(sos).abs().max() < 1
    assert abs(mag.mean().item()) < 1e-3
    x, t = SingleTarget(torch.ones(8), length=8)[0]
    assert x.shape == (8, 1) and x[0, 0] == 1 and x[1:].abs().sum() == 0
    centers, t60 = flamo.optim.datasets.RandomT60Targets(4, seed=1)[0]
    assert t60.shape == centers.shape and (t60 >= 0.2 - 1e-6).all() and (t60 <= 3.0 + 1e-6).all()


def test_response_files_onset(tmp_path):
    sf = pytest.importorskip("soundfile")
    from flamo.optim.datasets import ResponseFiles

    x = np.zeros((100, 1))
    x[30] = 1.0
    x[31:60, 0] = 0.01
    sf.write(tmp_path / "a.wav", x, 8000, subtype="FLOAT")
    sf.write(tmp_path / "b.wav", np.roll(x, 10, axis=0), 8000, subtype="FLOAT")
    ds = ResponseFiles([tmp_path / "a.wav", tmp_path / "b.wav"], length=40, pre_onset=2)
    assert len(ds) == 2 and ds.fs == 8000
    for i in range(2):
        _, t = ds[i]
        assert t.shape == (40, 1) and t[2, 0] == 1.0
    sf.write(tmp_path / "c.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match="sample rate"):
        ResponseFiles([tmp_path / "a.wav", tmp_path / "c.wav"])


# -- checkpoints that cannot run code, detect corruption, and resume with exact logs ----------
REPO = Path(__file__).resolve().parents[1]


class _RunsShell:
    """Unpickling this runs ``os.system(command)`` (what a malicious checkpoint does)."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _checkpoint(tmp_path):
    trainer = resumable_training.make_trainer(tmp_path / "run")
    trainer.fit(max_steps=2)
    return trainer, tmp_path / "run" / "last.pt"


def test_checkpoint_loads_with_weights_only_and_restores_rng(tmp_path):
    trainer, path = _checkpoint(tmp_path)
    header, payload = path.read_bytes().split(b"\n", 1)
    assert header.startswith(b"flamo-checkpoint/1 sha256=")
    state = torch.load(io.BytesIO(payload), weights_only=True)  # plain data only
    assert state["step"] == 2
    expected = (torch.rand(3), np.random.rand(3), random.random())
    trainer.load_checkpoint(path)  # restores the RNG states saved at step 2
    torch.testing.assert_close(torch.rand(3), expected[0], rtol=0, atol=0)
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_malicious_checkpoint_is_refused_without_running_anything(tmp_path):
    trainer, _ = _checkpoint(tmp_path)
    live = tmp_path / "ran-under-weights_only-False"
    evil = tmp_path / "evil.pt"
    torch.save({"model": _RunsShell(f"touch {live}")}, evil)
    torch.load(evil, weights_only=False)  # the payload is live: plain unpickling runs it
    assert live.exists()
    live.unlink()
    with pytest.raises(ValueError, match=rf"{evil} is not a flamo checkpoint.*not unpickled"):
        trainer.load_checkpoint(evil)
    assert not live.exists()
    # the same payload behind a valid header and checksum: weights_only refuses it
    payload = evil.read_bytes()
    wrapped = tmp_path / "wrapped.pt"
    wrapped.write_bytes(b"flamo-checkpoint/1 sha256=" + hashlib.sha256(payload).hexdigest().encode()
                        + f" bytes={len(payload)}\n".encode() + payload)
    with pytest.raises(ValueError, match=rf"{wrapped} holds data that weights_only loading refuses"):
        trainer.load_checkpoint(wrapped)
    assert not live.exists()


def test_truncated_and_bit_flipped_checkpoints_raise_naming_the_file(tmp_path):
    trainer, path = _checkpoint(tmp_path)
    good = path.read_bytes()
    bad = tmp_path / "bad.pt"
    for cut in (0, 10, len(good) // 2, len(good) - 1):
        bad.write_bytes(good[:cut])
        with pytest.raises(ValueError, match=rf"{bad} (is not a flamo checkpoint|is truncated)"):
            trainer.load_checkpoint(bad)
    rng = np.random.default_rng(0)
    positions = [*range(0, 120, 7), *rng.integers(120, len(good), 40).tolist()]
    for pos in positions:  # single bit flips in the header and all over the payload
        data = bytearray(good)
        data[pos] ^= 1 << int(rng.integers(8))
        bad.write_bytes(bytes(data))
        with pytest.raises(ValueError, match=rf"Trainer.load_checkpoint: {bad} "):
            trainer.load_checkpoint(bad)
    trainer.load_checkpoint(path)  # the intact file still loads


def test_checkpoint_for_another_model_names_the_file(tmp_path):
    _, path = _checkpoint(tmp_path)
    other = Trainer(flamo.Gain([[1.0]]), {"c": (lambda o, t: o.sum(), 1.0)}, progress=False)
    with pytest.raises(ValueError, match=rf"{path} does not match this trainer"):
        other.load_checkpoint(path)


def test_save_removes_temps_of_killed_saves(tmp_path):
    trainer, path = _checkpoint(tmp_path)
    stale = path.parent / ".last.pt.k1ll3d.tmp"
    stale.write_bytes(b"\0" * 1000)
    trainer.save_checkpoint(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt", "steps.csv"]


def test_fresh_trainer_refuses_another_runs_logs(tmp_path):
    _checkpoint(tmp_path)
    with pytest.raises(ValueError, match="already holds the log of another run"):
        resumable_training.make_trainer(tmp_path / "run").fit(max_steps=2)


def test_sigkill_and_resume_equals_an_uninterrupted_run(tmp_path):
    """Defect 10: a run killed mid-epoch (after its checkpoint at step 4, with rows 5 and 6
    logged) and resumed has the parameters and the CSV logs of an uninterrupted run."""
    steps, hold = 12, 6
    straight = resumable_training.make_trainer(tmp_path / "straight").fit(max_steps=steps)

    folder, gate = tmp_path / "killed", tmp_path / "gate"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "resumable_training.py"), str(folder),
                             str(steps), str(hold), str(gate)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start = time.monotonic()
    while not Path(f"{gate}.started").exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() - start < 180, "training did not reach the hold step"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    with open(folder / "steps.csv") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == list(range(1, hold + 1))

    resumed = resumable_training.make_trainer(folder).load_checkpoint(folder / "last.pt")
    assert resumed.step == resumable_training.STEPS_PER_EPOCH
    resumed.fit(max_steps=steps)
    for (name, p), (_, q) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.equal(p, q), name
    for log in ("steps.csv", "epochs.csv"):
        assert (folder / log).read_bytes() == (tmp_path / "straight" / log).read_bytes(), log


def test_a_mapping_driven_into_saturation_is_reported_once():
    """Interval(0, 1) of a raw value above ~17 is 1.0 in float32 with a gradient of exactly
    zero. A target above the interval drives the raw value there (Adam, lr 10), after which no
    step moves it: the trainer says so once, naming the parameter. An entry unused from the
    first step (zero gradient throughout) is not reported."""
    import warnings

    from flamo.exceptions import StalledParameterWarning
    from flamo.functional import Interval

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.raw = torch.nn.Parameter(torch.tensor([0.0, 0.0]))  # entry 1 unused

        def forward(self, x):
            return Interval(0.0, 1.0)(self.raw[0]) * x

    data = (torch.tensor(1.0), torch.tensor(2.0))  # unreachable: the output stays below 1
    mse = lambda y, t: (y - t).square().mean()  # noqa: E731
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = Trainer(Model(), {"mse": (mse, 1.0)}, data=data, lr=10.0, steps_per_epoch=80,
                          progress=False, stall_steps=10)
        trainer.fit(epochs=1)
    stalled = [w for w in caught if issubclass(w.category, StalledParameterWarning)]
    assert trainer.model.raw.detach()[0] > 17  # saturated: sigmoid is 1.0 in float32
    assert len(stalled) == 1
    assert "1 of 2 entries of parameter 'raw'" in str(stalled[0].message)
    quiet = Trainer(Model(), {"mse": (mse, 1.0)}, data=(torch.tensor(1.0), torch.tensor(0.5)),
                    lr=0.01, steps_per_epoch=30, progress=False, stall_steps=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StalledParameterWarning)
        quiet.fit(epochs=1)  # moving entry and unused entry: nothing to say
    with pytest.raises(ValueError, match="stall_steps"):
        Trainer(Model(), {"mse": (mse, 1.0)}, data=data, stall_steps=0)
