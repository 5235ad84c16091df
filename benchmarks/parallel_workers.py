"""Our agents with 1, 4 and 16 asynchronous workers in simulated time (:mod:`agents.parallel`).

    python -m benchmarks.parallel_workers                   # 20 seeds, 1 simulated hour (~35 min)
    python -m benchmarks.parallel_workers --seeds 2 --name parallel_workers-quick

On the leaderboard's protocol table (``Books-20core``, ``seed_policy="random"``), every agent runs
``--seeds`` times with each worker count and a budget of ``--hours`` simulated hours (no
evaluation starts later; the agents' own compute is excluded from the clock). Regret after ``t``
simulated seconds is the table's best seed-mean validation Recall@20 minus the seed-mean score of
the incumbent (the best full-budget trial finished by ``t``; NaN, and left out of the mean,
before the first). The checkpoints are those of ``benchmarks.syne_tune_workers``, whose table
puts Syne Tune's own schedulers beside these. ``mcts`` has no ask and tell: it runs one
evaluation at a time whatever the worker count, the reference for what asynchrony buys.

Every finished run is appended to ``benchmarks/results/NAME.jsonl`` and skipped when the script
runs again, so an interrupted run resumes. Writes ``NAME.md`` and ``NAME.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.evolution import RegularizedEvolution
from agents.mcts import MCTS
from agents.multifidelity import ASHA
from agents.parallel import run_parallel
from agents.random_search import RandomSearch
from agents.runner import Budget
from agents.tpe import TPE
from benchmarks.common import RESULTS, add_plot_option
from nasenv.env import RecNASEnv
from nasenv.leaderboard import PROTOCOL
from nasenv.table import BenchmarkTable, load_table

AGENTS: dict[str, Any] = {
    "random": RandomSearch,
    "evolution": RegularizedEvolution,
    "tpe": TPE,
    "asha": ASHA,
    "mcts": MCTS,
}
WORKERS = (1, 4, 16)
MINUTES = (5, 10, 20, 30, 60)
"""Simulated minutes at which regret is reported (``benchmarks.syne_tune_workers``' marks)."""


def one_run(name: str, workers: int, seed: int, hours: float, marks: list[float]) -> dict:
    """Regret at ``marks`` (simulated seconds) of one run, with its counts and wall time."""
    table = load_table(PROTOCOL.dataset)
    scores = table.scores(PROTOCOL.metric, "mean")
    env = RecNASEnv(seed_policy=PROTOCOL.seed_policy)
    start = time.perf_counter()
    result = run_parallel(
        AGENTS[name](seed=seed), env, Budget(None, hours * 3600), workers=workers, seed=seed
    )
    wall = time.perf_counter() - start
    return {
        "agent": name,
        "workers": workers,
        "seed": seed,
        "marks": marks,
        "regret": _regret(result.incumbents(marks), scores, table),
        "evaluations": len(result.finished),
        "full_evaluations": sum(f.trial.full for f in result.finished),
        "utilisation": result.utilisation(),
        "agent_seconds": result.agent_seconds,
        "wall_seconds": wall,
    }


def _regret(incumbents: list, scores: np.ndarray, table: BenchmarkTable) -> list[float | None]:
    best = float(scores.max())
    return [
        None if trial is None else best - float(scores[table.index(trial.arch)])
        for trial in incumbents
    ]


def _cell(values: np.ndarray) -> str:
    values = values[~np.isnan(values)]
    if not len(values):
        return "-"
    se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return f"{values.mean():.4f} ± {se:.4f}"


def markdown(runs: list[dict], minutes: Sequence[float], hours: float) -> str:
    """The regret table: a row per agent and worker count."""
    table = load_table(PROTOCOL.dataset)
    best = float(table.scores(PROTOCOL.metric, "mean").max())
    lines = [
        f"Asynchronous workers in simulated time on {table.dataset} (table back end, seed policy "
        f"{PROTOCOL.seed_policy}), {hours:g} simulated hours per run, the agents' compute "
        f"excluded. Regret: best seed-mean validation Recall@20 ({best:.4f}) minus the "
        "incumbent's seed-mean score, mean ± s.e. over runs (runs without a full-budget result "
        "yet left out).",
        "",
        "| agent | workers | runs | "
        + " | ".join(f"regret @{m:g} min" for m in minutes)
        + " | evaluations | busy | wall s/run |",
        "| --- | --- | --- |" + " --- |" * (len(minutes) + 3),
    ]
    keys = sorted(
        {(r["agent"], r["workers"]) for r in runs},
        key=lambda k: (list(AGENTS).index(k[0]), k[1]),
    )
    for agent, workers in keys:
        group = [r for r in runs if (r["agent"], r["workers"]) == (agent, workers)]
        regret = np.array(
            [[np.nan if v is None else v for v in r["regret"]] for r in group], dtype=float
        )
        cells = [_cell(column) for column in regret.T]
        lines.append(
            f"| {agent} | {workers} | {len(group)} | "
            + " | ".join(cells)
            + f" | {np.mean([r['evaluations'] for r in group]):.0f} "
            f"| {np.mean([r['utilisation'] for r in group]):.0%} "
            f"| {np.mean([r['wall_seconds'] for r in group]):.1f} |"
        )
    return "\n".join(lines) + "\n"


def plot(runs: list[dict], path: Any) -> None:
    """Regret against simulated minutes, a panel per worker count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sorted({r["workers"] for r in runs})
    fig, axes = plt.subplots(1, len(counts), figsize=(4 * len(counts), 3.6), sharey=True)
    for ax, workers in zip(np.atleast_1d(axes), counts, strict=True):
        for agent in AGENTS:
            group = [r for r in runs if (r["agent"], r["workers"]) == (agent, workers)]
            if not group:
                continue
            minutes = np.array(group[0]["marks"]) / 60
            regret = np.array(
                [[np.nan if v is None else v for v in r["regret"]] for r in group], dtype=float
            )
            with warnings.catch_warnings():  # a mark before any run's first full-budget result
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(regret, axis=0)
            ax.plot(minutes, mean, label=agent)
        ax.set(title=f"{workers} worker{'s' * (workers > 1)}", xlabel="simulated minutes")
        ax.set_yscale("symlog", linthresh=1e-4)
    np.atleast_1d(axes)[0].set_ylabel("regret (Recall@20)")
    np.atleast_1d(axes)[-1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    parser.add_argument("--workers", nargs="+", type=int, default=list(WORKERS))
    parser.add_argument("--name", default="parallel_workers", help="benchmarks/results/NAME.*")
    add_plot_option(parser)
    args = parser.parse_args()
    if not args.name.startswith("parallel_workers"):
        parser.error("--name must start with 'parallel_workers'")
    if min(args.workers) < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    minutes = [m for m in MINUTES if m <= args.hours * 60] or [args.hours * 60]
    grid = sorted({*np.linspace(0, args.hours * 60, 61)[1:].tolist(), *minutes})
    marks = [m * 60 for m in grid]
    log = RESULTS / f"{args.name}.jsonl"
    runs = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {(r["agent"], r["workers"], r["seed"]) for r in runs}
    for name in args.agents:
        for workers in args.workers:
            for seed in PROTOCOL.seeds(args.seeds):
                if (name, workers, seed) in done:
                    continue
                run = one_run(name, workers, seed, args.hours, marks)
                runs.append(run)
                with log.open("a") as out:
                    out.write(json.dumps(run) + "\n")
                print(
                    f"{name} x{workers} seed {seed}: {run['evaluations']} evaluations, "
                    f"{run['wall_seconds']:.1f} s",
                    flush=True,
                )
    chosen = [
        r
        for r in runs
        if r["agent"] in args.agents
        and r["workers"] in args.workers
        and r["seed"] in PROTOCOL.seeds(args.seeds)
    ]
    for run in chosen:  # the table reports the checkpoints only
        run["report"] = [run["regret"][run["marks"].index(m * 60)] for m in minutes]
    shown = [{**r, "regret": r["report"], "marks": [m * 60 for m in minutes]} for r in chosen]
    text = markdown(shown, minutes, args.hours)
    (RESULTS / f"{args.name}.md").write_text(text)
    print(text)
    if not args.no_plot:
        plot(chosen, RESULTS / f"{args.name}.png")


if __name__ == "__main__":
    main()
