"""Shared fixtures: a tiny synthetic books dataset with planted structure, and an instant
evaluator."""

from __future__ import annotations

import pytest

from nasenv.data import BooksDataset
from nasenv.testing import (
    SAMPLE_BUDGET,
    SAMPLE_SEEDS,
    TINY_SPACE,
    PlantedEvaluator,
    make_tiny_dataset,
)
from nasenv.train import TrainingContext

# The small space, dataset, sample-table settings and planted task live in ``nasenv.testing``
# (the benchmarks' smoke modes use them too); re-exported here for tests that take them from the
# conftest.
__all__ = ["SAMPLE_BUDGET", "SAMPLE_SEEDS", "TINY_SPACE", "PlantedEvaluator", "make_tiny_dataset"]


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Every test on one intra-op thread: the suite's models are tiny, CI has two cores, and
    issue 17 measured one SB3 learning test at 85 s in the suite and 10 s on one thread."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_dataset() -> BooksDataset:
    return make_tiny_dataset()


@pytest.fixture(scope="session")
def tiny_context(tiny_dataset: BooksDataset) -> TrainingContext:
    return TrainingContext(tiny_dataset, k=5)


@pytest.fixture
def planted() -> PlantedEvaluator:
    return PlantedEvaluator()


@pytest.fixture
def exploding_adam(monkeypatch):
    """Adam with a learning rate of 1e30 whatever the architecture says: a training that
    diverges, for architectures that (rightly) cannot name such a rate themselves."""
    import torch

    adam = torch.optim.Adam
    monkeypatch.setattr(torch.optim, "Adam", lambda params, lr: adam(params, lr=1e30))
