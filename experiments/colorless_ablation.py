"""Reproduction of Dal Santo et al., "Optimizing tiny colorless feedback delay networks"
(EURASIP JASMP 2025, arXiv 2402.11216): the sparsity-term ablation.

The protocol, measurements, outputs and trials (one task each) of :mod:`experiments.colorless_fdn`
(the journal protocol) on the first N = 8 set [809, 877, 937, 1049, 1151, 1249, 1373, 1499],
the same trials trained with sparsity weight 1 (the protocol's own, also the N8 panel of the
delay-set figure) and 0: ``ablation.csv`` (alpha, trial, epoch, both loss terms, echo
density of the 2 s IR) and ``ablation.png``. The paper's claim: without the term the echo
density drops, with it it is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from experiments import colorless_fdn
from experiments.colorless_common import JOURNAL_DELAY_SETS

DESCRIPTION = ("reproduction of Dal Santo et al. (EURASIP JASMP 2025) sparsity ablation: N8 on the "
               "journal protocol with sparsity weight 1 and 0, echo density and losses per epoch")


@dataclass
class Config(colorless_fdn.Config):
    """The journal protocol of :class:`experiments.colorless_fdn.Config` on N8, weights 1 and 0."""

    delay_sets: tuple = JOURNAL_DELAY_SETS[2:3]
    ablation_set: str = "N8"

    @classmethod
    def quick(cls) -> "Config":
        """CI variant: a small set, 2 trials, 1 epoch, a coarser frequency set."""
        return cls(delay_sets=(("N8_small", (81, 88, 94, 105, 115, 125, 137, 150)),), trials=2,
                   epochs=1, points=48000, ir_seconds=0.5, ablation_set="N8_small")


tasks, run_task, reduce = colorless_fdn.tasks, colorless_fdn.run_task, colorless_fdn.reduce
