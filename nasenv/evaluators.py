"""Evaluation back ends: one :class:`Evaluator` protocol, answered by live training
(:class:`LiveEvaluator`), by the benchmark table (:class:`TableEvaluator`) and by a surrogate
model of the full space (:class:`SurrogateEvaluator`).

:class:`LiveEvaluator` trains through :func:`nasenv.train.train_architecture` and caches every
result in SQLite keyed by (dataset SHA-256, architecture, seed, fidelity), so that several env
instances and processes share work. A cache entry that cannot be decoded is recomputed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from nasenv.data import DEFAULT_DATASET, BooksDataset, load_dataset
from nasenv.results import FAILED_SCORE, FIDELITIES, TrainConfig, TrainResult
from nasenv.space import Architecture
from nasenv.surrogate import Surrogate
from nasenv.table import BenchmarkTable, load_table

METRICS = ("recall", "ndcg")


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
        cost_seconds: training cost of the evaluation in (measured) wall seconds.
        n_params: trainable parameters.
    """

    arch: str
    seed: int | None
    status: Literal["ok", "failed"]
    reason: str
    val_recall: float
    val_ndcg: float
    cost_seconds: float
    n_params: int

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
            cost_seconds=result.epoch_seconds[-1] if result.epoch_seconds else 0.0,
            n_params=result.n_params,
        )


@runtime_checkable
class Evaluator(Protocol):
    """Anything that scores architectures on validation and, separately, reports test metrics."""

    @property
    def dataset_name(self) -> str: ...

    def evaluate(self, arch: Architecture, seed: int) -> Evaluation: ...

    def test_metrics(self, arch: Architecture, seed: int) -> dict[str, float]: ...


def default_cache_path() -> Path:
    """``$RECNAS_CACHE`` if set, else ``~/.cache/recnas/live.sqlite``."""
    env = os.environ.get("RECNAS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "recnas" / "live.sqlite"


class ResultCache:
    """A SQLite store of :class:`TrainResult` values, safe for concurrent processes (WAL mode).

    A cache never stops a search: an unreadable entry is recomputed, and a file that is not a
    readable database is moved aside (``<name>.corrupt-<time>``, with a warning) and replaced by
    an empty cache.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._create()
        except sqlite3.DatabaseError as error:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.time():.0f}")
            warnings.warn(
                f"{self.path} is not a readable cache ({error}); moved to {aside}, "
                "starting an empty one",
                stacklevel=2,
            )
            for suffix in ("", "-wal", "-shm"):
                damaged = Path(f"{self.path}{suffix}")
                if damaged.exists():
                    damaged.replace(Path(f"{aside}{suffix}"))
            self._create()

    def _create(self) -> None:
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS results (dataset TEXT, arch TEXT, seed INTEGER, "
                "fidelity TEXT, result TEXT NOT NULL, PRIMARY KEY (dataset, arch, seed, fidelity))"
            )

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection that commits on success and is always closed."""
        db = sqlite3.connect(self.path, timeout=60)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            with db:
                yield db
        finally:
            db.close()

    @staticmethod
    def _key(dataset: str, arch: str, seed: int, config: TrainConfig) -> tuple:
        fidelity = {k: v for k, v in dataclasses.asdict(config).items() if k != "threads"}
        return dataset, arch, seed, json.dumps(fidelity, sort_keys=True)

    def get(self, dataset: str, arch: str, seed: int, config: TrainConfig) -> TrainResult | None:
        """The stored result, or ``None`` if absent or unreadable (then it is recomputed)."""
        try:
            with self._connect() as db:
                row = db.execute(
                    "SELECT result FROM results WHERE dataset=? AND arch=? AND seed=? "
                    "AND fidelity=?",
                    self._key(dataset, arch, seed, config),
                ).fetchone()
        except sqlite3.DatabaseError as error:
            warnings.warn(f"cache {self.path} unreadable ({error}); recomputing", stacklevel=2)
            return None
        if row is None:
            return None
        try:
            return TrainResult.from_dict(json.loads(row[0]))
        except (ValueError, TypeError, KeyError) as error:
            warnings.warn(
                f"corrupt cache entry for {arch} seed {seed} ({error}); recomputing", stacklevel=2
            )
            return None

    def put(self, dataset: str, result: TrainResult) -> None:
        key = self._key(dataset, result.arch, result.seed, result.config)
        try:
            with self._connect() as db:
                db.execute(
                    "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)",
                    (*key, json.dumps(result.to_dict())),
                )
        except sqlite3.DatabaseError as error:
            warnings.warn(
                f"cache {self.path} unwritable ({error}); result not cached", stacklevel=2
            )


class LiveEvaluator:
    """Trains architectures for real (through :mod:`nasenv.train`), with a persistent cache.

    Args:
        dataset: a registered task name or a loaded :class:`~nasenv.data.BooksDataset`.
        fidelity: a key of :data:`nasenv.train.FIDELITIES` or a :class:`TrainConfig`.
        cache: SQLite file (default :func:`default_cache_path`); ``None`` disables caching.
    """

    def __init__(
        self,
        dataset: str | BooksDataset = DEFAULT_DATASET,
        fidelity: str | TrainConfig = "tabulation",
        cache: str | Path | None = "default",
    ) -> None:
        self.dataset = load_dataset(dataset) if isinstance(dataset, str) else dataset
        if isinstance(fidelity, str):
            if fidelity not in FIDELITIES:
                raise ValueError(f"unknown fidelity {fidelity!r}; allowed: {sorted(FIDELITIES)}")
            fidelity = FIDELITIES[fidelity]
        self.config = fidelity
        path = default_cache_path() if cache == "default" else cache
        self.cache = ResultCache(path) if path is not None else None
        self._context: Any = None  # nasenv.train.TrainingContext, built at the first training

    @property
    def dataset_name(self) -> str:
        return self.dataset.name

    def result(self, arch: Architecture, seed: int) -> TrainResult:
        """The full training result, from the cache or by training now."""
        key = self.dataset.sha256 or self.dataset.name
        arch_string = arch.to_string()
        if self.cache is not None:
            cached = self.cache.get(key, arch_string, seed, self.config)
            if cached is not None:
                return cached
        from nasenv.train import TrainingContext, train_architecture  # torch: only when training

        if self._context is None:
            self._context = TrainingContext(self.dataset)
        result = train_architecture(arch, self._context, seed, self.config)
        if self.cache is not None:
            self.cache.put(key, result)
        return result

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
        )

    def test_metrics(self, arch: Architecture, seed: int) -> dict[str, float]:
        return self.table.test_metrics(arch, seed, self.fidelity)


class SurrogateEvaluator:
    """Answers from a fitted :class:`~nasenv.surrogate.Surrogate`: any architecture of the full
    space, with seed noise drawn per (architecture, seed) and predicted training seconds.

    Args:
        surrogate: the fitted model (must predict ``val_recall``, ``val_ndcg`` and
            ``log_seconds``; ``test_*`` if test metrics are to be reported).
        dataset: name of the task it was fitted on.
    """

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
            cost_seconds=drawn["log_seconds"],
            n_params=0,  # not modelled
        )

    def test_metrics(self, arch: Architecture, seed: int) -> dict[str, float]:
        """Predicted seed-mean test metrics (no seed noise)."""
        return {
            name: float(self.surrogate.predict([arch], name)[0])
            for name in ("test_recall", "test_ndcg")
        }
