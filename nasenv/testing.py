"""Small spaces, a synthetic dataset and a sample table for smoke runs and tests.

Like PyG's ``FakeDataset``: things that look like the real ones, small enough to train in
seconds, for the package's tests and the benchmarks' smoke modes alike.

* :data:`TINY_SPACE`: 58 architectures of three layer slots (``lgconv``/``sage``), with one
  choice each for ``dim``, ``items``, ``lr`` and ``reg``;
* :func:`make_tiny_dataset`: a synthetic books dataset with planted structure (two user groups,
  each interacting mostly with its own half of the items);
* :class:`PlantedEvaluator`: an instant evaluator whose score is the share of decisions that
  match a planted architecture, the task the agents' hyperparameters are tuned on;
* :func:`build_sample_table`: every architecture of ``TINY_SPACE`` trained for real on that
  dataset (:data:`SAMPLE_SEEDS`, :data:`SAMPLE_BUDGET`), through the same code as the shipped
  tables; :func:`load_sample_table` reads such a table back from a path.

The repository commits two built sample tables (``tests/data/tiny.npz`` and ``tiny-b.npz``,
written by ``python -m tests.make_sample_table``); the package ships no table of them. Importing
this module does not import torch (child processes of the tests load it quickly); building a
table does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from nasenv.data import BooksDataset, read_checksums
from nasenv.evaluators import Evaluation
from nasenv.prepare import split_per_user
from nasenv.space import CORE, ENCODER_SLOTS, FROZEN, SLOTS, STOP, Architecture, SearchSpace
from nasenv.table import BenchmarkTable

__all__ = [
    "SAMPLE_BUDGET",
    "SAMPLE_SEEDS",
    "SAMPLE_TASKS",
    "TINY_SPACE",
    "PlantedEvaluator",
    "build_sample_table",
    "load_sample_table",
    "make_tiny_dataset",
]

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
"""58 architectures: the space of the sample tables."""
SAMPLE_SEEDS = (0, 1, 2)
"""The training seeds of a sample table."""
SAMPLE_BUDGET = (8, 3)
"""``(max_epochs, patience)`` of a sample table."""
SAMPLE_TASKS = {"tiny": 0, "tiny-b": 1}
"""Sample task name -> seed of its synthetic dataset (two tasks, for transfer smoke runs)."""


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


def build_sample_table(name: str = "tiny") -> BenchmarkTable:
    """Train every architecture of ``TINY_SPACE`` on the synthetic task ``name`` (a key of
    :data:`SAMPLE_TASKS`) with every seed of :data:`SAMPLE_SEEDS`, one thread each (about a
    minute on one core). Stored seconds are measured wall time: a rebuilt table has other
    bytes (and checksum) but the same scores."""
    from nasenv.results import TrainConfig
    from nasenv.train import TrainingContext, train_architecture

    if name not in SAMPLE_TASKS:
        raise ValueError(f"unknown sample task {name!r}; known: {sorted(SAMPLE_TASKS)}")
    dataset = dataclasses.replace(make_tiny_dataset(seed=SAMPLE_TASKS[name]), name=name)
    context = TrainingContext(dataset, k=5)
    max_epochs, patience = SAMPLE_BUDGET
    config = TrainConfig(max_epochs=max_epochs, patience=patience, batch_size=64, threads=1)
    archs = [a.to_string() for a in TINY_SPACE]
    results = [
        train_architecture(arch, context, seed, config)
        for seed in SAMPLE_SEEDS
        for arch in TINY_SPACE
    ]
    meta = {
        "dataset": dataset.name,
        "dataset_sha256": dataset.sha256,
        "space": TINY_SPACE.name,
        "fidelity": {
            "name": "sample",
            "max_epochs": max_epochs,
            "patience": patience,
            "batch_size": config.batch_size,
        },
        "k": 5,
        "build": {"note": "nasenv.testing.build_sample_table"},
    }
    return BenchmarkTable.from_results(results, archs, list(SAMPLE_SEEDS), meta)


def load_sample_table(path: str | Path) -> BenchmarkTable:
    """A sample table written by :func:`build_sample_table`, checked against the ``SHA256SUMS``
    beside it when that lists the file; refused if its space is not :data:`TINY_SPACE`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no sample table at {path}")
    try:
        sha256 = read_checksums(path.parent).get(path.name)
    except FileNotFoundError:  # no SHA256SUMS beside it: nothing to check against
        sha256 = None
    table = BenchmarkTable.load(path, sha256)
    if table.space_name != TINY_SPACE.name:
        raise ValueError(
            f"{path} is a table over the space {table.space_name!r}, not {TINY_SPACE.name!r}"
        )
    return table


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
        frozen = arch.encoder == self.target.encoder == FROZEN
        slots = SLOTS if frozen else ENCODER_SLOTS  # the version 1 slots where one is adapted
        pairs = zip(arch.decisions(slots), self.target.decisions(slots), strict=True)
        score = sum(a == b for a, b in pairs) / len(slots) * 0.1 + 0.001 * seed
        return Evaluation(arch.to_string(), seed, "ok", "", score, score / 2, self.cost, 100)

    def test_metrics(self, arch: Architecture, seed: int) -> dict[str, float]:
        return {"test_recall": 0.0, "test_ndcg": 0.0}
