"""Every agent x many seeds on the leaderboard's protocol: regret curves, hitting times, plot.

    python -m benchmarks.run_agents --quick             # 5 seeds x 100 evaluations (minutes)
    python -m benchmarks.run_agents                     # 50 seeds x 500 evaluations
    python -m benchmarks.run_agents --ship              # ... and ship the runs in the package
    python -m benchmarks.run_agents --table sample      # smoke run on the sample table

The protocol, the scoring and the runs are the package's (:mod:`nasenv.leaderboard`,
:mod:`agents.leaderboard`): every run makes ``gym.make("RecNAS-Books-v0")``, which draws the
training seed of every evaluation from its ``np_random``, so agents see single-seed noise; an
agent's incumbent after ``t`` evaluations is the architecture with the best reward so far, its
regret the table's best seed-mean validation score minus the incumbent's seed-mean score.
Reported runs use seeds 100, 101, ...; the agents' hyperparameters were chosen on the planted task
of ``tests/test_agents.py`` (seeds 0-11), never on these runs. Runs are appended to
``benchmarks/results/run_agents-<name>.jsonl`` (resumable); the CSV of curves, the PNG and a
markdown leaderboard are written next to it. ``--ship`` writes the full runs to
``nasenv/tables/leaderboard-books-20core.npz``, which ``recnas leaderboard`` shows beside a new
agent's runs.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from agents import AGENTS, TRANSFER_AGENTS
from agents.leaderboard import load_agent, plot, run_agent, to_runs
from benchmarks.common import RESULTS, sample_table
from nasenv.data import sha256_of, write_checksums
from nasenv.env import RecNASEnv
from nasenv.evaluators import TableEvaluator
from nasenv.leaderboard import (
    PROTOCOL,
    REFERENCE_FILE,
    markdown,
    regret_curves,
    score,
    write_runs,
)
from nasenv.space import SearchSpace
from nasenv.table import TABLE_DIR, BenchmarkTable, load_table
from nasenv.testing import TINY_SPACE


def load(kind: str) -> tuple[BenchmarkTable, SearchSpace | None]:
    """The table and, for the sample table, its search space (else the protocol's env)."""
    if kind == "sample":
        return sample_table(), TINY_SPACE
    return load_table(PROTOCOL.dataset), None


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run_agents", description=__doc__.split("\n\n")[0]
    )
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
    parser.add_argument(
        "--ship", action="store_true", help=f"write the runs to nasenv/tables/{REFERENCE_FILE}"
    )
    args = parser.parse_args()
    runs_per_agent = args.seeds or (5 if args.quick else PROTOCOL.runs)
    budget = args.budget or (100 if args.quick else PROTOCOL.budget)
    if args.ship and (args.table != "shipped" or (runs_per_agent, budget) != (50, 500)):
        parser.error("--ship is for the full protocol on the shipped table: 50 runs x 500")
    name = f"{args.table}-{budget}"
    table, space = load(args.table)
    protocol = replace(PROTOCOL, dataset=table.dataset)

    def make_env() -> RecNASEnv:  # the sample table's space; the protocol's env otherwise
        return RecNASEnv(
            evaluator=TableEvaluator(table),
            space=space or "core",
            seed_policy=PROTOCOL.seed_policy,
        )

    journal = RESULTS / f"run_agents-{name}.jsonl"
    runs = {}
    for agent in args.agents:
        _, factory = load_agent(agent)
        records = run_agent(
            agent,
            factory,
            runs_per_agent,
            budget,
            journal,
            protocol,
            table=table,
            make_env=make_env if space is not None else None,
        )
        runs[agent] = to_runs(agent, records, table)

    csv = ["agent,seed,evaluation,simulated_seconds,regret"]
    for agent, r in runs.items():
        for seed, curve, seconds in zip(r.seeds, regret_curves(r, table), r.seconds, strict=True):
            csv += [
                f"{agent},{seed},{i + 1},{s:.1f},{c:.6f}"
                for i, (c, s) in enumerate(zip(curve, seconds, strict=True))
            ]
    (RESULTS / f"run_agents-{name}.csv").write_text("\n".join(csv) + "\n")
    try:
        plot(runs, table, RESULTS / f"run_agents-{name}.png")
    except ImportError as error:
        raise SystemExit(f"python -m benchmarks.run_agents: {error}") from None
    text = markdown([score(r, table, protocol) for r in runs.values()], table, protocol)
    (RESULTS / f"run_agents-{name}.md").write_text(text + "\n")
    print(text)
    if args.ship:
        write_runs(TABLE_DIR / REFERENCE_FILE, runs, sha256_of(Path(table.source)))
        write_checksums(TABLE_DIR)
        print(f"shipped {TABLE_DIR / REFERENCE_FILE}")


if __name__ == "__main__":
    main()
