"""Every agent x many seeds on the table env: regret curves, hitting times, leaderboard, plot.

    python benchmarks/run_agents.py --quick             # 5 seeds x 100 evaluations (minutes)
    python benchmarks/run_agents.py                     # 50 seeds x 500 evaluations
    python benchmarks/run_agents.py --table sample      # smoke run on the tests' sample table

The env draws the training seed of every evaluation from its ``np_random`` (``seed_policy=
"random"``), so agents see single-seed noise. An agent's incumbent after ``t`` evaluations is the
architecture with the best reward seen so far; its regret is the table's best seed-mean validation
score minus the incumbent's seed-mean score. Reported runs use seeds 100, 101, ...; the agents'
hyperparameters were chosen on the planted task of ``tests/test_agents.py`` (seeds 0-11), never on
these runs. Runs are appended to ``benchmarks/results/run_agents-<name>.jsonl`` (resumable);
the CSV of curves, the PNG and a markdown leaderboard are written next to it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents import AGENTS, TRANSFER_AGENTS, make_agent  # noqa: E402
from agents.runner import Budget, run_search  # noqa: E402
from nasenv.data import sha256_of  # noqa: E402
from nasenv.env import RecNASEnv  # noqa: E402
from nasenv.evaluators import TableEvaluator  # noqa: E402
from nasenv.table import BenchmarkTable, load_table  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
FIRST_SEED = 100


def load(kind: str) -> tuple[BenchmarkTable, object]:
    """The table and the space to search."""
    if kind == "sample":
        from tests.spaces import TINY_SPACE

        return BenchmarkTable.load(ROOT / "tests/data/tiny.npz"), TINY_SPACE
    return load_table(), "core"


def make_env(table: BenchmarkTable, space: object, metric: str) -> gym.Env:
    return RecNASEnv(
        evaluator=TableEvaluator(table), space=space, metric=metric, seed_policy="random"
    )


def incumbent_curve(history: list[dict], table: BenchmarkTable, scores: np.ndarray) -> np.ndarray:
    """Seed-mean score of the best-rewarded architecture after each evaluation."""
    out, best_reward, best_score = [], -math.inf, 0.0
    for trial in history:
        if trial["reward"] > best_reward:
            best_reward, best_score = trial["reward"], float(scores[table.index(trial["arch"])])
        out.append(best_score)
    return np.array(out)


def hitting_time(curve: np.ndarray, threshold: float) -> float:
    """First evaluation (1-based) whose incumbent reaches ``threshold``; inf if never."""
    hits = np.flatnonzero(curve >= threshold - 1e-12)
    return float(hits[0] + 1) if len(hits) else math.inf


def top_threshold(ranked: np.ndarray, fraction: float) -> float:
    """The score an architecture needs to be in the top ``fraction`` of ``ranked`` (scores sorted
    best first); at least the best one counts."""
    return float(ranked[max(1, math.ceil(fraction * len(ranked))) - 1])


def table_sha256(table: BenchmarkTable) -> str:
    """Which table a journalled run searched: a rebuilt table starts a fresh set of runs."""
    return sha256_of(Path(table.source))


def median_interval(
    values: list[float], level: float = 0.95, draws: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Bootstrap percentile interval of the median of ``values`` (``inf`` = never reached)."""
    rng = np.random.default_rng(seed)
    samples = np.asarray(values, float)[rng.integers(len(values), size=(draws, len(values)))]
    medians = np.sort(np.median(samples, axis=1))
    tail = (1 - level) / 2
    return float(medians[int(tail * draws)]), float(medians[int((1 - tail) * draws) - 1])


def run(args: argparse.Namespace) -> Path:
    table, space = load(args.table)
    path = RESULTS / f"run_agents-{args.name}.jsonl"
    sha256 = table_sha256(table)
    done = set()
    if path.exists():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("table_sha256") == sha256:
                done.add((record["agent"], record["seed"]))
    jobs = [
        (agent, seed)
        for agent in args.agents
        for seed in range(FIRST_SEED, FIRST_SEED + args.seeds)
        if (agent, seed) not in done
    ]
    with open(path, "a") as out:
        for agent, seed in tqdm(jobs, desc="searches"):
            env = make_env(table, space, args.metric)
            result = run_search(make_agent(agent, seed=seed), env, Budget(args.budget), seed)
            record = {
                "agent": agent,
                "seed": seed,
                "budget": args.budget,
                "table_sha256": sha256,
                "wall_seconds": result.wall_seconds,
                "invalid_episodes": result.invalid_episodes,
                "history": [
                    {"arch": t.arch, "reward": t.reward, "total_seconds": t.total_seconds}
                    for t in result.history
                ],
            }
            out.write(json.dumps(record) + "\n")
            out.flush()
    return path


def report(args: argparse.Namespace, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table, _ = load(args.table)
    scores = table.scores(args.metric, "mean")
    ranked = np.sort(scores)[::-1]
    best = ranked[0]
    top1, top01 = top_threshold(ranked, 0.01), top_threshold(ranked, 0.001)
    runs: dict[str, list[dict]] = {}
    sha256 = table_sha256(table)
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if (
            record["budget"] == args.budget
            and record["agent"] in args.agents
            and record.get("table_sha256") == sha256
        ):
            runs.setdefault(record["agent"], []).append(record)

    fig, (ax_n, ax_s) = plt.subplots(1, 2, figsize=(12, 4.5))
    rows, csv = [], ["agent,seed,evaluation,simulated_seconds,regret"]
    for agent, records in runs.items():
        curves = np.stack([best - incumbent_curve(r["history"], table, scores) for r in records])
        seconds = np.stack([[t["total_seconds"] for t in r["history"]] for r in records])
        for r, curve, secs in zip(records, curves, seconds):
            csv += [f"{agent},{r['seed']},{i + 1},{s:.1f},{c:.6f}" for i, (c, s) in
                    enumerate(zip(curve, secs))]  # fmt: skip
        mean, se = curves.mean(0), curves.std(0, ddof=1) / math.sqrt(len(curves))
        x = np.arange(1, curves.shape[1] + 1)
        ax_n.plot(x, mean, label=agent)
        ax_n.fill_between(x, mean - se, mean + se, alpha=0.2)
        grid = np.logspace(np.log10(seconds[:, 0].min()), np.log10(seconds.max()), 200)
        at = np.stack([c[np.clip(np.searchsorted(s, grid, "right") - 1, 0, None)]
                       for c, s in zip(curves, seconds)])  # fmt: skip
        ax_s.plot(grid, at.mean(0), label=agent)
        incumbents = [incumbent_curve(r["history"], table, scores) for r in records]
        hit1 = [hitting_time(c, top1) for c in incumbents]
        hit01 = [hitting_time(c, top01) for c in incumbents]
        rows.append(
            (
                agent,
                len(records),
                float(curves[:, -1].mean()),
                float(curves[:, -1].std(ddof=1) / math.sqrt(len(curves))),
                float(np.median(hit1)),
                median_interval(hit1),
                float(np.mean(np.isfinite(hit1))),
                float(np.median(hit01)),
                float(np.mean(np.isfinite(hit01))),
                float(np.mean([len({t["arch"] for t in r["history"]}) for r in records])),
                float(np.mean([r["history"][-1]["total_seconds"] for r in records])) / 3600,
                float(np.mean([r["wall_seconds"] for r in records])),
            )
        )
    for ax, label in ((ax_n, "evaluations"), (ax_s, "simulated training seconds")):
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(f"regret (validation {args.metric}@20, seed mean)")
        ax.grid(alpha=0.3)
    ax_n.legend()
    ax_n.set_title(f"{len(table)} architectures, budget {args.budget}, mean ± s.e.")
    fig.tight_layout()
    fig.savefig(RESULTS / f"run_agents-{args.name}.png", dpi=120)
    (RESULTS / f"run_agents-{args.name}.csv").write_text("\n".join(csv) + "\n")

    rows.sort(key=lambda row: row[2])
    lines = [
        f"Table best {best:.4f}; top 1% threshold {top1:.4f}; top 0.1% {top01:.4f}.",
        "",
        "| agent | runs | final regret (± s.e.) | median evals to top 1% (reached) "
        "| its 95% bootstrap interval | median evals to top 0.1% (reached) "
        "| distinct architectures | simulated training hours | wall s/run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for agent, n, regret, se, h1, (low, high), r1, h01, r01, distinct, hours, wall in rows:
        lines.append(
            f"| {agent} | {n} | {regret:.4f} ± {se:.4f} | {h1:g} ({r1:.0%}) | {low:g}-{high:g} "
            f"| {h01:g} ({r01:.0%}) | {distinct:.0f} | {hours:.1f} | {wall:.1f} |"
        )
    text = "\n".join(lines)
    (RESULTS / f"run_agents-{args.name}.md").write_text(text + "\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default="shipped", choices=["shipped", "sample"])
    parser.add_argument("--quick", action="store_true", help="5 seeds x 100 evaluations")
    parser.add_argument("--seeds", type=int, help="runs per agent (default 50, quick 5)")
    parser.add_argument("--budget", type=int, help="evaluations per run (default 500, quick 100)")
    parser.add_argument(
        "--agents",
        nargs="+",
        default=[a for a in AGENTS if a not in TRANSFER_AGENTS],
        choices=list(AGENTS),
        help=f"default: every agent but those that transfer from other tasks {TRANSFER_AGENTS}",
    )
    parser.add_argument("--metric", default="recall", choices=["recall", "ndcg"])
    args = parser.parse_args()
    args.seeds = args.seeds or (5 if args.quick else 50)
    args.budget = args.budget or (100 if args.quick else 500)
    args.name = f"{args.table}-{args.budget}"
    path = run(args)
    print(report(args, path))


if __name__ == "__main__":
    main()
