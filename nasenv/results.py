"""What a training run is asked to do and what it returns, without importing torch.

:class:`TrainConfig` is the budget (fidelity), :class:`TrainResult` the outcome with its
per-epoch curves. The benchmark table and the table-mode environment need only these, so they
load in a fraction of a second; the training itself lives in :mod:`nasenv.train`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class TrainConfig:
    """The training budget (fidelity) and protocol.

    Args:
        max_epochs: hard limit on epochs.
        patience: stop after this many epochs without a better validation Recall@K.
        batch_size: positive interactions per step.
        threads: ``torch.set_num_threads`` during the run (``None``: leave as is).
    """

    max_epochs: int = 40
    patience: int = 5
    batch_size: int = 16384
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_epochs", "patience", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


FAILED_SCORE = 0.0
"""Validation (and reward) score of a training that diverged."""

TOP_K = 20
"""The cutoff K of Recall@K and NDCG@K everywhere: trainings, tables (``meta["k"]``), rewards."""

METRICS = ("recall", "ndcg")
"""The validation metrics a reward or a ranking can use: Recall@K and NDCG@K."""

FIDELITIES: dict[str, TrainConfig] = {
    "low": TrainConfig(max_epochs=5, patience=2),
    "tabulation": TrainConfig(max_epochs=30, patience=5),
    "converged": TrainConfig(max_epochs=100, patience=10),
}
"""Named training budgets. ``tabulation`` is the benchmark table's (chosen and measured in
``benchmarks/eval_speed.py``); ``converged`` is the reference it is checked against."""


PROTOCOL_VERSION = 4
"""Version of the training protocol: bumped whenever the numbers a training produces change
(models, training loop, negative sampling, metrics, data splits, the cost definition) without a
change of ``nasenv.__version__``. The live cache misses every result of another version
(:mod:`nasenv.cache`), and each :class:`TrainResult` records its own.

Version 4: the ``gat`` layer's aggregation as sparse products (:mod:`nasenv.attention`), the same
function as PyG's GATConv in another floating-point order; architectures without a ``gat`` layer
(the whole core space) train bit for bit as in version 3. Full-space builds mix versions 3 and 4.
Version 3: the L2 penalty summed over the input rows weighted by their counts in the batch
(:func:`nasenv.train.l2_penalty`), not over the gathered rows: the same value and gradient in
another floating-point order, so a training's curves differ from version 2 in their last digits
and, through them, within the seed spread (``benchmarks/RESULTS.md``). Tables and builds mix
versions 2 and 3. Version 2: seconds of cost version 2 (:data:`COST_VERSION`).
"""

COST_VERSION = 2
"""The definition of an evaluation's cost that this package measures, in seconds.

Version 2: wall seconds of the training steps and the validation passes up to the epoch where
early stopping ends the run, which is what a real search pays for one evaluation. The test passes
(reporting only), the inference-latency measurement and the model's setup are timed apart and
never charged. Every cost in the package follows one version: ``TrainResult.epoch_seconds``,
a table's ``epoch_seconds`` (``BenchmarkTable.cost_version``), a surrogate's predicted seconds,
``Evaluation.cost_seconds``, ``info["cost_seconds"]`` and the runner's seconds budgets.

Version 1 (every table and build made before version 0.3.0 of the package, and the shipped
surrogate, which is fitted on them) also charged the test pass of each improving epoch to the
epoch after it; ``benchmarks/cost_definition.py`` measures that share. Stored seconds keep the
version they were measured under: a table, a build and a surrogate refuse to mix versions.
"""


@dataclass(frozen=True)
class TrainResult:
    """Outcome of one training run. Curves have one entry per completed epoch.

    ``test_recall_at_best[e]`` is the test Recall@K of the best validation epoch among the first
    ``e + 1`` epochs, so that any shorter budget's test metric can be read off without retraining.
    """

    arch: str
    dataset: str
    seed: int
    config: TrainConfig
    status: Literal["ok", "failed"]
    reason: str
    val_recall: tuple[float, ...]
    val_ndcg: tuple[float, ...]
    test_recall_at_best: tuple[float, ...]
    test_ndcg_at_best: tuple[float, ...]
    epoch_seconds: tuple[float, ...]
    """Cumulative cost after each epoch (:data:`COST_VERSION` ``cost_version``)."""
    n_params: int
    inference_ms: float
    train_seconds: float = field(default=0.0)
    """Seconds of the training steps alone (NaN where not stored, as in a table)."""
    cost_version: int = field(default=COST_VERSION)
    """The definition ``epoch_seconds`` follows; records written before it existed are 1."""
    epoch_test_seconds: tuple[float, ...] = field(default=())
    """Cumulative seconds of the test passes after each epoch, never charged (empty where not
    recorded: tables, and results of older versions). With it, :meth:`with_cost_version`
    converts the seconds exactly between cost versions."""
    device: str = field(default="cpu")
    """Where the run trained: ``"cpu"``, or a GPU as ``"cuda (<device name>)"`` (records written
    before it was kept are ``"cpu"``). Results of different devices differ numerically, so a
    table build holds one device (:class:`nasenv.tablebuild.BuildPlan`)."""
    protocol: int = field(default=2)
    """The :data:`PROTOCOL_VERSION` of the code that trained it (records written before it was
    kept are 2, or older where ``cost_version`` is 1)."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def best_epoch(self) -> int:
        """1-based epoch with the highest validation Recall@K (0 if none finished)."""
        if not self.val_recall:
            return 0
        return max(range(len(self.val_recall)), key=self.val_recall.__getitem__) + 1

    @property
    def val_recall_best(self) -> float:
        return self.val_recall[self.best_epoch - 1] if self.val_recall else float("nan")

    @property
    def val_ndcg_best(self) -> float:
        return self.val_ndcg[self.best_epoch - 1] if self.val_ndcg else float("nan")

    @property
    def cost_seconds(self) -> float:
        """What this run costs a search (``epoch_seconds`` at its last epoch; 0 if none ran)."""
        return self.epoch_seconds[-1] if self.epoch_seconds else 0.0

    @property
    def core_seconds(self) -> float:
        """:attr:`cost_seconds` times the threads it trained on (1 where not recorded): what the
        run took of a machine's cores, as a table build counts it."""
        return self.cost_seconds * (self.config.threads or 1)

    @property
    def test_seconds(self) -> float:
        """Seconds of all test passes (NaN where not recorded)."""
        return self.epoch_test_seconds[-1] if self.epoch_test_seconds else math.nan

    def with_cost_version(self, version: int) -> TrainResult:
        """This run with its ``epoch_seconds`` under cost ``version`` (1 or 2).

        Version 1 charged the test passes of epochs before ``e`` to epoch ``e``, so the two differ
        by :attr:`epoch_test_seconds` shifted by one epoch: exact, where that is recorded.

        Raises:
            ValueError: an unknown version, or the test passes were not recorded.
        """
        if version not in (1, 2):
            raise ValueError(f"unknown cost version {version!r}; allowed: [1, 2]")
        if version == self.cost_version:
            return self
        if len(self.epoch_test_seconds) != len(self.epoch_seconds):
            raise ValueError(
                f"{self.arch!r} (seed {self.seed}) did not record its test passes: its cost "
                f"version {self.cost_version} cannot be converted to {version}"
            )
        sign = 1.0 if version == 1 else -1.0
        before = (0.0, *self.epoch_test_seconds)[: len(self.epoch_test_seconds)]
        seconds = tuple(s + sign * t for s, t in zip(self.epoch_seconds, before, strict=True))
        return dataclasses.replace(self, epoch_seconds=seconds, cost_version=version)

    @property
    def test_recall(self) -> float:
        return self.test_recall_at_best[-1] if self.test_recall_at_best else float("nan")

    @property
    def test_ndcg(self) -> float:
        return self.test_ndcg_at_best[-1] if self.test_ndcg_at_best else float("nan")

    def at_fidelity(self, max_epochs: int, patience: int) -> TrainResult:
        """This run as if it had been trained with a smaller ``max_epochs`` and ``patience``.

        Exact for the curves and ``epoch_seconds``, because training never depends on the
        stopping rule: the shorter run is a prefix of this one, ending where its own
        early-stopping rule fires. ``train_seconds``, stored as a total only, becomes NaN when
        the prefix is shorter: its share of it is not known.
        """
        if max_epochs > self.config.max_epochs or patience > self.config.patience:
            raise ValueError(
                f"fidelity (max_epochs={max_epochs}, patience={patience}) exceeds the run's "
                f"(max_epochs={self.config.max_epochs}, patience={self.config.patience})"
            )
        epochs = stopping_epoch(self.val_recall[:max_epochs], patience)
        return dataclasses.replace(
            self,
            config=dataclasses.replace(self.config, max_epochs=max_epochs, patience=patience),
            val_recall=self.val_recall[:epochs],
            val_ndcg=self.val_ndcg[:epochs],
            test_recall_at_best=self.test_recall_at_best[:epochs],
            test_ndcg_at_best=self.test_ndcg_at_best[:epochs],
            epoch_seconds=self.epoch_seconds[:epochs],
            epoch_test_seconds=self.epoch_test_seconds[:epochs],
            train_seconds=self.train_seconds if epochs == len(self.val_recall) else math.nan,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (inverse: :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        data = dict(data)
        data.setdefault("cost_version", 1)  # written before versions were recorded
        data["config"] = TrainConfig(**data["config"])
        for key in (
            "val_recall",
            "val_ndcg",
            "test_recall_at_best",
            "test_ndcg_at_best",
            "epoch_seconds",
            "epoch_test_seconds",
        ):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)


class EarlyStopping:
    """The stopping rule: stop after ``patience`` epochs without a better validation value."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best = -math.inf
        self.since_best = 0

    def update(self, value: float) -> bool:
        """Record one epoch's validation value; True if it is a new best."""
        if value > self.best:
            self.best, self.since_best = value, 0
            return True
        self.since_best += 1
        return False

    @property
    def stop(self) -> bool:
        return self.since_best >= self.patience


def stopping_epoch(curve: tuple[float, ...], patience: int) -> int:
    """Number of epochs early stopping with ``patience`` runs on a validation ``curve``."""
    rule = EarlyStopping(patience)
    for epoch, value in enumerate(curve, start=1):
        rule.update(value)
        if rule.stop:
            return epoch
    return len(curve)
