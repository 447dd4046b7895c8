"""Optimization toolkit: losses, a resumable Trainer, datasets, hyperconditioning and
loss-surface exploration.

Submodules: :mod:`~flamo.optim.losses`, :mod:`~flamo.optim.energy_decay` (Schroeder EDC, octave
bands, EDR, T60, noise-floor cut; reusable by reverberation code), :mod:`~flamo.optim.trainer`,
:mod:`~flamo.optim.datasets`, :mod:`~flamo.optim.hyper`, :mod:`~flamo.optim.surface`.
"""

from . import datasets, energy_decay, hyper, losses, surface
from .energy_decay import edr, noise_floor_cut, octave_filterbank, schroeder_edc, t60_from_edc
from .hyper import (ParameterHead, batched_call, batched_response, flatten, parameter_shapes,
                    raw_parameters, unflatten)
from .losses import *  # noqa: F401,F403  (every loss function and module)
from .losses import __all__ as _loss_names
from .surface import (Axis, Perturbation, RunsResult, SurfaceConfig, SweepResult, local_minima,
                      perturbation_runs, sweep)
from .trainer import NonFiniteError, Trainer, TrainState

__all__ = ["datasets", "energy_decay", "hyper", "losses", "surface", "schroeder_edc", "edr",
           "octave_filterbank", "t60_from_edc", "noise_floor_cut", "ParameterHead", "batched_call",
           "batched_response", "flatten", "unflatten", "parameter_shapes", "raw_parameters",
           "Axis", "SweepResult", "sweep", "local_minima", "Perturbation", "SurfaceConfig",
           "RunsResult", "perturbation_runs", "Trainer", "TrainState",
           "NonFiniteError", *_loss_names]
