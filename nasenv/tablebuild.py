"""Building a benchmark table: a plan of (architecture, seed) trainings, run in resumable shards.

A :class:`BuildPlan` fixes what is trained (dataset, space, fidelity, seeds) and cuts the
trainings into shards in seed-major order, so that a half-finished build already holds one seed of
every architecture. A :class:`ShardStore` keeps the results on disk:

* ``plan.json`` - the plan; a store refuses to continue a build under another plan;
* ``shard-NNNN.partial.jsonl`` - journal of a shard in progress: one JSON
  :class:`~nasenv.train.TrainResult` per line, appended and ``fsync``-ed as each training
  finishes (a line cut short by a crash is dropped when the journal is read back);
* ``shard-NNNN.jsonl`` - a finished shard, written atomically (temporary file, ``fsync``,
  rename) in plan order once all its trainings are done; its journal is then removed.

Killing a build therefore loses at most the trainings that were running; re-running it skips
everything on disk. Only the process that owns the store writes to it: workers (local processes
or Ray tasks) return results and the driver records them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasenv.results import COST_VERSION, FAILED_SCORE, FIDELITIES, TOP_K, TrainResult
from nasenv.space import SPACES, Architecture

Task = tuple[str, int]  # (canonical architecture string, seed)


DEVICES = ("cpu", "cuda")
"""The device types a build runs on (:attr:`BuildPlan.device`)."""


@dataclass(frozen=True)
class BuildPlan:
    """What a table build trains.

    Args:
        dataset: dataset registry name.
        space: name of the search space to tabulate (``nasenv.space.SPACES``).
        fidelity: name of the training budget (``nasenv.train.FIDELITIES``).
        seeds: training seeds; every architecture is trained once per seed.
        shard_size: trainings per shard.
        sample: if given, train only this many distinct architectures drawn uniformly from the
            space (e.g. the surrogate's training data outside the core); ``None``: all of them.
        sample_seed: seed of that draw.
        exclude: name of a space whose architectures the draw skips (e.g. ``"core"``).
        cost_version: the cost definition of the build's seconds
            (:data:`nasenv.results.COST_VERSION`); a plan stored without one is version 1. The
            trainer records its test passes apart, so its results join a build of either version
            exactly (:meth:`ShardStore.record`): a build begun under version 1 continues under it.
        device: the torch device type its trainings run on (``"cpu"``, ``"cuda"``); a plan
            stored without one is ``"cpu"``. Results on a GPU differ numerically from CPU ones,
            so a GPU build is its own build: a directory refuses a plan of another device and a
            result trained elsewhere (:meth:`ShardStore.record`).
    """

    dataset: str = "Books-20core"
    space: str = "core"
    fidelity: str = "tabulation"
    seeds: tuple[int, ...] = (0, 1, 2)
    shard_size: int = 24
    sample: int | None = None
    sample_seed: int = 0
    exclude: str | None = None
    cost_version: int = COST_VERSION
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ValueError(f"unknown space {self.space!r}; allowed: {sorted(SPACES)}")
        if self.fidelity not in FIDELITIES:
            raise ValueError(f"unknown fidelity {self.fidelity!r}; allowed: {sorted(FIDELITIES)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and non-empty, got {self.seeds}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if self.device not in DEVICES:
            raise ValueError(f"unknown device {self.device!r}; allowed: {list(DEVICES)}")
        if self.exclude is not None and self.exclude not in SPACES:
            raise ValueError(f"unknown space {self.exclude!r}; allowed: {sorted(SPACES)}")
        if self.sample is not None and self.sample < 1:
            raise ValueError(f"sample must be >= 1, got {self.sample}")

    def architectures(self) -> list[Architecture]:
        """The architectures to train, in plan order."""
        space = SPACES[self.space]
        if self.sample is None:
            excluded = SPACES[self.exclude] if self.exclude else None
            return [a for a in space if excluded is None or a not in excluded]
        rng = np.random.default_rng(self.sample_seed)
        chosen: dict[str, Architecture] = {}
        while len(chosen) < self.sample:
            arch = space.sample(rng)
            if self.exclude is None or arch not in SPACES[self.exclude]:
                chosen.setdefault(arch.to_string(), arch)
        return list(chosen.values())

    def tasks(self) -> list[Task]:
        """Every training, seed-major: all architectures with the first seed, then the next."""
        archs = [a.to_string() for a in self.architectures()]
        return [(arch, seed) for seed in self.seeds for arch in archs]

    def shards(self) -> list[list[Task]]:
        tasks = self.tasks()
        return [tasks[i : i + self.shard_size] for i in range(0, len(tasks), self.shard_size)]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["seeds"] = list(self.seeds)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildPlan:
        return cls(**{"cost_version": 1, "device": "cpu", **data, "seeds": tuple(data["seeds"])})


class PlanMismatchError(RuntimeError):
    """A build directory holds results of a different plan."""


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _task_of(record: dict[str, Any]) -> Task:
    return record["arch"], int(record["seed"])


class ShardStore:
    """The on-disk state of one build (see the module docstring for the layout).

    Args:
        directory: where the plan and shards live; created if missing.
        plan: the plan to build; must equal the stored one if the directory has one.
    """

    PLAN_FILE = "plan.json"

    def __init__(self, directory: Path | str, plan: BuildPlan) -> None:
        self.directory = Path(directory)
        self.plan = plan
        self.directory.mkdir(parents=True, exist_ok=True)
        plan_file = self.directory / self.PLAN_FILE
        if plan_file.exists():
            stored = BuildPlan.from_dict(json.loads(plan_file.read_text()))
            if stored != plan:
                raise PlanMismatchError(
                    f"{plan_file} holds another plan ({stored}); build into a new directory "
                    f"or rebuild with that plan"
                )
        else:
            write_atomic(plan_file, json.dumps(plan.to_dict(), indent=2) + "\n")
        self._shards = plan.shards()
        self._shard_of = {task: i for i, shard in enumerate(self._shards) for task in shard}

    @classmethod
    def open(cls, directory: Path | str) -> ShardStore:
        """The existing build in ``directory``, with the plan stored there.

        Raises:
            FileNotFoundError: ``directory`` holds no build plan.
        """
        plan_file = Path(directory) / cls.PLAN_FILE
        if not plan_file.exists():
            raise FileNotFoundError(f"no build in {directory}: {plan_file} is missing")
        return cls(directory, BuildPlan.from_dict(json.loads(plan_file.read_text())))

    @classmethod
    def resume(cls, directory: Path | str, plan: BuildPlan) -> ShardStore:
        """The build of ``plan`` in ``directory``, keeping the cost version it was begun under
        (results are converted to it), or a new build of ``plan`` if there is none.

        Raises:
            PlanMismatchError: ``directory`` holds a build of another plan.
        """
        plan_file = Path(directory) / cls.PLAN_FILE
        if plan_file.exists():
            stored = BuildPlan.from_dict(json.loads(plan_file.read_text()))
            plan = dataclasses.replace(plan, cost_version=stored.cost_version)
        return cls(directory, plan)

    def sealed_path(self, shard: int) -> Path:
        return self.directory / f"shard-{shard:04d}.jsonl"

    def journal_path(self, shard: int) -> Path:
        return self.directory / f"shard-{shard:04d}.partial.jsonl"

    @property
    def n_shards(self) -> int:
        return len(self._shards)

    def shard_of(self, task: Task) -> int:
        return self._shard_of[task]

    def is_sealed(self, shard: int) -> bool:
        return self.sealed_path(shard).exists()

    def records(self, shard: int) -> dict[Task, dict[str, Any]]:
        """Finished trainings of ``shard``, from its sealed file or its journal."""
        path = self.sealed_path(shard)
        if path.exists():
            lines = path.read_text(encoding="utf-8").splitlines()
            return {_task_of(r): r for r in map(json.loads, lines)}
        return self._read_journal(shard)

    def _read_journal(self, shard: int) -> dict[Task, dict[str, Any]]:
        path = self.journal_path(shard)
        if not path.exists():
            return {}
        data = path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):  # a crash cut the last line: drop it for good
            with open(path, "r+b") as f:
                f.truncate(len(complete))
                os.fsync(f.fileno())
        wanted = set(self._shards[shard])
        out: dict[Task, dict[str, Any]] = {}
        for line in complete.decode("utf-8").splitlines():
            record = json.loads(line)
            if _task_of(record) in wanted:
                out[_task_of(record)] = record
        return out

    def done(self) -> dict[Task, dict[str, Any]]:
        """Every finished training on disk."""
        out: dict[Task, dict[str, Any]] = {}
        for shard in range(self.n_shards):
            out.update(self.records(shard))
        return out

    def pending(self, done: Mapping[Task, Any] | None = None) -> list[Task]:
        """Trainings still to run, in plan order (``done``: a :meth:`done` already read)."""
        done = self.done() if done is None else done
        return [task for task in self.plan.tasks() if task not in done]

    def record(self, result: TrainResult | dict[str, Any]) -> bool:
        """Journal one finished training; seal its shard when complete. True if it sealed.

        Its seconds are stored under the plan's cost version (``TrainResult.with_cost_version``;
        ``ValueError`` if they cannot be converted).
        """
        if not isinstance(result, TrainResult):
            result = TrainResult.from_dict(result)
        if result.device.split(" ")[0] != self.plan.device:
            raise ValueError(
                f"{result.arch!r} (seed {result.seed}) trained on {result.device}; this build "
                f"({self.directory}) holds {self.plan.device} trainings only"
            )
        record = result.with_cost_version(self.plan.cost_version).to_dict()
        shard = self.shard_of(_task_of(record))
        if self.is_sealed(shard):
            return False
        with open(self.journal_path(shard), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return self._seal_if_complete(shard)

    def _seal_if_complete(self, shard: int) -> bool:
        records = self._read_journal(shard)
        if len(records) < len(self._shards[shard]):
            return False
        lines = [json.dumps(records[task]) for task in self._shards[shard]]
        write_atomic(self.sealed_path(shard), "\n".join(lines) + "\n")
        self.journal_path(shard).unlink()
        return True

    def results(self) -> Iterator[TrainResult]:
        """Every finished training as a :class:`TrainResult`, in plan order."""
        done = self.done()
        for task in self.plan.tasks():
            if task in done:
                yield TrainResult.from_dict(done[task])


def finished_trainings(directories: Iterable[Path]) -> list[TrainResult]:
    """Every finished training of the builds in ``directories``, in order; a directory that
    holds no build (no plan file) is skipped."""
    out: list[TrainResult] = []
    for directory in directories:
        if (Path(directory) / ShardStore.PLAN_FILE).exists():
            out += list(ShardStore.open(Path(directory)).results())
    return out


_CONTEXTS: dict[str, Any] = {}


def run_task(
    dataset: str, fidelity: str, arch: str, seed: int, threads: int = 1, device: str = "cpu"
) -> dict[str, Any]:
    """Train one (architecture, seed) of a plan in this process; the worker side of a build.

    The dataset's :class:`~nasenv.train.TrainingContext` is built once per process and reused,
    and the process's ``malloc`` keeps freed memory (:func:`nasenv.allocator.keep_freed_memory`).
    """
    from nasenv.allocator import keep_freed_memory
    from nasenv.data import load_dataset
    from nasenv.train import TrainingContext, train_architecture

    key = f"{dataset}@{device}"
    if key not in _CONTEXTS:
        keep_freed_memory()  # a build's worker process: the build owns it
        _CONTEXTS[key] = TrainingContext(load_dataset(dataset), device=device)
    config = dataclasses.replace(FIDELITIES[fidelity], threads=threads)
    result = train_architecture(Architecture.from_string(arch), _CONTEXTS[key], seed, config)
    return result.to_dict()


def assemble(
    store: ShardStore,
    seeds: tuple[int, ...] | None = None,
    base: ShardStore | None = None,
    more_seeds: Sequence[ShardStore] = (),
    **build: Any,
) -> Any:
    """The :class:`~nasenv.table.BenchmarkTable` of a build's finished trainings.

    Args:
        store: the build.
        seeds: the seeds to include (default: the plan's); each must be finished for every
            architecture, because a table never fills gaps.
        base: for a build that excludes a space (``core-v1`` without ``core``: the 944
            architectures of the encoder decision), the build of that space on the same task,
            budget and seeds; the table holds both, the whole of the build's space, with every
            training's seconds under the base's cost version (converted exactly,
            ``TrainResult.with_cost_version``), so its costs compare with the base table's.
        more_seeds: builds of other seeds of the same plan (task, space, budget, device; e.g.
            ``Books-20core`` seeds 3-4 beside the build of seeds 0-2); the table holds every
            seed of them all, in order, with every training's seconds under ``store``'s cost
            version.
        build: facts about how it was built, stored in the table's ``meta["build"]``.
    """
    from nasenv.data import load_dataset
    from nasenv.table import BenchmarkTable

    plan = store.plan
    planned = (*plan.seeds, *(seed for extra in more_seeds for seed in extra.plan.seeds))
    _check_more_seeds(plan, [extra.plan for extra in more_seeds])
    seeds = planned if seeds is None else seeds
    unknown = sorted(set(seeds) - set(planned))
    if unknown:
        raise ValueError(f"seeds {unknown} are not in the build plans' {list(planned)}")
    config = FIDELITIES[plan.fidelity]
    meta = {
        "dataset": plan.dataset,
        "dataset_sha256": load_dataset(plan.dataset).sha256,
        "space": plan.space,
        "fidelity": {
            "name": plan.fidelity,
            **{k: v for k, v in dataclasses.asdict(config).items() if k != "threads"},
        },
        "k": TOP_K,
        "build": build,
    }
    if base is None and plan.exclude is not None and plan.sample is None:
        raise ValueError(
            f"the build of {plan.space!r} leaves out the {plan.exclude!r} space: pass that "
            f"space's build as base (assemble_table.py --base), or the table would have gaps"
        )
    if base is None:
        archs = [a.to_string() for a in plan.architectures()]
        results: Iterable[TrainResult] = (
            r.with_cost_version(plan.cost_version)
            for part in (store, *more_seeds)
            for r in part.results()
            if r.seed in seeds
        )
        return BenchmarkTable.from_results(results, archs, list(seeds), meta)
    if more_seeds:
        raise ValueError("a table with a base build takes its seeds from one build each")
    _check_base(plan, base.plan, seeds)
    version = base.plan.cost_version
    archs = [a.to_string() for a in SPACES[plan.space]]
    results = (
        r.with_cost_version(version)
        for part in (base, store)
        for r in part.results()
        if r.seed in seeds
    )
    return BenchmarkTable.from_results(results, archs, list(seeds), meta)


def _check_more_seeds(plan: BuildPlan, others: Sequence[BuildPlan]) -> None:
    """Refuse builds of more seeds that train something else than ``plan``, or a seed twice."""
    seen = set(plan.seeds)
    for other in others:
        problems = [
            f"{name} {getattr(other, name)!r} (the build's: {getattr(plan, name)!r})"
            for name in ("dataset", "space", "fidelity", "device", "sample", "sample_seed")
            if getattr(other, name) != getattr(plan, name)
        ]
        if other.exclude != plan.exclude:
            problems.append(f"exclude {other.exclude!r} (the build's: {plan.exclude!r})")
        twice = sorted(seen & set(other.seeds))
        if twice:
            problems.append(f"seeds {twice} already in another build")
        seen |= set(other.seeds)
        if problems:
            raise ValueError(f"a build of more seeds does not fit: {'; '.join(problems)}")


def _check_base(plan: BuildPlan, base: BuildPlan, seeds: tuple[int, ...]) -> None:
    """Refuse a base build that is not the excluded space of ``plan`` on its task and budget."""
    problems = [
        f"{name} {getattr(base, name)!r} (the build's: {getattr(plan, name)!r})"
        for name in ("dataset", "fidelity", "device")
        if getattr(base, name) != getattr(plan, name)
    ]
    if plan.exclude is None or base.space != plan.exclude or base.sample is not None:
        problems.append(
            f"space {base.space!r} (sample {base.sample}); it must be the whole space the build "
            f"excludes ({plan.exclude!r})"
        )
    if not set(seeds) <= set(base.seeds):
        problems.append(f"seeds {list(base.seeds)} (the table's: {list(seeds)})")
    if problems:
        raise ValueError(f"the base build does not fit: {'; '.join(problems)}")


@dataclass(frozen=True)
class Check:
    """One stored training retrained live: stored and new best validation Recall@K."""

    arch: str
    seed: int
    stored: float
    live: float
    seed_std: float  # standard deviation of the stored values over the table's seeds

    @property
    def difference(self) -> float:
        return self.live - self.stored

    @property
    def within_seed_spread(self) -> bool:
        """The live value differs from the stored one by at most the seeds' standard deviation
        (1e-6 slack; a one-seed table has no spread, so only an exact reproduction passes)."""
        return abs(self.difference) <= self.seed_std + 1e-6


def check_entries(
    table: Any,
    context: Any,
    entries: list[tuple[int, int]],
    threads: int | None = 1,
) -> Iterator[Check]:
    """Retrain ``(row, seed)`` entries of ``table`` on ``context`` at the table's budget."""
    from nasenv.results import TrainConfig
    from nasenv.train import train_architecture

    stored_budget = {k: table.meta["fidelity"][k] for k in ("max_epochs", "patience", "batch_size")}
    config = TrainConfig(**stored_budget, threads=threads)
    for row, seed in entries:
        live = train_architecture(table.arch(row), context, seed, config)
        per_seed = [table.query(row, s).val_recall for s in table.seeds]
        yield Check(
            arch=table.arch_strings[row],
            seed=seed,
            stored=table.query(row, seed).val_recall,
            live=live.val_recall_best if live.ok else FAILED_SCORE,
            seed_std=float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0,
        )
