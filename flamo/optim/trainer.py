"""A small, resumable training loop for flamo systems (and any nn.Module).

Design points:

- several weighted criteria ``{name: (loss_fn, weight)}``, each called as
  ``loss_fn(output, target)``; model-dependent regularizers hold their module themselves
  (see :class:`flamo.optim.losses.FeedbackSparsity`);
- any torch optimizer (Adam by default; LBFGS through a closure) and scheduler;
- a fixed number of steps per epoch (no dataset "expand" trick); the batch of each step is a
  deterministic function of (seed, epoch, step), so a resumed run sees the same data;
- checkpoints hold model, optimizer, scheduler, criteria (e.g. MaskedMSE generators), the
  torch / numpy / python RNG states and the counters, written atomically; resuming
  reproduces an uninterrupted run bit for bit on the same device;
- NaN/inf in any loss term or gradient stops with :class:`NonFiniteError` naming the step and
  the term; per-step and per-epoch CSV logs; TensorBoard when importable; tqdm progress;
  early stopping; gradient clipping; callbacks that see a :class:`TrainState` and may stop.
"""

from __future__ import annotations

import csv
import math
import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

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


def _atomic_torch_save(obj, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
        Writes ``steps.csv`` and ``epochs.csv`` (appended on resume) and TensorBoard events
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
    """

    def __init__(self, model: nn.Module, criteria: dict, data=None, forward: Callable | None = None,
                 optimizer=None, lr: float = 1e-3, scheduler=None, scheduler_every: str = "epoch",
                 steps_per_epoch: int = 100, batch_size: int = 1, grad_clip: float | None = None,
                 early_stopping: int | None = None, min_delta: float = 0.0, log_dir=None,
                 checkpoint_dir=None, checkpoint_every: int = 1, device=None, callbacks=(),
                 seed: int = 0, progress: bool = True, tensorboard: bool = False):
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
        self.step = 0  # completed global steps
        self.best = math.inf
        self.bad_epochs = 0
        self.stop_reason: str | None = None
        self.history: list[dict] = []  # one row per step of this process
        self.epoch_history: list[dict] = []
        self._epoch_rows: list[dict] = []
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
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                    "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
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
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.step, self.best, self.bad_epochs = state["step"], state["best"], state["bad_epochs"]
        self._epoch_rows = list(state["epoch_rows"])
        self.seed = state["seed"]

    def save_checkpoint(self, path) -> Path:
        """Write :meth:`state_dict` to ``path`` atomically (temp file + rename)."""
        path = Path(path)
        _atomic_torch_save(self.state_dict(), path)
        return path

    def load_checkpoint(self, path) -> "Trainer":
        """Restore a checkpoint written by :meth:`save_checkpoint` (same model and optimizer
        types); the next :meth:`fit` continues where it stopped."""
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=False))
        return self


def _seed_everything(seed: int):
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
