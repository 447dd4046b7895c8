"""flamo.describe / module.summary(): a readable tree of a nested system."""

import pytest
import torch

import flamo
from flamo.reverb import build_fdn


def test_tree_of_a_nested_fdn():
    system = build_fdn(delays=[5, 7, 11], matrix="householder", seed=0, direct_gain=1.0,
                       attenuation=flamo.FIR(torch.randn(3, 4)), input_gains=1.0, output_gains=1.0)
    expected = "\n".join([
        "Parallel (1 x 1) · 22 learnable, 3 fixed",
        "├─ fdn: Series (1 x 1) · 21 learnable, 3 fixed",
        "│  ├─ input: Gain (3 x 1) · 3 learnable",
        "│  ├─ loop: Recursion (3 x 3) · 15 learnable, 3 fixed",
        "│  │  ├─ forward_path: Series (3 x 3, diagonal) · 12 learnable, 3 fixed",
        "│  │  │  ├─ delays: Delay (3 x 3, diagonal) · 0 learnable, 3 fixed",
        "│  │  │  └─ attenuation: FIR (3 x 3, diagonal) · 12 learnable",
        "│  │  └─ feedback_path: Matrix (3 x 3) · 3 learnable",
        "│  └─ output: Gain (1 x 3) · 3 learnable",
        "└─ direct: Gain (1 x 1) · 1 learnable",
    ])
    assert flamo.describe(system) == expected
    assert system.summary() == expected
    assert flamo.Gain([1.0, 2.0]).summary() == "Gain (2 x 2, diagonal) · 2 learnable"
    assert "Recursion(" in repr(system)  # nn.Module's repr is untouched


def test_describe_rejects_other_objects():
    with pytest.raises(TypeError, match="flamo module or system"):
        flamo.describe(torch.nn.Linear(2, 2))
