"""Multi-fidelity agents against full-budget random search and TPE, by simulated seconds.

On the leaderboard's protocol table (``Books-20core``, ``seed_policy="random"``) every agent runs
``--seeds`` times with a seconds budget (default 4 simulated hours). The regret after ``t``
simulated seconds is the table's best seed-mean validation Recall@20 minus the seed-mean score of
the incumbent: the best full-budget trial so far (:meth:`agents.runner.SearchRunner.best`; before
the first one, or for an agent that never runs the full budget, the best trial of the largest
budget it ran, marked in the table). Writes ``benchmarks/results/multifidelity.{md,png}``.

    python -m benchmarks.multifidelity --seeds 20 --hours 4
    python -m benchmarks.multifidelity --seeds 10 --agents smac-hyperband --name multifidelity-smac
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np

from agents.base import Agent
from agents.multifidelity import MF_AGENTS
from agents.random_search import RandomSearch
from agents.runner import Budget, Trial, incumbent_trials, run_search
from agents.smac import SMACHyperband
from agents.tpe import TPE
from benchmarks.common import RESULTS
from nasenv.env import RecNASEnv
from nasenv.leaderboard import PROTOCOL
from nasenv.table import load_table

AGENTS: dict[str, Callable[..., Agent]] = {
    "random": RandomSearch,
    "tpe": TPE,
    **MF_AGENTS,
    "smac-hyperband": SMACHyperband,
}
"""``smac-hyperband`` needs the ``smac`` extra."""
MARKS = (0.5, 1.0, 2.0, 4.0)


def regret_at(history: list[Trial], scores: np.ndarray, table, hours: np.ndarray) -> np.ndarray:
    """Regret of the incumbent after each of ``hours`` (NaN before any trial)."""
    best = float(scores.max())
    out = np.full(len(hours), np.nan)
    for k, h in enumerate(hours):
        done = [t for t in history if t.total_seconds <= h * 3600]
        pool = incumbent_trials(done)
        if pool:
            pick = max(pool, key=lambda t: (t.reward, -t.number))
            out[k] = best - scores[table.index(pick.arch)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    parser.add_argument(
        "--name", default="multifidelity", help="output files benchmarks/results/NAME.{md,png}"
    )
    args = parser.parse_args()
    if not args.name.startswith("multifidelity"):
        parser.error("--name must start with 'multifidelity'")
    table = load_table(PROTOCOL.dataset)
    scores = table.scores(PROTOCOL.metric, "mean")
    grid = np.linspace(0, args.hours, 97)[1:]
    marks = [m for m in MARKS if m <= args.hours]
    curves: dict[str, np.ndarray] = {}
    lines = [
        f"Multi-fidelity search on {table.dataset} (table back end, seed policy "
        f"{PROTOCOL.seed_policy}), {args.seeds} runs per agent (seeds {PROTOCOL.first_seed}-"
        f"{PROTOCOL.first_seed + args.seeds - 1}), {args.hours:g} simulated hours each. Regret: "
        f"best seed-mean validation Recall@20 ({scores.max():.4f}) minus the incumbent's "
        "seed-mean score; the incumbent is the best full-budget (30 epochs, patience 5) trial.",
        "",
        "| agent | "
        + " | ".join(f"regret at {m:g} h" for m in marks)
        + " | evaluations | full-budget evaluations | wall s/run |",
        "| --- |" + " --- |" * (len(marks) + 3),
    ]
    for name in args.agents:
        rows, at_marks, evals, fulls, walls = [], [], [], [], []
        for seed in PROTOCOL.seeds(args.seeds):
            env = RecNASEnv(seed_policy=PROTOCOL.seed_policy)
            start = time.perf_counter()
            result = run_search(AGENTS[name](seed=seed), env, Budget(None, args.hours * 3600), seed)
            walls.append(time.perf_counter() - start)
            rows.append(regret_at(result.history, scores, table, grid))
            at_marks.append(regret_at(result.history, scores, table, np.array(marks)))
            evals.append(len(result.history))
            fulls.append(sum(t.full for t in result.history))
        curves[name] = np.array(rows)
        values = np.array(at_marks)
        n = len(values)
        cells = [
            f"{np.nanmean(c):.4f} ± {np.nanstd(c, ddof=1) / math.sqrt(n):.4f}" for c in values.T
        ]
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {np.mean(evals):.0f} | {np.mean(fulls):.0f} "
            f"| {np.mean(walls):.1f} |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{args.name}.md").write_text(text)
    print(text)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, c in curves.items():
        mean = np.nanmean(c, axis=0)
        se = np.nanstd(c, axis=0, ddof=1) / math.sqrt(len(c))
        ax.plot(grid, mean, label=name)
        ax.fill_between(grid, mean - se, mean + se, alpha=0.2)
    ax.set(xlabel="simulated training hours", ylabel="regret (Recall@20)", yscale="log")
    ax.set_title(f"{table.dataset}: {args.seeds} runs, mean ± s.e.")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.name}.png", dpi=120)


if __name__ == "__main__":
    main()
