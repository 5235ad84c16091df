"""The benchmark protocol and the leaderboard's metrics: the one home of both.

The leaderboard of ``README.md`` and ``benchmarks/RESULTS.md`` scores a search agent by what its
*incumbent* is worth: after ``t`` evaluations, the architecture with the best reward seen so far
(a single seed's validation score, as the agent saw it), valued at its seed-mean validation score
in the table. From that curve come

* the **regret** after ``t`` evaluations: the table's best seed-mean score minus the incumbent's;
* the **hitting time** of the top 1%: the first evaluation whose incumbent is in the best 1% of
  the table's architectures (``inf`` for a run that never gets there), summarised by its median
  over runs with a bootstrap interval (a median copes with runs that never arrive).

:data:`PROTOCOL` fixes the rest: the env id and its arguments (``gym.make("RecNAS-Books-v0")``
is registered from it), the budget, the number of runs and their seeds. The shipped agents'
runs under it are in the package (:func:`reference_runs`), so that a new agent is scored beside
them by the same code (``recnas leaderboard``, :mod:`agents.leaderboard`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasenv.data import read_listed, read_npz, write_npz
from nasenv.table import TABLE_DIR, BenchmarkTable


@dataclass(frozen=True)
class Protocol:
    """How a leaderboard run is made and scored.

    Args:
        env_id: the registered id every run searches (made with no arguments).
        dataset: its task; the class default of :class:`~nasenv.env.RecNASEnv`.
        backend: its back end (the table: every reward a stored training).
        seed_policy: ``"random"``: each evaluation is one training seed drawn by the env from its
            ``np_random``, so agents see real seed noise.
        metric: the reward and the score, validation Recall@20.
        fidelity: the table's own budget (30 epochs, patience 5).
        budget: evaluations per run.
        runs: runs per agent.
        first_seed: run ``i`` uses seed ``first_seed + i`` for the agent and the env's reset.
            The agents' hyperparameters were chosen on a planted task with seeds 0-11
            (``tests/test_agents.py``), never on these runs.
        top_fraction: the hitting-time target, the best 1% of the table's architectures.
    """

    env_id: str = "RecNAS-Books-v0"
    dataset: str = "Books-20core"
    backend: str = "table"
    seed_policy: str = "random"
    metric: str = "recall"
    fidelity: str = "tabulation"
    budget: int = 500
    runs: int = 50
    first_seed: int = 100
    top_fraction: float = 0.01

    def registration_kwargs(self) -> dict[str, Any]:
        """The arguments ``env_id`` is registered with (dataset, metric and fidelity are the
        env's defaults; a test checks that they equal this protocol's)."""
        return {"backend": self.backend, "seed_policy": self.seed_policy}

    def seeds(self, runs: int | None = None) -> range:
        """The seeds of the first ``runs`` runs (default: all)."""
        return range(self.first_seed, self.first_seed + (self.runs if runs is None else runs))


PROTOCOL = Protocol()
"""The benchmark protocol of ``RecNAS-Books-v0`` and its leaderboard."""

REFERENCE_FILE = "leaderboard-books-20core.npz"
"""The shipped agents' runs under :data:`PROTOCOL`, in ``nasenv/tables`` (see
:func:`reference_runs`)."""


def incumbent_curve(
    archs: Sequence[str | int], rewards: Sequence[float], table: BenchmarkTable
) -> np.ndarray:
    """Table row of the best-rewarded architecture after each evaluation (the earliest among
    equal rewards), for evaluations of ``archs`` (strings or table rows) with ``rewards``."""
    rows = np.empty(len(rewards), dtype=np.int64)
    best_reward, best_row = -math.inf, -1
    for i, (arch, reward) in enumerate(zip(archs, rewards, strict=True)):
        if reward > best_reward:
            best_reward = reward
            best_row = arch if isinstance(arch, (int, np.integer)) else table.index(arch)
        rows[i] = best_row
    return rows


def top_threshold(scores: np.ndarray, fraction: float) -> float:
    """The score an architecture needs to be in the top ``fraction`` of ``scores``; at least the
    best one counts."""
    ranked = np.sort(np.asarray(scores))[::-1]
    return float(ranked[max(1, math.ceil(fraction * len(ranked))) - 1])


def hitting_time(curve: np.ndarray, threshold: float) -> float:
    """First evaluation (1-based) whose incumbent score reaches ``threshold``; inf if never."""
    hits = np.flatnonzero(np.asarray(curve) >= threshold - 1e-12)
    return float(hits[0] + 1) if len(hits) else math.inf


def median_interval(
    values: Sequence[float], level: float = 0.95, draws: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Bootstrap percentile interval of the median of ``values`` (``inf`` = never reached)."""
    rng = np.random.default_rng(seed)
    array = np.asarray(values, float)
    medians = np.sort(np.median(array[rng.integers(len(array), size=(draws, len(array)))], axis=1))
    tail = (1 - level) / 2
    return float(medians[int(tail * draws)]), float(medians[int((1 - tail) * draws) - 1])


@dataclass(frozen=True)
class Runs:
    """One agent's runs under a protocol, reduced to what the leaderboard reads.

    Attributes:
        agent: its name.
        seeds: one per run.
        incumbents: ``(runs, budget)`` table rows of the incumbent after each evaluation.
        seconds: ``(runs, budget)`` simulated training seconds spent after each evaluation.
        distinct: distinct architectures evaluated in each run.
        wall_seconds: each run's wall time.
    """

    agent: str
    seeds: np.ndarray
    incumbents: np.ndarray
    seconds: np.ndarray
    distinct: np.ndarray
    wall_seconds: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.seeds)
        if self.incumbents.shape != self.seconds.shape or self.incumbents.shape[0] != n:
            raise ValueError(
                f"{self.agent}: {n} seeds, incumbents {self.incumbents.shape} and seconds "
                f"{self.seconds.shape} must have one row per run and one column per evaluation"
            )


@dataclass(frozen=True)
class Row:
    """One agent's line of the leaderboard."""

    agent: str
    runs: int
    final_regret: float
    final_regret_se: float
    median_hit: float
    hit_interval: tuple[float, float]
    reached: float
    median_hit_best: float
    reached_best: float
    distinct: float
    simulated_hours: float
    wall_seconds: float


def regret_curves(runs: Runs, table: BenchmarkTable, metric: str = PROTOCOL.metric) -> np.ndarray:
    """``(runs, budget)`` regret of the incumbent after each evaluation."""
    scores = table.scores(metric, "mean")
    return float(scores.max()) - scores[runs.incumbents]


def score(runs: Runs, table: BenchmarkTable, protocol: Protocol = PROTOCOL) -> Row:
    """The leaderboard row of ``runs`` (top 1% and the single best as targets)."""
    scores = table.scores(protocol.metric, "mean")
    values = scores[runs.incumbents]
    regret = float(scores.max()) - values
    top = top_threshold(scores, protocol.top_fraction)
    hits = [hitting_time(curve, top) for curve in values]
    hits_best = [hitting_time(curve, float(scores.max())) for curve in values]
    n = len(runs.seeds)
    return Row(
        agent=runs.agent,
        runs=n,
        final_regret=float(regret[:, -1].mean()),
        final_regret_se=float(regret[:, -1].std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
        median_hit=float(np.median(hits)),
        hit_interval=median_interval(hits),
        reached=float(np.mean(np.isfinite(hits))),
        median_hit_best=float(np.median(hits_best)),
        reached_best=float(np.mean(np.isfinite(hits_best))),
        distinct=float(runs.distinct.mean()),
        simulated_hours=float(runs.seconds[:, -1].mean()) / 3600,
        wall_seconds=float(runs.wall_seconds.mean()),
    )


def markdown(rows: Sequence[Row], table: BenchmarkTable, protocol: Protocol = PROTOCOL) -> str:
    """The leaderboard as a markdown table, best final regret first."""
    scores = table.scores(protocol.metric, "mean")
    top = top_threshold(scores, protocol.top_fraction)
    lines = [
        f"{protocol.env_id} ({table.dataset}, {len(table)} architectures): best seed-mean "
        f"validation {protocol.metric}@20 {scores.max():.4f}; top "
        f"{protocol.top_fraction:.0%} threshold {top:.4f}.",
        "",
        "| agent | runs | final regret (± s.e.) | median evals to top 1% (reached) "
        "| its 95% bootstrap interval | median evals to the best (reached) "
        "| distinct architectures | simulated training hours | wall s/run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted(rows, key=lambda row: (row.final_regret, row.median_hit)):
        low, high = r.hit_interval
        lines.append(
            f"| {r.agent} | {r.runs} | {r.final_regret:.4f} ± {r.final_regret_se:.4f} "
            f"| {r.median_hit:g} ({r.reached:.0%}) | {low:g}-{high:g} "
            f"| {r.median_hit_best:g} ({r.reached_best:.0%}) | {r.distinct:.0f} "
            f"| {r.simulated_hours:.1f} | {r.wall_seconds:.1f} |"
        )
    return "\n".join(lines)


def write_runs(path: Path, runs: Mapping[str, Runs], table_sha256: str) -> None:
    """Write agents' runs as one ``.npz`` (no pickle; byte-stable)."""
    arrays: dict[str, np.ndarray] = {
        "agents": np.array(list(runs)),
        "table_sha256": np.array(table_sha256),
    }
    for name, r in runs.items():
        arrays |= {
            f"{name}/seeds": r.seeds.astype(np.int32),
            f"{name}/incumbents": r.incumbents.astype(np.int16),
            f"{name}/seconds": r.seconds.astype(np.float32),
            f"{name}/distinct": r.distinct.astype(np.int32),
            f"{name}/wall_seconds": r.wall_seconds.astype(np.float32),
        }
    write_npz(path, arrays)


def read_runs(path: Path) -> tuple[dict[str, Runs], str]:
    """Inverse of :func:`write_runs`: the runs by agent and the SHA-256 of their table."""
    return runs_of(read_npz(path))


def runs_of(arrays: Mapping[str, np.ndarray]) -> tuple[dict[str, Runs], str]:
    """:func:`read_runs` of a file's arrays."""
    runs = {
        str(name): Runs(
            agent=str(name),
            seeds=arrays[f"{name}/seeds"].astype(np.int64),
            incumbents=arrays[f"{name}/incumbents"].astype(np.int64),
            seconds=arrays[f"{name}/seconds"].astype(np.float64),
            distinct=arrays[f"{name}/distinct"].astype(np.int64),
            wall_seconds=arrays[f"{name}/wall_seconds"].astype(np.float64),
        )
        for name in arrays["agents"]
    }
    return runs, str(arrays["table_sha256"])


def reference_runs(directory: Path | None = None) -> tuple[dict[str, Runs], str]:
    """The shipped agents' runs under :data:`PROTOCOL` (verified against ``SHA256SUMS``) and
    the SHA-256 of the table they searched. Written by ``benchmarks/run_agents.py``."""
    how = "run python -m benchmarks.run_agents --ship"
    arrays, _ = read_listed(directory or TABLE_DIR, REFERENCE_FILE, "leaderboard", how)
    return runs_of(arrays)
