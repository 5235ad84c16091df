"""The tests' small search space and sample-table settings (no torch import: child processes
of the tests load them quickly)."""

from __future__ import annotations

from nasenv.space import STOP, SearchSpace

TINY_SPACE = SearchSpace(
    "tiny",
    {
        **{f"layer{d}": (STOP, "lgconv", "sage") for d in range(1, 4)},
        **{f"aggr{d}": ("none", "mean") for d in range(1, 4)},
        "combine": ("last", "mean"),
        "dim": (16,),
        "items": ("id",),
        "lr": (0.02,),
        "reg": (1e-4,),
    },
)
"""58 architectures: the space of the committed sample table ``tests/data/tiny.npz``."""
SAMPLE_SEEDS = (0, 1, 2)
SAMPLE_BUDGET = (8, 3)  # (max_epochs, patience) of the sample table
