"""Reproduction of Dal Santo et al., "Optimizing tiny colorless feedback delay networks"
(EURASIP JASMP 2025, arXiv 2402.11216), delay-set figure (Fig. 6): the delay sets not run
all six sets on the figure's protocol.

The protocol, measurements, outputs and trials (one task each) of :mod:`experiments.colorless_fdn`
(the journal protocol, with the figure's cap of 50 epochs instead of the loss test's 20), on
the journal's first sets N4 [1499, 1889, 2381, 2999], N6 [997, 1153, 1327, 1559, 1801, 2099],
N8 [809 ... 1499] and its second sets N4 [797, 839, 3547, 3581],
N6 [887, 911, 941, 2017, 2053, 2129], N8 [241, 263, 281, 293, 1871, 1973, 1999, 2027]. The
first N4 set also runs in :mod:`experiments.colorless_fdn` (the loss test, 20 epochs) and the
first N8 set in :mod:`experiments.colorless_ablation` (20 epochs): where early stopping does
not end a trial before epoch 20 those runs differ from the figure's.
"""

from __future__ import annotations

from dataclasses import dataclass

from experiments import colorless_fdn
from experiments.colorless_common import JOURNAL_DELAY_SETS

DESCRIPTION = ("reproduction of Dal Santo et al. (EURASIP JASMP 2025) delay-set figure (Fig. 6): "
               "the first and second N4, N6, N8 sets on the journal protocol, up to 50 epochs")


@dataclass
class Config(colorless_fdn.Config):
    """The journal protocol of :class:`experiments.colorless_fdn.Config` on all six sets, with
    the delay-set figure's cap of 50 epochs (the loss test and the ablation stop at 20)."""

    delay_sets: tuple = JOURNAL_DELAY_SETS
    epochs: int = 50  # at most; early stopping ends most trials well before

    @classmethod
    def quick(cls) -> "Config":
        """CI variant: one small set, 2 trials, 1 epoch, a coarser frequency set."""
        return cls(delay_sets=(("N4_small_second", (79, 83, 353, 359)),), trials=2, epochs=1,
                   points=48000, ir_seconds=0.5)


tasks, run_task, reduce = colorless_fdn.tasks, colorless_fdn.run_task, colorless_fdn.reduce
