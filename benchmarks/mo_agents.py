"""Multi-objective agents on ``RecNAS-Books-MO-v0``: relative hypervolume against evaluations and
simulated seconds, IGD at the end, plot and markdown table.

    python -m benchmarks.mo_agents                      # 20 seeds x 300 evaluations per agent
    python -m benchmarks.mo_agents --ppo-seeds 5        # ... and MaskablePPO under LinearReward
    python -m benchmarks.mo_agents --table sample --seeds 2 --budget 20   # smoke run

Every run searches ``gym.make("RecNAS-Books-MO-v0")`` (the table of Books-20core, a training
seed drawn per evaluation as in ``RecNAS-Books-v0``) with seeds 100, 101, ... for the agent and
the env's reset. A run is scored by the architectures it evaluated, each valued at its seed-mean
objective vector in the table (:func:`nasenv.multiobjective.table_objectives`), so that seed
noise decides what an agent sees but not what its finds are worth: the *relative hypervolume*
after ``t`` evaluations is the hypervolume of those vectors divided by that of the table's exact
Pareto front, both from :func:`nasenv.multiobjective.reference_point` (the worst value of every
objective over the table); IGD is computed with every objective divided by its range over the
table. Simulated seconds are the table's stored ``cost_seconds`` (cost version 1: they include
the test passes of improving epochs). Runs are appended to ``benchmarks/results/mo_agents.jsonl``
(resumable); ``mo_agents.md`` and ``mo_agents.png`` are written next to it.

``--ppo-seeds N`` adds the scalarised route (``ppo-linear``: sb3-contrib's ``MaskablePPO`` on
``mo_gymnasium.wrappers.LinearReward``) for each ``--ppo-weights``; it needs the ``rl`` and ``mo``
extras.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import nasenv  # noqa: F401 - registers the ids
from agents.multiobjective import MO_AGENTS, LinearPPO, run_mo_search
from agents.runner import Budget
from benchmarks.common import add_plot_option, add_results_option, sample_table
from nasenv.evaluators import TableEvaluator
from nasenv.leaderboard import PROTOCOL
from nasenv.multiobjective import (
    MO_ENV_ID,
    RecNASMOEnv,
    hypervolume,
    igd,
    non_dominated,
    pareto_front,
    reference_point,
    table_objectives,
)
from nasenv.table import BenchmarkTable, load_table
from nasenv.testing import TINY_SPACE

EVALUATION_MARKS = (50, 100, 200, 300)
HOUR_MARKS = (0.25, 0.5, 1.0)
DEFAULT_WEIGHTS = ("1,0.05,0.05,0.05", "1,0.2,0.2,0.2")


class Scorer:
    """Relative hypervolume and IGD of evaluated table rows."""

    def __init__(self, table: BenchmarkTable) -> None:
        self.points = table_objectives(table)
        self.reference = reference_point(self.points)
        self.front = pareto_front(table)
        self.best = hypervolume(self.front.points, self.reference)
        self.scale = self.points.max(axis=0) - self.points.min(axis=0)
        self.scale[self.scale == 0] = 1.0

    def curve(self, rows: list[int]) -> np.ndarray:
        """Relative hypervolume after each evaluation (recomputed only when the set of
        non-dominated rows changes)."""
        out = np.empty(len(rows))
        current: list[int] = []
        value = 0.0
        for i, row in enumerate(rows):
            p = self.points[row]
            others = self.points[current]
            dominated = bool(np.any(np.all(others >= p, axis=1))) if current else False
            if not dominated:
                candidates = [*current, row]
                keep = non_dominated(self.points[candidates])
                current = [r for r, k in zip(candidates, keep, strict=True) if k]
                value = hypervolume(self.points[current], self.reference) / self.best
            out[i] = value
        return out

    def igd(self, rows: list[int]) -> float:
        return igd(self.points[sorted(set(rows))], self.front.points, self.scale)


def load(kind: str) -> tuple[BenchmarkTable, Callable[[], gym.Env]]:
    if kind == "sample":
        table = sample_table()

        def make() -> gym.Env:
            evaluator = TableEvaluator(table)
            return RecNASMOEnv(evaluator=evaluator, space=TINY_SPACE, seed_policy="random")

        return table, make
    return load_table(PROTOCOL.dataset), lambda: gym.make(MO_ENV_ID)


def journal_records(path: Path) -> dict[tuple[str, int, int], dict[str, Any]]:
    records = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                records[(record["agent"], record["seed"], record["budget"])] = record
    return records


def at_hours(seconds: np.ndarray, curve: np.ndarray, hours: float) -> float:
    """The curve's value once ``hours`` of simulated training are spent (NaN if the run ended
    before)."""
    if seconds[-1] < hours * 3600:
        return math.nan
    index = int(np.searchsorted(seconds, hours * 3600, side="right")) - 1
    return float(curve[index]) if index >= 0 else 0.0


def step_values(seconds: np.ndarray, curve: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The curve after each of ``grid``'s simulated seconds (0 before the first evaluation)."""
    index = np.searchsorted(seconds, grid, side="right") - 1
    return np.where(index >= 0, curve[np.clip(index, 0, None)], 0.0)


def mean_se(values: np.ndarray) -> str:
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return "-"
    se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return f"{values.mean():.3f} ± {se:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.mo_agents", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--table", default="shipped", choices=["shipped", "sample"])
    parser.add_argument("--seeds", type=int, default=20, help="runs per agent (default 20)")
    parser.add_argument("--budget", type=int, default=300, help="evaluations per run (300)")
    parser.add_argument("--agents", nargs="+", default=list(MO_AGENTS), choices=list(MO_AGENTS))
    parser.add_argument("--ppo-seeds", type=int, default=0, help="runs of each ppo-linear")
    parser.add_argument("--ppo-weights", nargs="+", default=list(DEFAULT_WEIGHTS))
    add_plot_option(parser)
    add_results_option(parser)
    args = parser.parse_args()
    table, make_env = load(args.table)
    scorer = Scorer(table)
    name = "mo_agents" if args.table == "shipped" else f"mo_agents-{args.table}"
    args.results.mkdir(parents=True, exist_ok=True)
    journal = args.results / f"{name}.jsonl"
    records = journal_records(journal)

    plan: list[tuple[str, Callable[[int], Any], int]] = [
        (agent, MO_AGENTS[agent], args.seeds) for agent in args.agents
    ]
    for text in args.ppo_weights if args.ppo_seeds else ():
        weights = tuple(float(w) for w in text.split(","))

        def build(seed: int, weights: tuple[float, ...] = weights) -> LinearPPO:
            return LinearPPO(seed=seed, weights=weights)

        plan.append((f"ppo-linear[{text}]", build, args.ppo_seeds))

    runs: dict[str, list[dict[str, Any]]] = {}
    for label, factory, n in plan:
        for seed in PROTOCOL.seeds(n):
            key = (label, seed, args.budget)
            if key not in records:
                result = run_mo_search(make_env(), factory(seed), Budget(args.budget), seed)
                record = {
                    "agent": label,
                    "seed": seed,
                    "budget": args.budget,
                    "archs": [t.arch for t in result.trials],
                    "objectives": [list(t.objectives) for t in result.trials],
                    "seconds": [t.total_seconds for t in result.trials],
                    "wall_seconds": result.wall_seconds,
                    "hyperparameters": {k: str(v) for k, v in result.hyperparameters.items()},
                    "cost_version": table.cost_version,
                }
                with journal.open("a") as out:
                    out.write(json.dumps(record) + "\n")
                records[key] = record
                print(f"{label} seed {seed}: {result.wall_seconds:.1f} s", flush=True)
            runs.setdefault(label, []).append(records[key])

    rows, curves = [], {}
    marks = [m for m in EVALUATION_MARKS if m < args.budget] + [args.budget]
    for label, agent_runs in runs.items():
        c = np.array([scorer.curve([table.index(a) for a in r["archs"]]) for r in agent_runs])
        seconds = np.array([r["seconds"] for r in agent_runs])
        curves[label] = (c, seconds)
        cells = [mean_se(c[:, m - 1]) for m in marks]
        cells += [
            mean_se(np.array([at_hours(s, cc, h) for s, cc in zip(seconds, c, strict=True)]))
            for h in HOUR_MARKS
        ]
        igds = np.array([scorer.igd([table.index(a) for a in r["archs"]]) for r in agent_runs])
        distinct = np.mean([len(set(r["archs"])) for r in agent_runs])
        hours = seconds[:, -1].mean() / 3600
        wall = np.mean([r["wall_seconds"] for r in agent_runs])
        rows.append(
            f"| {label} | {len(agent_runs)} | "
            + " | ".join(cells)
            + f" | {mean_se(igds)} | {distinct:.0f} | {hours:.2f} | {wall:.1f} |"
        )
    header = (
        "| agent | runs | "
        + " | ".join(f"HV @{m}" for m in marks)
        + " | "
        + " | ".join(f"HV @{h:g} h" for h in HOUR_MARKS)
        + " | IGD end | distinct | sim. h | wall s |"
    )
    text = "\n".join(
        [
            f"Relative hypervolume (mean ± s.e. over runs) on {table.dataset}: the seed-mean "
            f"objective vectors of the evaluated architectures against the exact Pareto front "
            f"({len(scorer.front.rows)} of {len(table)} architectures; hypervolume "
            f"{scorer.best:.6g} from the reference {np.round(scorer.reference, 4).tolist()}), "
            f"after a number of evaluations and of simulated hours (the table's seconds, cost "
            f"version {table.cost_version}; '-': some run ended earlier). IGD: range-normalised, "
            "at the end of the budget.",
            "",
            header,
            "|" + "---|" * (header.count("|") - 1),
            *rows,
        ]
    )
    (args.results / f"{name}.md").write_text(text + "\n")
    print(text)
    if not args.no_plot:
        try:
            plot(curves, args.results / f"{name}.png", table.dataset)
        except ImportError as error:
            raise SystemExit(f"python -m benchmarks.mo_agents: {error}") from None


def plot(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, dataset: str
) -> None:  # pragma: no cover - drawing
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("the plot needs matplotlib: pip install 'recnas-books[plots]'") from error
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for label, (c, seconds) in curves.items():
        x = np.arange(1, c.shape[1] + 1)
        mean, se = c.mean(axis=0), c.std(axis=0, ddof=1) / math.sqrt(max(len(c) - 1, 1))
        (line,) = left.plot(x, mean, label=label)
        left.fill_between(x, mean - se, mean + se, color=line.get_color(), alpha=0.2)
        grid = np.linspace(0, seconds[:, -1].min(), 200)
        on_grid = np.array([step_values(s, cc, grid) for s, cc in zip(seconds, c, strict=True)])
        right.plot(grid / 3600, on_grid.mean(axis=0), color=line.get_color(), label=label)
    left.set(xlabel="evaluations", ylabel="relative hypervolume", title=dataset)
    right.set(xlabel="simulated training hours (cost version 1)", title=dataset)
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    right.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
