"""The benchmark table: stored trainings of every architecture of a space, and its query API.

File format (version 2; version 1 is the same without ``cost_version``): one ``.npz`` (zip of
``.npy`` arrays, read with pickle disabled) per task and space, ``nasenv/tables/<dataset
slug>.npz`` for the core space (``<dataset slug>-<space>.npz`` for another, e.g. ``core-v1``),
listed with its SHA-256 in ``nasenv/tables/SHA256SUMS`` and verified on load. With ``A``
architectures, ``S`` seeds and ``E`` = the tabulation budget's ``max_epochs``:

==========================  ===========  ==========================================================
array                       shape/dtype  meaning
==========================  ===========  ==========================================================
``format_version``          () int64     2 (1: a table of cost version 1)
``cost_version``            () int64     the cost definition of ``epoch_seconds``
                                         (``nasenv.results.COST_VERSION``; absent: 1)
``meta``                    () str       JSON: dataset, dataset_sha256, space, fidelity, k, build
``arch``                    (A,) str     canonical architecture strings, in the space's order
``seed``                    (S,) int64   training seeds
``ok``                      (A, S) bool  the training finished without diverging
``n_epochs``                (A, S) int16 epochs trained before early stopping
``val_recall``, ``val_ndcg``  (A, S, E)  validation Recall@K / NDCG@K after each epoch
``test_recall_at_best``,    (A, S, E)    test metric of the best validation epoch so far
``test_ndcg_at_best``
``epoch_seconds``           (A, S, E)    cumulative cost in wall seconds (cost version 2:
                                         training and validation; 1: also the test passes)
``n_params``                (A,) int64   trainable parameters
``inference_ms``            (A, S) f32   milliseconds to score every user against every item
==========================  ===========  ==========================================================

Curves are float32 and NaN after ``n_epochs``. Because the budget's early stopping can be replayed
on a stored curve, every smaller budget ``(max_epochs, patience)`` is answered exactly.

A table's arrays and the arrays it caches (:meth:`BenchmarkTable.epochs`) are read-only views
(writing raises ``ValueError: assignment destination is read-only``): :func:`load_table` caches
the tables it loads, so one table is shared by every env of the process. Copy an array to change
it; ``scores`` and ``costs`` return a new array on every call.

Test arrays are only read by :meth:`BenchmarkTable.test_metrics`; no score, ranking or top-k of
this module looks at them.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from nasenv.data import (
    DATA_DIR,
    DATASETS,
    DEFAULT_DATASET,
    get_spec,
    read_listed,
    read_npz,
    read_only,
    verify_file,
    write_npz,
)
from nasenv.results import (
    COST_VERSION,
    FAILED_SCORE,
    FIDELITIES,
    METRICS,
    TOP_K,
    TrainConfig,
    TrainResult,
    stopping_epoch,
)
from nasenv.space import Architecture

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
"""Format 1 is format 2 without ``cost_version``: a table whose seconds follow cost version 1.
A table of cost version 1 is still written as format 1, so rebuilding a shipped table from its
build reproduces its bytes."""
TABLE_DIR = DATA_DIR.parent / "tables"
CURVES = ("val_recall", "val_ndcg", "test_recall_at_best", "test_ndcg_at_best", "epoch_seconds")

ArchLike = Architecture | str | int
SeedLike = int | Literal["mean"]
FidelityLike = str | tuple[int, int] | None


class UnknownArchitectureError(ValueError):
    """An architecture that the table does not hold."""


RELEASES: Mapping[int, frozenset[tuple[str, str]]] = MappingProxyType(
    {
        0: frozenset(),
        1: frozenset(
            (task, "core") for task in ("Books-20core", "Books-10core", "Books-USA-20core")
        ),
    }
)
"""Table releases: the ``(task, space)`` tables each release ships anew; every other table of a
release is its predecessor's. A shipped table never changes (what a published env id answers
from stays bit-identical): more seeds of a task enter as a new release's file instead.

* release 0: the tables the version 0 ids answer from (Books-20core seeds 0-2; Books-10core
  and Books-USA-20core seed 0 only; the small tasks and the ``core-v1`` tables seeds 0-2);
* release 1: every seed built: Books-20core seeds 0-4, Books-10core and Books-USA-20core seeds
  0-2. Their seeds of release 0 are the same trainings, bit for bit.
"""


def table_filename(dataset: str, space: str = "core", release: int = 0) -> str:
    """``Books-20core`` -> ``books-20core.npz``; with ``space="core-v1"``:
    ``books-20core-core-v1.npz``; a table that release ``r`` >= 1 ships anew gets ``-r<r>``
    (``books-20core-r1.npz``), one it keeps is its predecessor's file.

    Raises:
        ValueError: an unknown dataset or release.
    """
    if release not in RELEASES:
        raise ValueError(f"unknown table release {release!r}; allowed: {sorted(RELEASES)}")
    slug = get_spec(dataset).slug
    name = slug if space == "core" else f"{slug}-{space}"
    for version in range(release, 0, -1):
        if (dataset, space) in RELEASES[version]:
            return f"{name}-r{version}.npz"
    return f"{name}.npz"


@dataclass(frozen=True)
class TableRecord:
    """Validation-side facts of one stored architecture, for one seed or averaged over seeds.

    ``status`` is ``"failed"`` if the (or any averaged) training diverged; a failed seed counts
    as :data:`FAILED_SCORE` in the scores and its epochs still count in the cost.
    """

    arch: str
    seed: SeedLike
    status: Literal["ok", "failed"]
    val_recall: float
    val_ndcg: float
    epochs: float
    cost_seconds: float
    n_params: int
    inference_ms: float


class BenchmarkTable:
    """Query API over one table file (see the module docstring for the format).

    Architectures can be given as :class:`~nasenv.space.Architecture`, canonical string or row
    index; seeds as one of :attr:`seeds` or ``"mean"``; fidelities as a name of
    :data:`nasenv.train.FIDELITIES`, a ``(max_epochs, patience)`` pair no larger than the stored
    budget, or ``None`` for the stored budget.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], source: str = "<memory>") -> None:
        arrays = MappingProxyType({name: read_only(array) for name, array in arrays.items()})
        version = int(arrays["format_version"])
        if version not in READABLE_FORMATS:
            raise ValueError(
                f"{source}: table format {version}, this package reads {list(READABLE_FORMATS)}"
            )
        self.cost_version = int(arrays["cost_version"]) if version >= 2 else 1
        """The cost definition of the stored seconds (:data:`nasenv.results.COST_VERSION`)."""
        self.source = source
        self.meta: dict[str, Any] = json.loads(str(arrays["meta"]))
        self.arrays: Mapping[str, np.ndarray] = arrays
        """The file's arrays (module docstring), as read-only views in a read-only mapping."""
        self.arch_strings: tuple[str, ...] = tuple(str(a) for a in arrays["arch"])
        self.seeds: tuple[int, ...] = tuple(int(s) for s in arrays["seed"])
        self._row = {arch: i for i, arch in enumerate(self.arch_strings)}
        stored = self.meta["fidelity"]
        self.max_epochs, self.patience = int(stored["max_epochs"]), int(stored["patience"])
        self._cache: dict[tuple[str, tuple[int, int]], np.ndarray] = {}

    @functools.cached_property
    def _by_hash(self) -> dict[str, int]:
        return {Architecture.from_string(a).hash: i for i, a in enumerate(self.arch_strings)}

    # -- files ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, sha256: str | None = None) -> BenchmarkTable:
        """Read a table file, refusing it if ``sha256`` is given and differs."""
        path = Path(path)
        if sha256 is not None:
            verify_file(path, sha256, hint="Reinstall the package or rebuild the table.")
        return cls(read_npz(path), source=str(path))

    def save(self, path: str | Path) -> None:
        """Write the table; the bytes depend only on its content."""
        write_npz(Path(path), self.arrays)

    @classmethod
    def from_results(
        cls,
        results: Iterable[TrainResult],
        archs: Sequence[str],
        seeds: Sequence[int],
        meta: dict[str, Any],
    ) -> BenchmarkTable:
        """Assemble a table from one :class:`TrainResult` per (architecture, seed).

        ``meta`` must hold ``fidelity`` (``max_epochs``, ``patience``); missing trainings raise,
        and so do results of different cost versions (their seconds mean different things).
        """
        row = {arch: i for i, arch in enumerate(archs)}
        column = {seed: j for j, seed in enumerate(seeds)}
        shape = (len(archs), len(seeds))
        epochs = int(meta["fidelity"]["max_epochs"])
        curves = {name: np.full((*shape, epochs), np.nan, np.float32) for name in CURVES}
        arrays: dict[str, np.ndarray] = {
            "format_version": np.array(FORMAT_VERSION),
            "meta": np.array(json.dumps(meta, sort_keys=True)),
            "arch": np.array(list(archs)),
            "seed": np.array(list(seeds), dtype=np.int64),
            "ok": np.zeros(shape, bool),
            "n_epochs": np.zeros(shape, np.int16),
            "n_params": np.zeros(len(archs), np.int64),
            "inference_ms": np.full(shape, np.nan, np.float32),
            **curves,
        }
        filled = np.zeros(shape, bool)
        cost_versions: dict[int, str] = {}
        for result in results:
            cost_versions.setdefault(result.cost_version, result.arch)
            i, j = row[result.arch], column[result.seed]
            n = len(result.val_recall)
            filled[i, j] = True
            arrays["ok"][i, j] = result.ok and n > 0
            arrays["n_epochs"][i, j] = n
            arrays["n_params"][i] = result.n_params
            arrays["inference_ms"][i, j] = result.inference_ms
            for name in CURVES:
                curves[name][i, j, :n] = getattr(result, name)
        if not filled.all():
            i, j = np.argwhere(~filled)[0]
            raise ValueError(
                f"{int((~filled).sum())} (architecture, seed) trainings are missing, "
                f"e.g. {archs[i]!r} with seed {seeds[j]}; a table never fills gaps"
            )
        if len(cost_versions) > 1:
            examples = ", ".join(f"{v} ({a!r})" for v, a in sorted(cost_versions.items()))
            raise ValueError(
                f"the results follow different cost versions: {examples}; a table holds one "
                "(see nasenv.results.COST_VERSION)"
            )
        (cost_version,) = cost_versions or {COST_VERSION: ""}
        if cost_version != 1:
            arrays["cost_version"] = np.array(cost_version)
        else:
            arrays["format_version"] = np.array(1)
        return cls(arrays)

    # -- identity ------------------------------------------------------------------------------

    @property
    def dataset(self) -> str:
        return str(self.meta["dataset"])

    @property
    def space_name(self) -> str:
        return str(self.meta["space"])

    @property
    def k(self) -> int:
        """The cutoff of the stored metrics (``meta["k"]``; :data:`nasenv.results.TOP_K` for
        every shipped table)."""
        return int(self.meta.get("k", TOP_K))

    def __len__(self) -> int:
        return len(self.arch_strings)

    def __contains__(self, arch: object) -> bool:
        if isinstance(arch, Architecture):
            arch = arch.to_string()
        return isinstance(arch, str) and arch in self._row

    def index(self, arch: ArchLike) -> int:
        """Row of ``arch``; :class:`UnknownArchitectureError` if the table does not hold it."""
        if isinstance(arch, (int, np.integer)) and not isinstance(arch, bool):
            if not 0 <= arch < len(self):
                message = f"index {arch} outside the table's 0..{len(self) - 1}"
                raise UnknownArchitectureError(message)
            return int(arch)
        key = arch.to_string() if isinstance(arch, Architecture) else arch
        if not isinstance(key, str):
            raise TypeError(f"expected an Architecture, string or index, got {type(arch).__name__}")
        if key not in self._row:
            key = Architecture.from_string(key).to_string()  # validates, names bad values
        if key not in self._row:
            raise UnknownArchitectureError(
                f"{key!r} is not in the {self.dataset} table of the {self.space_name!r} space "
                f"({len(self)} architectures); use the surrogate or live back end outside it"
            )
        return self._row[key]

    def arch(self, index: int) -> Architecture:
        return Architecture.from_string(self.arch_strings[self.index(index)])

    def hash(self, arch: ArchLike) -> str:
        return self.arch(self.index(arch)).hash

    def by_hash(self, digest: str) -> Architecture:
        if digest not in self._by_hash:
            raise UnknownArchitectureError(f"no architecture with hash {digest!r} in the table")
        return self.arch(self._by_hash[digest])

    # -- budgets -------------------------------------------------------------------------------

    def budget(self, fidelity: FidelityLike = None) -> tuple[int, int]:
        """``(max_epochs, patience)`` of ``fidelity``; refuses budgets beyond the stored one."""
        if fidelity is None:
            return self.max_epochs, self.patience
        if isinstance(fidelity, str):
            if fidelity not in FIDELITIES:
                raise ValueError(f"unknown fidelity {fidelity!r}; allowed: {sorted(FIDELITIES)}")
            config: TrainConfig = FIDELITIES[fidelity]
            fidelity = (config.max_epochs, config.patience)
        max_epochs, patience = (int(v) for v in fidelity)
        if not (1 <= max_epochs <= self.max_epochs and 1 <= patience <= self.patience):
            raise ValueError(
                f"fidelity (max_epochs={max_epochs}, patience={patience}) is not answerable: the "
                f"table stores max_epochs={self.max_epochs}, patience={self.patience}"
            )
        return max_epochs, patience

    def epochs(self, fidelity: FidelityLike = None) -> np.ndarray:
        """``(A, S)`` epochs each training runs under ``fidelity`` (its early stopping replayed);
        cached, read-only."""
        budget = self.budget(fidelity)
        key = ("epochs", budget)
        if key not in self._cache:
            max_epochs, patience = budget
            stored, curve = self.arrays["n_epochs"], self.arrays["val_recall"]
            out = np.empty(stored.shape, np.int64)
            for i, j in np.ndindex(stored.shape):
                n = min(int(stored[i, j]), max_epochs)
                out[i, j] = stopping_epoch(tuple(curve[i, j, :n].tolist()), patience)
            out.setflags(write=False)
            self._cache[key] = out
        return self._cache[key]

    def _columns(self, seed: SeedLike) -> list[int]:
        if seed == "mean":
            return list(range(len(self.seeds)))
        if isinstance(seed, (int, np.integer)) and int(seed) in self.seeds:
            return [self.seeds.index(int(seed))]
        raise ValueError(f"seed {seed!r} is not in the table; allowed: {[*self.seeds, 'mean']}")

    def _at_best(self, name: str, fidelity: FidelityLike) -> np.ndarray:
        """``(A, S)`` value of curve ``name`` at each training's best epoch under ``fidelity``
        (:data:`FAILED_SCORE` for a diverged training)."""
        key = (name, self.budget(fidelity))
        if key not in self._cache:
            epochs = self.epochs(fidelity)
            val = self.arrays["val_recall"]
            mask = np.arange(val.shape[2]) < epochs[..., None]
            best = np.where(mask, np.nan_to_num(val, nan=-np.inf), -np.inf).argmax(axis=2)
            values = np.take_along_axis(self.arrays[name], best[..., None], axis=2)[..., 0]
            at_best = np.where(self.arrays["ok"], values, FAILED_SCORE).astype(np.float64)
            at_best.setflags(write=False)
            self._cache[key] = at_best
        return self._cache[key]

    def _last(self, name: str, fidelity: FidelityLike) -> np.ndarray:
        """``(A, S)`` value of curve ``name`` at each training's last epoch under ``fidelity``."""
        key = (f"last:{name}", self.budget(fidelity))
        if key not in self._cache:
            epochs = np.maximum(self.epochs(fidelity), 1)
            values = np.take_along_axis(self.arrays[name], epochs[..., None] - 1, axis=2)[..., 0]
            last = np.nan_to_num(values.astype(np.float64), nan=0.0)
            last.setflags(write=False)
            self._cache[key] = last
        return self._cache[key]

    # -- queries -------------------------------------------------------------------------------

    def scores(
        self, metric: str = "recall", seed: SeedLike = "mean", fidelity: FidelityLike = None
    ) -> np.ndarray:
        """``(A,)`` best validation ``metric`` of every architecture (failed seeds count 0)."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; allowed: {list(METRICS)}")
        values = self._at_best(f"val_{metric}", fidelity)
        return values[:, self._columns(seed)].mean(axis=1)

    def costs(self, seed: SeedLike = "mean", fidelity: FidelityLike = None) -> np.ndarray:
        """``(A,)`` cost seconds under ``fidelity`` (per seed, or the mean over seeds), of the
        definition :attr:`cost_version`."""
        return self._last("epoch_seconds", fidelity)[:, self._columns(seed)].mean(axis=1)

    def query(
        self, arch: ArchLike, seed: SeedLike = "mean", fidelity: FidelityLike = None
    ) -> TableRecord:
        """Validation metrics, epochs and cost of one architecture."""
        i, columns = self.index(arch), self._columns(seed)

        def pick(values: np.ndarray) -> float:
            return float(values[i, columns[0]] if len(columns) == 1 else values[i, columns].mean())

        return TableRecord(
            arch=self.arch_strings[i],
            seed=seed if seed == "mean" else int(seed),
            status="ok" if all(self.arrays["ok"][i, columns]) else "failed",
            val_recall=pick(self._at_best("val_recall", fidelity)),
            val_ndcg=pick(self._at_best("val_ndcg", fidelity)),
            epochs=pick(self.epochs(fidelity)),
            cost_seconds=pick(self._last("epoch_seconds", fidelity)),
            n_params=int(self.arrays["n_params"][i]),
            inference_ms=pick(self.arrays["inference_ms"]),
        )

    def test_metrics(
        self, arch: ArchLike, seed: SeedLike = "mean", fidelity: FidelityLike = None
    ) -> dict[str, float]:
        """Test Recall@K and NDCG@K at the best validation epoch. For reporting only."""
        i, columns = self.index(arch), self._columns(seed)
        recall = self._at_best("test_recall_at_best", fidelity)[i, columns].mean()
        ndcg = self._at_best("test_ndcg_at_best", fidelity)[i, columns].mean()
        return {"test_recall": float(recall), "test_ndcg": float(ndcg)}

    def top_k(
        self,
        k: int = 10,
        metric: str = "recall",
        seed: SeedLike = "mean",
        fidelity: FidelityLike = None,
        where: Callable[[Architecture], bool] | None = None,
    ) -> list[tuple[Architecture, float]]:
        """The ``k`` best architectures by validation ``metric``, best first (ties: row order);
        with ``where``, the best of those for which it holds (``where=lambda a: a.items !=
        "id"``: the best text architectures)."""
        scores = self.scores(metric, seed, fidelity)
        order = np.argsort(-scores, kind="stable")
        if where is not None:
            order = np.array([i for i in order if where(self.arch(int(i)))], dtype=np.int64)
        return [(self.arch(int(i)), float(scores[i])) for i in order[:k]]

    def result(self, arch: ArchLike, seed: int) -> TrainResult:
        """The stored training of ``(arch, seed)`` as a :class:`TrainResult`."""
        i, (j,) = self.index(arch), self._columns(seed)
        n = int(self.arrays["n_epochs"][i, j])
        budget = {k: self.meta["fidelity"][k] for k in ("max_epochs", "patience", "batch_size")}
        curves: dict[str, Any] = {
            name: tuple(float(v) for v in self.arrays[name][i, j, :n]) for name in CURVES
        }
        return TrainResult(
            arch=self.arch_strings[i],
            dataset=self.dataset,
            seed=int(seed),
            config=TrainConfig(**budget),
            status="ok" if self.arrays["ok"][i, j] else "failed",
            reason="" if self.arrays["ok"][i, j] else "diverged (see the build journal)",
            **curves,
            n_params=int(self.arrays["n_params"][i]),
            inference_ms=float(self.arrays["inference_ms"][i, j]),
            train_seconds=math.nan,  # not stored, nor are the test passes
            cost_version=self.cost_version,
        )

    def __repr__(self) -> str:
        return (
            f"BenchmarkTable({self.dataset!r}, space={self.space_name!r}, {len(self)} "
            f"architectures x seeds {list(self.seeds)}, budget {self.max_epochs}/{self.patience})"
        )


def load_table(
    dataset: str = DEFAULT_DATASET,
    directory: str | Path | None = None,
    space: str = "core",
    release: int = 0,
) -> BenchmarkTable:
    """Load the shipped table of ``dataset`` and ``space`` (default the core space; the version
    1 tables are ``space="core-v1"``) in table ``release`` (:data:`RELEASES`; default 0, what
    the version 0 ids answer from), verified against ``SHA256SUMS``; cached per file and
    directory, so every caller shares one table and its read-only arrays.

    Raises:
        ValueError: unknown dataset or release.
        FileNotFoundError: no table was built for it.
        ChecksumError: the file's SHA-256 differs from the recorded one.
    """
    filename = table_filename(dataset, space, release)
    return _load_table(filename, Path(directory) if directory else TABLE_DIR)


def shipped_tables(
    exclude: str | None = None, tasks: Sequence[str] | None = None, release: int = 0
) -> dict[str, BenchmarkTable]:
    """The shipped core table in ``release`` of every task of ``tasks`` (default: every
    registered task, in registry order) but ``exclude``; tasks without a table are left out, an
    unknown task raises ``ValueError``."""
    for name in tasks or ():
        get_spec(name)
    tables = {}
    for name in DATASETS if tasks is None else tasks:
        if name != exclude:
            try:
                tables[name] = load_table(name, release=release)
            except FileNotFoundError:
                continue
    return tables


@functools.lru_cache(maxsize=8)
def _load_table(filename: str, directory: Path) -> BenchmarkTable:
    how = "build it with scripts/build_table.py and scripts/assemble_table.py"
    arrays, _ = read_listed(directory, filename, "table", how)
    return BenchmarkTable(arrays, source=str(directory / filename))
