"""flamo.describe / module.summary(): a readable tree of a nested system."""

import pytest
import torch

import flamo


def test_tree_of_a_nested_fdn():
    n = 3
    loop = flamo.Recursion(flamo.Series({"delays": flamo.Delay([5.0, 7.0, 11.0]),
                                         "absorption": flamo.FIR(torch.randn(n, 4))}),
                           flamo.Matrix(n, kind="householder", seed=0))
    system = flamo.Parallel({"wet": flamo.Series({"b": flamo.Gain(torch.ones(n, 1)), "loop": loop,
                                                  "c": flamo.Gain(torch.ones(1, n))}),
                             "dry": flamo.Gain(torch.ones(1, 1))})
    expected = "\n".join([
        "Parallel (1 x 1) · 22 learnable, 3 fixed",
        "├─ wet: Series (1 x 1) · 21 learnable, 3 fixed",
        "│  ├─ b: Gain (3 x 1) · 3 learnable",
        "│  ├─ loop: Recursion (3 x 3) · 15 learnable, 3 fixed",
        "│  │  ├─ forward_path: Series (3 x 3, diagonal) · 12 learnable, 3 fixed",
        "│  │  │  ├─ delays: Delay (3 x 3, diagonal) · 0 learnable, 3 fixed",
        "│  │  │  └─ absorption: FIR (3 x 3, diagonal) · 12 learnable",
        "│  │  └─ feedback_path: Matrix (3 x 3) · 3 learnable",
        "│  └─ c: Gain (1 x 3) · 3 learnable",
        "└─ dry: Gain (1 x 1) · 1 learnable",
    ])
    assert flamo.describe(system) == expected
    assert system.summary() == expected
    assert flamo.Gain([1.0, 2.0]).summary() == "Gain (2 x 2, diagonal) · 2 learnable"
    assert "Recursion(" in repr(system)  # nn.Module's repr is untouched


def test_describe_rejects_other_objects():
    with pytest.raises(TypeError, match="flamo module or system"):
        flamo.describe(torch.nn.Linear(2, 2))
