"""A small checkpointed training run that can be held mid-epoch and killed, for resume tests.

``python tests/resumable_training.py FOLDER STEPS [HOLD_AT GATE]`` trains
:func:`make_trainer` (checkpoint and logs in FOLDER) for STEPS global steps; with HOLD_AT,
after step HOLD_AT is logged it creates ``GATE.started`` and waits forever (to be killed).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

STEPS_PER_EPOCH = 4


def make_trainer(folder):
    """A Trainer whose every source of randomness is seeded: Adam, a step LR schedule,
    a masked loss with its own generator, a shuffled three-item dataset."""
    import flamo
    from flamo.optim import ComplexMSE, MaskedMSE, Trainer

    grid = flamo.Grid(nfft=64)
    target = flamo.SOS(np.array([[1.0, 0.5, 0.2, 1.0, -0.5, 0.3]])).response(grid).detach()
    data = [(torch.zeros(1), target * (1 + 0.1 * i)) for i in range(3)]
    torch.manual_seed(123)
    model = flamo.SOS(np.array([[0.9, 0.1, 0.0, 1.0, -0.1, 0.1], [1.0, 0.0, 0.1, 1.0, 0.1, 0.2]]))
    criteria = {"masked": (MaskedMSE(0.5, seed=1), 1.0), "mse": (ComplexMSE(), 0.5)}
    return Trainer(model, criteria, data=data,
                   forward=lambda m, x: m.response(grid).expand(len(x), grid.M, 1, 1), lr=1e-2,
                   scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.9),
                   steps_per_epoch=STEPS_PER_EPOCH, grad_clip=1.0, progress=False,
                   checkpoint_dir=folder, log_dir=folder, seed=7)


def _hold(at, gate):
    def callback(state):
        if state.step == at:
            Path(f"{gate}.started").write_text("")
            while True:
                time.sleep(1)
    return callback


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    torch.set_num_threads(1)
    folder, steps = Path(sys.argv[1]), int(sys.argv[2])
    trainer = make_trainer(folder)
    if len(sys.argv) > 3:
        trainer.callbacks.append(_hold(int(sys.argv[3]), sys.argv[4]))
    trainer.fit(max_steps=steps)
