"""A registered test experiment ``gated`` that can be held mid-run, for runner tests.

``run`` writes ``first.txt`` and a headline, then, when the environment variable
``GATE`` names a path, creates ``GATE.started`` and waits until ``GATE.go`` exists (or
raises when ``GATE.fail`` exists), then writes ``second.txt``. Run as a script it is
``python -m experiments`` with this experiment registered:
``python tests/gated_experiment.py run gated --out D``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import types
from pathlib import Path

NAME = "gated"


@dataclasses.dataclass
class Config:
    tag: str = "full"

    @classmethod
    def quick(cls):
        return cls(tag="quick")


def run(cfg, ctx):
    ctx.write_text(f"{cfg.tag} seed {ctx.seed}\n", "first.txt")
    ctx.headline(seed=ctx.seed, tag=cfg.tag)
    gate = os.environ.get("GATE")
    if gate:
        Path(gate + ".started").write_text(str(os.getpid()))
        while not Path(gate + ".go").exists():
            if Path(gate + ".fail").exists():
                raise RuntimeError("gated experiment told to fail")
            time.sleep(0.02)
    ctx.write_text(f"{cfg.tag} seed {ctx.seed}\n", "second.txt")


def module() -> types.ModuleType:
    """The experiment as the module ``experiments.gated`` (not yet registered)."""
    mod = types.ModuleType(f"experiments.{NAME}")
    mod.DESCRIPTION, mod.Config, mod.run = "test experiment that can be held mid-run", Config, run
    return mod


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from experiments import registry
    from experiments.cli import main

    sys.modules[f"experiments.{NAME}"] = module()
    registry.EXPERIMENTS.append(NAME)

    sys.exit(main(sys.argv[1:]))
