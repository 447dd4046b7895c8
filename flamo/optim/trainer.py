"""A small, resumable training loop for flamo systems (and any nn.Module).

Design points:

- several weighted criteria ``{name: (loss_fn, weight)}``, each called as
  ``loss_fn(output, target)``; model-dependent regularizers hold their module themselves
  (see :class:`flamo.optim.losses.FeedbackSparsity`);
- any torch optimizer (Adam by default; LBFGS through a closure) and scheduler;
- a fixed number of steps per epoch (no dataset "expand" trick); the batch of each step is a
  deterministic function of (seed, epoch, step), so a resumed run sees the same data;
- checkpoints hold model, optimizer, scheduler, criteria (e.g. MaskedMSE generators), the
  torch / numpy / python RNG states and the counters, as tensors, numbers and strings only,
  so they load with ``torch.load(weights_only=True)`` and can never run code; a header with
  the payload's SHA-256 and size detects truncation and bit flips; written atomically and
  fsynced; resuming reproduces an uninterrupted run bit for bit on the same device, logs
  included (the step rows a killed run wrote after its last checkpoint are dropped);
- NaN/inf in any loss term or gradient stops with :class:`NonFiniteError` naming the step and
  the term; per-step and per-epoch CSV logs; TensorBoard when importable; tqdm progress;
  early stopping; gradient clipping; callbacks that see a :class:`TrainState` and may stop.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..atomic import atomic_write, remove_stale_temps
from ..exceptions import StalledParameterWarning, warn

__all__ = ["Trainer", "TrainState", "NonFiniteError"]


class NonFiniteError(RuntimeError):
    """A loss term or a gradient became NaN or infinite."""


@dataclass
class TrainState:
    """What callbacks see after every step.

    Attributes
    ----------
    step : int
        Global step just completed (1-based).
    epoch : int
        Epoch of that step (0-based).
    losses : dict[str, float]
        Unweighted value of every criterion and the weighted ``total``.
    model, optimizer : the objects being trained.
    trainer : Trainer
    """

    step: int
    epoch: int
    losses: dict
    model: nn.Module
    optimizer: torch.optim.Optimizer
    trainer: Any
    stop_reason: str | None = field(default=None)

    def request_stop(self, reason: str = "requested by a callback"):
        """Ask the Trainer to stop after this step (the reason is kept in ``trainer.stop_reason``)."""
        self.stop_reason = reason


#: First bytes of a checkpoint file: format name and version.
CHECKPOINT_MAGIC = b"flamo-checkpoint/1"


def _write_checkpoint(state: dict, path: Path) -> None:
    """``MAGIC sha256=HEX bytes=N\\n`` then the torch.save payload, atomically and fsynced."""
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    header = CHECKPOINT_MAGIC + f" sha256={hashlib.sha256(payload).hexdigest()} bytes={len(payload)}\n".encode()
    remove_stale_temps(path)  # of earlier saves that were killed (one trainer writes a path)
    atomic_write(path, lambda tmp: tmp.write_bytes(header + payload))


def _read_checkpoint(path: Path) -> dict:
    """Verify the header and checksum of ``path``, then load it with weights_only=True."""
    data = path.read_bytes()
    end = data.find(b"\n", 0, 256)
    fields = data[:end].split(b" ") if end > 0 else []
    if len(fields) != 3 or fields[0] != CHECKPOINT_MAGIC or not fields[1].startswith(b"sha256=") \
            or not fields[2].startswith(b"bytes=") or not fields[2][6:].isdigit():
        raise ValueError(f"Trainer.load_checkpoint: {path} is not a flamo checkpoint (no valid "
                         f"{CHECKPOINT_MAGIC.decode()!r} header); it is not unpickled. Only files "
                         f"written by Trainer.save_checkpoint load")
    payload = data[end + 1:]
    size = int(fields[2][6:])
    if len(payload) != size:
        raise ValueError(f"Trainer.load_checkpoint: {path} is truncated or damaged: its payload has "
                         f"{len(payload)} bytes, the header says {size}")
    if hashlib.sha256(payload).hexdigest().encode() != fields[1][7:]:
        raise ValueError(f"Trainer.load_checkpoint: {path} is corrupted: the SHA-256 of its payload "
                         f"does not match the header")
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # weights_only refuses anything but tensors and plain data
        raise ValueError(f"Trainer.load_checkpoint: {path} holds data that weights_only loading "
                         f"refuses: {err}") from err


def _rng_state() -> dict:
    """python, numpy and torch RNG states as tensors and numbers (weights_only-safe)."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": {"bit_generator": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)),
                      "pos": int(np_pos), "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_gauss)},
            "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64),
                       "gauss_next": py_gauss},
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    n = rng["numpy"]
    np.random.set_state((n["bit_generator"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    p = rng["python"]
    random.setstate((p["version"], tuple(p["state"].tolist()), p["gauss_next"]))
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def _drop_rows_after(path: Path, step: int) -> int:
    """Remove the rows of CSV log ``path`` whose ``step`` exceeds ``step`` (atomically);
    returns how many. A last line cut short by a crash is dropped too."""
    if not path.exists():
        return 0
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return 0
    header, body = rows[0], rows[1:]
    if "step" not in header:
        raise ValueError(f"Trainer: log {path} has no 'step' column")
    col = header.index("step")
    kept = []
    for i, row in enumerate(body):
        valid = len(row) == len(header) and row[col].isdigit()
        if not valid and i < len(body) - 1:
            raise ValueError(f"Trainer: log {path} is damaged at data row {i + 1}: {row!r}")
        if valid and int(row[col]) <= step:
            kept.append(row)
    if len(kept) == len(body):
        return 0

    def write(tmp):
        with open(tmp, "w", newline="") as fh:
            csv.writer(fh).writerows([header, *kept])

    atomic_write(path, write)
    return len(body) - len(kept)


def _to_device(x, device):
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, (tuple, list)):
        return type(x)(_to_device(v, device) for v in x)
    if isinstance(x, dict):
        return {k: _to_device(v, device) for k, v in x.items()}
    return x


class Trainer:
    """Fit ``model`` by minimizing a weighted sum of criteria.

    Parameters
    ----------
    model : nn.Module
        What is trained (a flamo system, or a network that outputs system parameters).
    criteria : dict[str, (callable, float)]
        ``{name: (loss_fn, weight)}``; ``loss_fn(output, target)`` returns a scalar.
    data : torch.utils.data.Dataset or (input, target) tuple
        Items are ``(input, target)``. A tuple is used at every step. A Dataset is visited
        in a random order per epoch (from ``seed``), ``batch_size`` items per step, stacked
        with ``torch.utils.data.default_collate``.
    forward : callable, optional
        ``forward(model, input) -> output``. Default ``model(input)``.
    optimizer : torch.optim.Optimizer or callable, optional
        An optimizer over ``model.parameters()``, or a factory ``f(params)``. Default
        ``Adam(lr=lr)``. ``torch.optim.LBFGS`` is driven through a closure.
    lr : float
        Learning rate of the default Adam.
    scheduler : LR scheduler or callable, optional
        An LR scheduler, or a factory ``f(optimizer)``. Stepped every epoch (``scheduler_every
        ="epoch"``) or every step; ReduceLROnPlateau receives the epoch mean loss.
    steps_per_epoch : int
    batch_size : int
    grad_clip : float, optional
        Clip the global gradient norm to this value.
    early_stopping : int, optional
        Stop when the epoch mean loss has not improved by ``min_delta`` for this many epochs.
    log_dir : path, optional
        Writes ``steps.csv`` and ``epochs.csv`` (continued after :meth:`load_checkpoint`; a
        fresh trainer refuses a folder holding another run's logs) and TensorBoard events
        when ``tensorboard=True`` and torch.utils.tensorboard imports.
    checkpoint_dir : path, optional
        Writes ``last.pt`` every ``checkpoint_every`` epochs and at the end of :meth:`fit`.
    device : str or torch.device, optional
        Moves the model (and data per step) there. Default: the model's device.
    callbacks : list of callable
        Each called as ``cb(state: TrainState)`` after every step.
    seed : int
        Seeds torch, numpy and random at construction and orders the dataset.
    progress : bool
        Show a tqdm bar.
    stall_steps : int or None
        Warn (:class:`flamo.exceptions.StalledParameterWarning`, once per parameter) when
        entries of a parameter that were moving have had a gradient of exactly zero at each
        of this many consecutive steps of this process: a mapping saturated at its bound,
        which no step can move. Entries with a zero gradient from the first step (unused by
        their parametrization) are not reported. None: no check.
    """

    def __init__(self, model: nn.Module, criteria: dict, data=None, forward: Callable | None = None,
                 optimizer=None, lr: float = 1e-3, scheduler=None, scheduler_every: str = "epoch",
                 steps_per_epoch: int = 100, batch_size: int = 1, grad_clip: float | None = None,
                 early_stopping: int | None = None, min_delta: float = 0.0, log_dir=None,
                 checkpoint_dir=None, checkpoint_every: int = 1, device=None, callbacks=(),
                 seed: int = 0, progress: bool = True, tensorboard: bool = False,
                 stall_steps: int | None = 100):
        if not isinstance(criteria, dict) or not criteria:
            raise TypeError("Trainer: criteria must be a non-empty dict {name: (loss_fn, weight)}")
        for name, spec in criteria.items():
            if not (isinstance(spec, tuple) and len(spec) == 2 and callable(spec[0])):
                raise TypeError(f"Trainer: criteria[{name!r}] must be (loss_fn, weight), got {spec!r}")
        if name_clash := {"total", "step", "epoch", "lr", "grad_norm"} & set(criteria):
            raise ValueError(f"Trainer: criterion names {sorted(name_clash)} are reserved")
        if steps_per_epoch < 1 or batch_size < 1:
            raise ValueError(f"Trainer: steps_per_epoch and batch_size must be >= 1, got "
                             f"{steps_per_epoch} and {batch_size}")
        if stall_steps is not None and (isinstance(stall_steps, bool) or not isinstance(stall_steps, int)
                                        or stall_steps < 1):
            raise ValueError(f"Trainer: stall_steps must be an int >= 1 or None, got {stall_steps!r}")
        if scheduler_every not in ("epoch", "step"):
            raise ValueError(f"Trainer: scheduler_every must be 'epoch' or 'step', got {scheduler_every!r}")
        self.seed = int(seed)
        _seed_everything(self.seed)
        if device is None:
            p = next(iter(model.parameters()), None)
            device = p.device if p is not None else torch.device("cpu")
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.criteria = criteria
        for fn, _ in criteria.values():
            if isinstance(fn, nn.Module):
                fn.to(self.device)
        self.data = data
        self.forward = forward if forward is not None else (lambda m, x: m(x))
        params = [p for p in model.parameters() if p.requires_grad]
        if optimizer is None:
            optimizer = torch.optim.Adam(params, lr=lr)
        elif not isinstance(optimizer, torch.optim.Optimizer):
            optimizer = optimizer(params)
        self.optimizer = optimizer
        if scheduler is not None and not hasattr(scheduler, "step"):
            scheduler = scheduler(optimizer)
        self.scheduler, self.scheduler_every = scheduler, scheduler_every
        self.steps_per_epoch, self.batch_size = int(steps_per_epoch), int(batch_size)
        self.grad_clip = grad_clip
        self.early_stopping, self.min_delta = early_stopping, float(min_delta)
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_every = int(checkpoint_every)
        self.callbacks = list(callbacks)
        self.progress = progress
        self.stall_steps = stall_steps
        # per parameter: (entries that have had a nonzero gradient, consecutive zero-gradient steps since)
        self._zero_grad_run: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._stalled_warned: set[str] = set()
        self.step = 0  # completed global steps
        self.best = math.inf
        self.bad_epochs = 0
        self.stop_reason: str | None = None
        self.history: list[dict] = []  # one row per step of this process
        self.epoch_history: list[dict] = []
        self._epoch_rows: list[dict] = []
        self._owns_logs = False  # True once the CSV logs are known to belong to this run
        self._tb = None
        if tensorboard and self.log_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(str(self.log_dir / "tensorboard"))
            except Exception:  # tensorboard is optional
                self._tb = None

    # -- data --------------------------------------------------------------------------
    def _batch(self, epoch: int, k: int):
        if self.data is None:
            raise ValueError("Trainer: no data given; pass data=(input, target) or a Dataset")
        if isinstance(self.data, tuple):
            return _to_device(self.data, self.device)
        n = len(self.data)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        reps = -(-self.steps_per_epoch * self.batch_size // n)
        order = torch.cat([torch.randperm(n, generator=gen) for _ in range(reps)])
        idx = order[k * self.batch_size:(k + 1) * self.batch_size].tolist()
        batch = torch.utils.data.default_collate([self.data[i] for i in idx])
        return _to_device(batch, self.device)

    # -- one step ------------------------------------------------------------------------
    def _losses(self, batch):
        inputs, target = batch
        output = self.forward(self.model, inputs)
        terms = {}
        total = 0.0
        for name, (fn, weight) in self.criteria.items():
            value = fn(output, target)
            if not torch.isfinite(value).all():
                raise NonFiniteError(f"Trainer: loss term {name!r} is {value.item()} at step "
                                     f"{self.step + 1} (epoch {self.step // self.steps_per_epoch})")
            terms[name] = value
            total = total + weight * value
        return total, terms

    def _check_grads(self):
        for pname, p in self.model.named_parameters():
            if p.grad is not None and not torch.isfinite(p.grad).all():
                raise NonFiniteError(f"Trainer: gradient of parameter {pname!r} is not finite at "
                                     f"step {self.step + 1} (all loss terms were finite)")

    def _check_stalled(self):
        """Count, per entry that has had a nonzero gradient in this process, the consecutive
        steps since with a gradient of exactly zero; warn once per parameter when an entry
        reaches ``stall_steps``. Entries whose gradient was zero from the first step are
        left out: a parametrization may leave entries unused (the diagonal of a skew
        generator), and those are not stalls."""
        if self.stall_steps is None:
            return
        for pname, p in self.model.named_parameters():
            if p.grad is None or pname in self._stalled_warned:
                continue
            zero = p.grad.detach() == 0
            moved, run = self._zero_grad_run.get(
                pname, (torch.zeros_like(zero), torch.zeros_like(zero, dtype=torch.int32)))
            moved = moved | ~zero
            run = (run + 1) * (zero & moved)
            self._zero_grad_run[pname] = (moved, run)
            stalled = int((run >= self.stall_steps).sum())
            if stalled:
                self._stalled_warned.add(pname)
                warn(f"Trainer: {stalled} of {p.numel()} entries of parameter {pname!r} had a "
                     f"gradient of exactly zero at each of the last {self.stall_steps} steps "
                     f"(step {self.step + 1}) after moving before, so the optimizer cannot move "
                     f"them: a saturated mapping (e.g. an Interval at its bound: re-initialize "
                     f"inside the interval, widen it or lower the learning rate)",
                     StalledParameterWarning)

    def _clip(self):
        params = [p for p in self.model.parameters() if p.grad is not None]
        if not params:
            return 0.0
        if self.grad_clip is not None:
            return float(torch.nn.utils.clip_grad_norm_(params, self.grad_clip))
        return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])))

    def train_step(self, batch) -> dict:
        """One optimizer step on ``batch``; returns the logged values (floats)."""
        self.model.train()
        record: dict = {}

        def closure():
            self.optimizer.zero_grad(set_to_none=True)
            total, terms = self._losses(batch)
            total.backward()
            self._check_grads()
            if not record:  # LBFGS calls the closure several times: log the first
                self._check_stalled()
                record["total"] = float(total.detach())
                record.update({k: float(v.detach()) for k, v in terms.items()})
                record["grad_norm"] = self._clip()
            elif self.grad_clip is not None:
                self._clip()
            return total

        if isinstance(self.optimizer, torch.optim.LBFGS):
            self.optimizer.step(closure)
        else:
            closure()
            self.optimizer.step()
        if self.scheduler is not None and self.scheduler_every == "step":
            self._step_scheduler(record["total"])
        return record

    def _step_scheduler(self, metric):
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(metric)
        else:
            self.scheduler.step()

    # -- loop ----------------------------------------------------------------------------
    def fit(self, epochs: int | None = None, max_steps: int | None = None) -> "Trainer":
        """Train until ``max_steps`` global steps (or ``epochs * steps_per_epoch``) are done.

        Counts are global: after :meth:`load_checkpoint` at step 10, ``fit(max_steps=20)``
        does 10 more steps. Stops early on early stopping or a callback's request.
        """
        if (epochs is None) == (max_steps is None):
            raise ValueError("Trainer.fit: give exactly one of epochs or max_steps")
        target = max_steps if max_steps is not None else epochs * self.steps_per_epoch
        self._reconcile_logs()
        self.stop_reason = None
        bar = tqdm(total=target, initial=self.step, disable=not self.progress, desc="train",
                   leave=False)
        try:
            while self.step < target and self.stop_reason is None:
                epoch, k = divmod(self.step, self.steps_per_epoch)
                row = self.train_step(self._batch(epoch, k))
                self.step += 1
                row = {"step": self.step, "epoch": epoch,
                       "lr": self.optimizer.param_groups[0]["lr"], **row}
                self.history.append(row)
                self._epoch_rows.append(row)
                self._log_step(row)
                bar.update(1)
                bar.set_postfix(loss=f"{row['total']:.4g}")
                state = TrainState(self.step, epoch, {k2: row[k2] for k2 in ["total", *self.criteria]},
                                   self.model, self.optimizer, self)
                for cb in self.callbacks:
                    cb(state)
                if state.stop_reason is not None:
                    self.stop_reason = state.stop_reason
                if self.step % self.steps_per_epoch == 0:
                    self._end_epoch(epoch)
        finally:
            bar.close()
        if self.checkpoint_dir is not None:
            self.save_checkpoint(self.checkpoint_dir / "last.pt")
        return self

    def _end_epoch(self, epoch):
        rows = self._epoch_rows
        self._epoch_rows = []
        summary = {"epoch": epoch, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"]}
        for key in ["total", *self.criteria]:
            summary[key] = float(np.mean([r[key] for r in rows]))
        self.epoch_history.append(summary)
        self._write_csv("epochs.csv", summary)
        if self._tb is not None:
            for key in ["total", *self.criteria]:
                self._tb.add_scalar(f"epoch/{key}", summary[key], epoch)
        if self.scheduler is not None and self.scheduler_every == "epoch":
            self._step_scheduler(summary["total"])
        if summary["total"] < self.best - self.min_delta:
            self.best, self.bad_epochs = summary["total"], 0
        else:
            self.bad_epochs += 1
            if self.early_stopping is not None and self.bad_epochs >= self.early_stopping:
                self.stop_reason = (f"early stopping: no improvement > {self.min_delta:g} for "
                                    f"{self.bad_epochs} epochs (best {self.best:.6g})")
        if self.checkpoint_dir is not None and (epoch + 1) % self.checkpoint_every == 0:
            self.save_checkpoint(self.checkpoint_dir / "last.pt")

    def _reconcile_logs(self):
        """Make the CSV logs end at the current step before new rows are appended.

        After :meth:`load_checkpoint`, rows past the checkpoint (written by the run that was
        killed) are dropped, so the resumed logs equal an uninterrupted run's. Rows past the
        current step without a resume belong to another run: refuse to mix them in.
        """
        if self.log_dir is None:
            return
        for name in ("steps.csv", "epochs.csv"):
            path = self.log_dir / name
            if not self._owns_logs and path.exists() and self.step == 0 and path.stat().st_size:
                raise ValueError(f"Trainer.fit: {path} already holds the log of another run; resume "
                                 f"it with load_checkpoint or give a new log_dir")
            _drop_rows_after(path, self.step)
        self._owns_logs = True  # the logs now match this trainer's steps

    def _log_step(self, row):
        self._write_csv("steps.csv", row)
        if self._tb is not None:
            for key, value in row.items():
                if key not in ("step", "epoch"):
                    self._tb.add_scalar(f"step/{key}", value, row["step"])

    def _write_csv(self, name, row):
        if self.log_dir is None:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = self.log_dir / name
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    # -- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue exactly: weights, optimizer, scheduler, criteria,
        RNG states and counters."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "criteria": {n: fn.state_dict() for n, (fn, _) in self.criteria.items()
                         if isinstance(fn, nn.Module)},
            "rng": _rng_state(),
            "step": self.step, "best": self.best, "bad_epochs": self.bad_epochs,
            "epoch_rows": self._epoch_rows, "seed": self.seed,
        }

    def load_state_dict(self, state: dict):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        for n, sd in state["criteria"].items():
            self.criteria[n][0].load_state_dict(sd)
        _set_rng_state(state["rng"])
        self.step, self.best, self.bad_epochs = state["step"], state["best"], state["bad_epochs"]
        self._epoch_rows = list(state["epoch_rows"])
        self.seed = state["seed"]

    def save_checkpoint(self, path) -> Path:
        """Write :meth:`state_dict` to ``path``: a header (format, SHA-256 and size of the
        payload) and the ``torch.save`` payload, via a temporary file that is fsynced,
        renamed over ``path`` and whose folder is fsynced."""
        path = Path(path)
        _write_checkpoint(self.state_dict(), path)
        return path

    def resume(self) -> bool:
        """Continue the training kept in this trainer's folders, or start it afresh.

        For folders that belong to this one training (an experiment task's work folder),
        which a kill may have interrupted at any point. With ``checkpoint_dir / "last.pt"``
        present it is loaded (:meth:`load_checkpoint`) and True is returned. Without one, a
        run killed before its first checkpoint may have left CSV logs in ``log_dir``; they
        are removed, so that :meth:`fit` starts them anew instead of refusing them, and
        False is returned.

        Raises
        ------
        ValueError
            Without a ``checkpoint_dir``, and as :meth:`load_checkpoint` for a damaged file.
        """
        if self.checkpoint_dir is None:
            raise ValueError("Trainer.resume: the trainer has no checkpoint_dir to resume from")
        path = self.checkpoint_dir / "last.pt"
        if path.is_file():
            self.load_checkpoint(path)
            return True
        if self.log_dir is not None:
            for name in ("steps.csv", "epochs.csv"):
                (self.log_dir / name).unlink(missing_ok=True)
        return False

    def load_checkpoint(self, path) -> "Trainer":
        """Restore a checkpoint written by :meth:`save_checkpoint` (same model and optimizer
        types); the next :meth:`fit` continues where it stopped, and the CSV logs lose the
        rows of steps after the checkpoint (a killed run wrote them; they are redone).

        Nothing in the file can run code: it is loaded with ``torch.load(weights_only=True)``
        after its checksum is verified.

        Raises
        ------
        ValueError
            Naming the file: not a flamo checkpoint, truncated, corrupted (checksum), holding
            objects other than tensors and plain data, or not matching this trainer.
        """
        path = Path(path)
        state = _read_checkpoint(path)
        try:
            self.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"Trainer.load_checkpoint: {path} does not match this trainer "
                             f"(model, optimizer, scheduler or criteria): {err!r}") from err
        self._owns_logs = True
        return self


def _seed_everything(seed: int):
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
