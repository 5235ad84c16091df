"""Shared fixtures: a tiny synthetic books dataset with planted structure."""

from __future__ import annotations

import numpy as np
import pytest

from nasenv.data import BooksDataset
from nasenv.evaluators import Evaluation
from nasenv.prepare import split_per_user
from nasenv.space import CORE, SLOTS, Architecture
from nasenv.train import TrainingContext
from tests.spaces import SAMPLE_BUDGET, SAMPLE_SEEDS, TINY_SPACE

__all__ = ["SAMPLE_BUDGET", "SAMPLE_SEEDS", "TINY_SPACE", "PlantedEvaluator", "make_tiny_dataset"]


def make_tiny_dataset(n_users: int = 40, n_items: int = 30, seed: int = 0) -> BooksDataset:
    """Two user groups, each interacting mostly with its own half of the items."""
    rng = np.random.default_rng(seed)
    pairs = set()
    for user in range(n_users):
        group = user % 2
        own = np.arange(group, n_items, 2)
        for item in rng.choice(own, size=8, replace=False):
            pairs.add((user, int(item)))
        pairs.add((user, int(rng.integers(n_items))))
    pairs_array = np.array(sorted(pairs), dtype=np.int64)
    train, val, test = split_per_user(pairs_array, n_users, (0.6, 0.2, 0.2), seed)
    text = rng.standard_normal((n_items, 8)).astype(np.float32)
    text[:, 0] += np.where(np.arange(n_items) % 2 == 0, 2.0, -2.0)
    return BooksDataset(
        name="tiny",
        n_users=n_users,
        n_items=n_items,
        train=train,
        val=val,
        test=test,
        item_text=text,
        item_isbn=np.array([f"{i:010d}" for i in range(n_items)]),
        item_title=np.array([f"Book {i}" for i in range(n_items)]),
        item_author=np.array(["Anon"] * n_items),
        user_country=np.array(["usa"] * n_users),
        sha256="0" * 64,
    )


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


class PlantedEvaluator:
    """Instant evaluator: the score is the fraction of slots that match a planted architecture."""

    def __init__(self, target: Architecture | None = None, cost: float = 2.0) -> None:
        self.target = target or CORE[len(CORE) // 3]
        self.cost = cost
        self.calls = 0

    @property
    def dataset_name(self) -> str:
        return "planted"

    def evaluate(self, arch: Architecture, seed: int) -> Evaluation:
        self.calls += 1
        hits = sum(a == b for a, b in zip(arch.decisions(), self.target.decisions(), strict=True))
        score = hits / len(SLOTS) * 0.1 + 0.001 * seed
        return Evaluation(arch.to_string(), seed, "ok", "", score, score / 2, self.cost, 100)

    def test_metrics(self, arch: Architecture, seed: int) -> dict[str, float]:
        return {"test_recall": 0.0, "test_ndcg": 0.0}


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
