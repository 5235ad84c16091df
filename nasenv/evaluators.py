"""Evaluation back ends: one :class:`Evaluator` protocol, answered by live training
(:class:`LiveEvaluator`), by the benchmark table (:class:`TableEvaluator`) and by a surrogate
model of the full space (:class:`SurrogateEvaluator`).

Every :class:`Evaluation` says where its numbers come from (:data:`SOURCES`): a surrogate's
numbers are predictions, never measurements, and its test metrics are keyed
``predicted_test_recall`` / ``predicted_test_ndcg``; the measured keys ``test_recall`` /
``test_ndcg`` are those of real trainings (the table's or live ones).

:class:`LiveEvaluator` trains through :func:`nasenv.train.train_architecture` and caches every
result in a :class:`~nasenv.cache.ResultCache` (SQLite), keyed by what makes a result valid
(dataset SHA-256, architecture, seed, fidelity, device, package, protocol and torch versions), so
that several env instances and processes share work and never train one key at the same time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from nasenv.cache import CacheKey, ResultCache, default_cache_path
from nasenv.data import DEFAULT_DATASET, BooksDataset, load_dataset, with_encoder
from nasenv.results import (
    COST_VERSION,
    FAILED_SCORE,
    FIDELITIES,
    METRICS,
    TrainConfig,
    TrainResult,
)
from nasenv.space import Architecture
from nasenv.surrogate import Surrogate
from nasenv.table import BenchmarkTable, load_table

Source = Literal["table", "surrogate", "live"]
SOURCES: tuple[Source, ...] = ("table", "surrogate", "live")
"""Where an evaluation's numbers come from: ``"table"`` (real trainings stored in the benchmark
table), ``"surrogate"`` (a model's *prediction*, not a measurement) or ``"live"`` (a real
training, run now or read from the live back end's cache)."""

PREDICTED_SOURCES: frozenset[str] = frozenset({"surrogate"})
"""The sources whose numbers are predictions."""

PREDICTED_PREFIX = "predicted_"
"""Prefix of the keys of predicted test metrics (``predicted_test_recall``, ...)."""

FRESH_SEED_START = 1000
"""First of the *fresh* training seeds (1000, 1001, ...) that measure a searched architecture
anew: far from the evaluation seeds (0, 1, 2 in the tables), so no number of the search is
reused."""


def fresh_seeds(n: int) -> tuple[int, ...]:
    """The ``n`` fresh seeds ``FRESH_SEED_START .. FRESH_SEED_START + n - 1``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return tuple(range(FRESH_SEED_START, FRESH_SEED_START + n))


def is_predicted(source: str | None) -> bool:
    """Whether numbers from ``source`` (a :data:`SOURCES` entry) are predictions."""
    return source in PREDICTED_SOURCES


@dataclass(frozen=True)
class Evaluation:
    """What an agent may know about one evaluated architecture (validation only).

    Args:
        arch: canonical architecture string.
        seed: training seed of this evaluation (``None``: a mean over seeds).
        status: ``"ok"`` or ``"failed"`` (diverged; scores are then :data:`FAILED_SCORE`).
        reason: why it failed, else empty.
        val_recall: best validation Recall@20.
        val_ndcg: validation NDCG@20 at that epoch.
        cost_seconds: what the evaluation costs a search, in wall seconds: training and
            validation up to the stopping epoch, never the test passes (the definition
            ``cost_version`` of :data:`nasenv.results.COST_VERSION`).
        n_params: trainable parameters.
        source: where these numbers come from (:data:`SOURCES`). Default ``"live"``: an
            evaluator that predicts instead of training must say ``"surrogate"``.
        cost_version: the cost definition ``cost_seconds`` follows (1 for the tables built
            before it changed, and for the surrogate fitted on them).
        inference_ms: milliseconds of one ranking pass of the trained model (NaN where not
            measured, as on the surrogate).
    """

    arch: str
    seed: int | None
    status: Literal["ok", "failed"]
    reason: str
    val_recall: float
    val_ndcg: float
    cost_seconds: float
    n_params: int
    source: Source = "live"
    cost_version: int = COST_VERSION
    inference_ms: float = math.nan

    @property
    def predicted(self) -> bool:
        """Whether the scores are a prediction (a surrogate's), not a measurement."""
        return is_predicted(self.source)

    def score(self, metric: str) -> float:
        """The validation metric ``"recall"`` or ``"ndcg"``."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; allowed: {list(METRICS)}")
        return self.val_recall if metric == "recall" else self.val_ndcg

    @classmethod
    def from_result(cls, result: TrainResult) -> Evaluation:
        ok = result.ok and bool(result.val_recall)
        return cls(
            arch=result.arch,
            seed=result.seed,
            status="ok" if ok else "failed",
            reason=result.reason,
            val_recall=result.val_recall_best if ok else FAILED_SCORE,
            val_ndcg=result.val_ndcg_best if ok else FAILED_SCORE,
            cost_seconds=result.cost_seconds,
            n_params=result.n_params,
            source="live",
            cost_version=result.cost_version,
            inference_ms=result.inference_ms,
        )


@runtime_checkable
class Evaluator(Protocol):
    """Anything that scores architectures on validation and, separately, reports test metrics."""

    @property
    def dataset_name(self) -> str: ...

    def evaluate(self, arch: Architecture, seed: int) -> Evaluation: ...

    def test_metrics(self, arch: Architecture, seed: int) -> dict[str, float]: ...


class LiveEvaluator:
    """Trains architectures for real (through :mod:`nasenv.train`), with a persistent cache.

    Concurrent evaluators (threads or processes) sharing a cache file train each key once: the
    others wait for its result (see :mod:`nasenv.cache`).

    Args:
        dataset: a registered task name or a loaded :class:`~nasenv.data.BooksDataset`.
        fidelity: a key of :data:`nasenv.train.FIDELITIES` or a :class:`TrainConfig`.
        cache: SQLite file (default :func:`default_cache_path`); ``None`` disables caching.
        device: where training runs (``"cpu"``, ``"cuda"``, ...); part of the cache key.

    Raises:
        nasenv.cache.CacheError: the cache path cannot be used (a directory, no permission).
    """

    def __init__(
        self,
        dataset: str | BooksDataset = DEFAULT_DATASET,
        fidelity: str | TrainConfig = "tabulation",
        cache: str | Path | None = "default",
        *,
        device: str = "cpu",
    ) -> None:
        self.dataset = load_dataset(dataset) if isinstance(dataset, str) else dataset
        if isinstance(fidelity, str):
            if fidelity not in FIDELITIES:
                raise ValueError(f"unknown fidelity {fidelity!r}; allowed: {sorted(FIDELITIES)}")
            fidelity = FIDELITIES[fidelity]
        self.config = fidelity
        self.device = device
        path = default_cache_path() if cache == "default" else cache
        self.cache = ResultCache(path) if path is not None else None
        self._context: Any = None  # nasenv.train.TrainingContext, built at the first training

    @property
    def dataset_name(self) -> str:
        return self.dataset.name

    def cache_key(self, arch: Architecture, seed: int) -> CacheKey:
        """The cache key of training ``arch`` with ``seed`` here (this code, this device)."""
        task = with_encoder(self.dataset, arch.encoder)  # adapted features: their own SHA-256
        dataset = task.sha256 or task.name
        return CacheKey.current(dataset, arch.to_string(), seed, self.config, self.device)

    def result(self, arch: Architecture, seed: int) -> TrainResult:
        """The full training result, from the cache (possibly after waiting for another process
        that trains it) or by training now."""
        if self.cache is None:
            return self._train(arch, seed, None)
        return self.cache.get_or_compute(
            self.cache_key(arch, seed), lambda heartbeat: self._train(arch, seed, heartbeat)
        )

    def _train(
        self, arch: Architecture, seed: int, heartbeat: Callable[[], None] | None
    ) -> TrainResult:
        """Train now; ``heartbeat()`` after every epoch keeps the cache claim alive."""
        from nasenv.train import TrainingContext, train_architecture  # torch: only when training

        if self._context is None:
            self._context = TrainingContext(self.dataset, device=self.device)
        on_epoch = None if heartbeat is None else (lambda epoch, value: heartbeat())
        return train_architecture(arch, self._context, seed, self.config, on_epoch=on_epoch)

    def evaluate(self, arch: Architecture, seed: int) -> Evaluation:
        return Evaluation.from_result(self.result(arch, seed))

    def test_metrics(self, arch: Architecture, seed: int) -> dict[str, float]:
        """Test Recall@20 and NDCG@20 at the best validation epoch of that run."""
        result = self.result(arch, seed)
        return {"test_recall": result.test_recall, "test_ndcg": result.test_ndcg}


class TableEvaluator:
    """Answers from the benchmark table: instant, and exactly what the trainings measured.

    Args:
        table: a :class:`~nasenv.table.BenchmarkTable` or the dataset whose shipped table to load.
        fidelity: a key of :data:`nasenv.train.FIDELITIES` or ``(max_epochs, patience)``, no
            larger than the table's budget; ``None``: the table's own budget.
    """

    def __init__(
        self,
        table: BenchmarkTable | str = DEFAULT_DATASET,
        fidelity: str | tuple[int, int] | None = None,
    ) -> None:
        self.table = load_table(table) if isinstance(table, str) else table
        self.fidelity = fidelity
        self.table.budget(fidelity)  # refuse an unanswerable budget now, not at the first query

    @property
    def dataset_name(self) -> str:
        return self.table.dataset

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.table.seeds

    def evaluate(self, arch: Architecture, seed: int) -> Evaluation:
        record = self.table.query(arch, seed, self.fidelity)
        return Evaluation(
            arch=record.arch,
            seed=seed,
            status=record.status,
            reason="" if record.status == "ok" else "diverged during tabulation",
            val_recall=record.val_recall,
            val_ndcg=record.val_ndcg,
            cost_seconds=record.cost_seconds,
            n_params=record.n_params,
            source="table",
            cost_version=self.table.cost_version,
            inference_ms=record.inference_ms,
        )

    def test_metrics(self, arch: Architecture, seed: int) -> dict[str, float]:
        return self.table.test_metrics(arch, seed, self.fidelity)


class SurrogateEvaluator:
    """Answers from a fitted :class:`~nasenv.surrogate.Surrogate`: any architecture of the full
    space, with seed noise drawn per (architecture, seed) and predicted training seconds.

    Every number is a prediction: evaluations have ``source="surrogate"`` and test metrics are
    keyed ``predicted_test_recall`` / ``predicted_test_ndcg``. :meth:`live_evaluator` is the
    live back end that measures what it predicts.

    Args:
        surrogate: the fitted model (must predict ``val_recall``, ``val_ndcg`` and
            ``log_seconds``; ``test_*`` if test metrics are to be reported).
        dataset: name of the task it was fitted on.
    """

    fidelity = "tabulation"
    """The budget it predicts: that of the trainings it was fitted on."""

    def __init__(self, surrogate: Surrogate, dataset: str = DEFAULT_DATASET) -> None:
        missing = {"val_recall", "val_ndcg", "log_seconds"} - set(surrogate.targets)
        if missing:
            raise ValueError(f"the surrogate lacks the targets {sorted(missing)}")
        self.surrogate = surrogate
        self._dataset = dataset

    @property
    def dataset_name(self) -> str:
        return self._dataset

    def evaluate(self, arch: Architecture, seed: int) -> Evaluation:
        drawn = self.surrogate.sample(arch, seed)
        return Evaluation(
            arch=arch.to_string(),
            seed=seed,
            status="ok",
            reason="",
            val_recall=drawn["val_recall"],
            val_ndcg=drawn["val_ndcg"],
            cost_seconds=drawn["seconds"],
            n_params=0,  # not modelled
            source="surrogate",
            cost_version=self.surrogate.cost_version,
        )

    def test_metrics(self, arch: Architecture, seed: int) -> dict[str, float]:
        """Predicted seed-mean test metrics (no seed noise), keyed ``predicted_test_recall`` and
        ``predicted_test_ndcg``: a prediction is never reported under a measurement's key."""
        return {
            PREDICTED_PREFIX + name: float(self.surrogate.predict([arch], name)[0])
            for name in ("test_recall", "test_ndcg")
        }

    def live_evaluator(
        self, cache: str | Path | None = "default", *, device: str = "cpu"
    ) -> LiveEvaluator:
        """The live back end that measures what this surrogate predicts: real trainings on the
        same dataset at the same budget (:attr:`fidelity`), cached in ``cache``."""
        return LiveEvaluator(self.dataset_name, self.fidelity, cache, device=device)
